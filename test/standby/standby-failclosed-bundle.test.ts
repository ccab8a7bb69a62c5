// Rule 5 of the standby pair (issue 22): the bundle is input from outside. standby init refuses,
// before writing anything and with --dry-run too, a bundle whose port carries a newline (it once
// reached postgresql.auto.conf as a restore_command), one others can read, one for another host,
// one of an unknown version, one whose key does not match its certificate, and a bad --max-rate.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { PATHS, type Root } from '../../src/system/root.js';
import { STANDBY_PATHS } from '../../src/standby/paths.js';
import { installPrimary } from '../helpers/exposedb.js';
import { run, standby } from '../helpers/failclosed.js';
import { destroyRoot, makeRoot } from '../helpers/roots.js';

const A = '127.0.22.21';
const B = '127.0.22.22';
let rootA: Root;
let rootB: Root;
let bundle: Record<string, any>;
let dir: string;

beforeAll(async () => {
  [rootA, rootB] = await Promise.all([makeRoot(), makeRoot()]);
  await installPrimary(rootA, A);
  expect((await run(['exposedb', '--root', rootA.dir, '--init'])).exitCode).toBe(0);
  const add = await run(['exposedb', '--root', rootA.dir, '--add-standby', B]);
  expect(add.exitCode, add.stderr).toBe(0);
  bundle = JSON.parse(await fs.readFile(add.stdout.trim(), 'utf8'));
  dir = await fs.mkdtemp(path.join(rootB.dir, 'bundles-'));
}, 90_000);

afterAll(async () => {
  await Promise.all([rootA && destroyRoot(rootA), rootB && destroyRoot(rootB)]);
});

async function variant(name: string, content: unknown, mode = 0o600): Promise<string> {
  const file = path.join(dir, `${name}.json`);
  await fs.writeFile(file, typeof content === 'string' ? content : JSON.stringify(content), { mode });
  await fs.chmod(file, mode);
  return file;
}

async function nothingWritten(): Promise<void> {
  expect(await fs.stat(rootB.path(STANDBY_PATHS.dir)).catch(() => undefined)).toBeUndefined();
  expect(await fs.stat(rootB.path(PATHS.pgData)).catch(() => undefined)).toBeUndefined();
}

test('a port with a newline (a restore_command injected) is refused field by field, exit 2, nothing written, --dry-run too', async () => {
  const file = await variant('port', {
    ...bundle,
    standby: { ...bundle.standby, port: `${bundle.standby.port}\nrestore_command = 'touch /tmp/knocker-pwned'` },
  });
  for (const extra of [['--dry-run'], []]) {
    const result = await standby(rootB, 'init', '--bundle', file, ...extra);
    expect(result.exitCode, result.stderr).toBe(2);
    expect(result.stderr).toContain('standby.port: not a port number');
  }
  await nothingWritten();
});

test('refused up front: readable by others (3), for another host (3), unknown version (2), key not matching its certificate (2)', async () => {
  const open = await variant('open', bundle, 0o644);
  const readable = await standby(rootB, 'init', '--bundle', open, '--dry-run');
  expect(readable.exitCode, readable.stderr).toBe(3);
  expect(readable.stderr).toContain('can be read by its group and others (mode 0644)');

  const elsewhere = await variant('elsewhere', { ...bundle, standby: { ...bundle.standby, host: '192.0.2.55' } });
  const other = await standby(rootB, 'init', '--bundle', elsewhere, '--dry-run');
  expect(other.exitCode, other.stderr).toBe(3);
  expect(other.stderr).toContain('this host has no address 192.0.2.55: the bundle is for another host');

  const later = await standby(rootB, 'init', '--bundle', await variant('version', { ...bundle, version: 2 }), '--dry-run');
  expect(later.exitCode, later.stderr).toBe(2);
  expect(later.stderr).toContain('version 2');

  const stranger = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const mismatch = await standby(rootB, 'init', '--bundle', await variant('key', { ...bundle, key: stranger }));
  expect(mismatch.exitCode, mismatch.stderr).toBe(2);
  expect(mismatch.stderr).toContain('key: does not match the certificate');
  await nothingWritten();
});

test('a bad --max-rate is refused in --dry-run too; the bundle as made passes', async () => {
  const good = await variant('good', bundle);
  for (const rate of ['10', '2G', 'fast', '20M;x']) {
    const result = await standby(rootB, 'init', '--bundle', good, '--max-rate', rate, '--dry-run');
    expect(result.exitCode, `${rate}: ${result.stderr}`).toBe(2);
    expect(result.stderr).toContain('--max-rate');
  }
  const dry = await standby(rootB, 'init', '--bundle', good, '--max-rate', '20M', '--dry-run');
  expect(dry.exitCode, dry.stderr).toBe(0);
  await nothingWritten();
});
