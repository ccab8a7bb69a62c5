// Input mistakes: every problem reported at once, exit 2, and the root left byte-for-byte as it was.
// Plus the read-only modes (--print-answers, --explain) and an unattended run that never waits.
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Root } from '../../src/system/root.js';
import { PATHS } from '../../src/system/root.js';
import { freePort } from '../../src/system/host.js';
import { knocker } from '../helpers/knocker.js';
import { destroyRoot, makeRoot, snapshotTree } from '../helpers/roots.js';

let root: Root;
beforeEach(async () => {
  root = await makeRoot();
  // An existing installation whose files must not change.
  await fs.mkdir(root.path(PATHS.etcDir), { recursive: true });
  await fs.writeFile(root.path(PATHS.conf), '# mine\nListen = 127.0.0.1:8756\nCustomKey = kept\n', { mode: 0o600 });
});
afterEach(async () => {
  await destroyRoot(root);
});

async function answers(name: string, text: string): Promise<string> {
  const file = path.join(root.dir, name);
  await fs.writeFile(file, text);
  return file;
}

describe('bad input exits 2 and changes nothing', () => {
  test('an answers file with several mistakes: all reported, with positions and suggestions', async () => {
    const file = await answers('answers.yaml', 'version: 1\nlisten: 0.0.0.0\nTrustedForwarders: 10.0.0.0/8\ndatabase:\n  option: 3\n  url: "mysql://x"\n');
    const before = await snapshotTree(root.dir);
    const result = await knocker(['install', '--root', root.dir, '--answers', file, '--non-interactive']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('error: the answers file has 3 problems; nothing was changed');
    expect(result.stderr).toContain(`${file}:2:9: listen: "0.0.0.0" has no port`);
    expect(result.stderr).toContain(`${file}:3:1: unknown key "TrustedForwarders" (did you mean "trustedForwarders"?)`);
    expect(result.stderr).toContain(`${file}:6:8: database.url: a connection string starts with postgres:// or postgresql://`);
    expect(result.stdout).toBe('');
    expect(await snapshotTree(root.dir)).toEqual(before);
  });

  test('missing answers are listed together; bad flags and environment values are named', async () => {
    const before = await snapshotTree(root.dir);
    const missing = await knocker(['install', '--root', root.dir, '--non-interactive', '--database-option', '3']);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain('1 required answer is missing; nothing was changed');
    expect(missing.stderr).toMatch(
      /database\.url: the connection string for option 3 \(--database-url, KNOCKNOC_DATABASE_URL, or database\.url \/ database\.urlFile/,
    );

    const bad = await knocker(['install', '--root', root.dir, '--listen', '1.2.3.4:0', '--trusted-forwarders', '0.0.0.0/0'], {
      env: { KNOCKNOC_SERVER_NAME: 'no spaces' },
    });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('3 invalid answers; nothing was changed');
    expect(bad.stderr).toContain('--listen: port 0 is out of range (1–65535)');
    expect(bad.stderr).toContain('--trusted-forwarders: "0.0.0.0/0" matches every address');
    expect(bad.stderr).toContain('KNOCKNOC_SERVER_NAME: "no spaces" is not a valid server name');

    const usage = await knocker(['install', '--root', root.dir, '--bogus']);
    expect(usage.exitCode).toBe(2);
    expect(usage.stderr).toContain("unknown option '--bogus'");
    const option = await knocker(['install', '--root', root.dir, '--database-option', '4']);
    expect(option.exitCode).toBe(2);
    const json = await knocker(['install', '--root', root.dir, '--json']);
    expect(json.exitCode).toBe(2);
    expect(json.stderr).toContain('--json goes with --dry-run, --print-answers or --explain');
    expect(await snapshotTree(root.dir)).toEqual(before);
  });
});

describe('read-only modes', () => {
  test('--print-answers: the resolved answers as an answers file, password redacted; --explain names the sources', async () => {
    const file = await answers('a.yaml', 'version: 1\ntrustedForwarders: "10.1.2.3/24"\ndatabase:\n  option: 3\n');
    const before = await snapshotTree(root.dir);
    const env = { KNOCKNOC_DATABASE_URL: 'postgres://knocknoc:s3cr3t-pw@192.0.2.10:5432/knocknoc' };
    const printed = await knocker(['install', '--root', root.dir, '--answers', file, '--server-name', 'web-9', '--print-answers'], { env });
    expect(printed.exitCode).toBe(0);
    expect(printed.stdout).toContain('listen: 127.0.0.1:8756');
    expect(printed.stdout).toContain('  - 10.1.2.0/24');
    expect(printed.stdout).toContain('serverName: web-9');
    expect(printed.stdout).toContain('url: postgres://knocknoc:****@192.0.2.10:5432/knocknoc');
    expect(printed.stdout).not.toContain('s3cr3t-pw');

    const explained = await knocker(['install', '--root', root.dir, '--answers', file, '--server-name', 'web-9', '--explain'], { env });
    expect(explained.exitCode).toBe(0);
    const lines = explained.stdout.split('\n');
    expect(lines.find((l) => l.startsWith('listen'))).toMatch(new RegExp(`127\\.0\\.0\\.1:8756\\s+existing ${root.path(PATHS.conf)}:2$`));
    expect(lines.find((l) => l.startsWith('trustedForwarders'))).toMatch(new RegExp(`10\\.1\\.2\\.0/24\\s+answers file ${file}:2:20$`));
    expect(lines.find((l) => l.startsWith('database.url'))).toMatch(
      /postgres:\/\/knocknoc:\*\*\*\*@192\.0\.2\.10:5432\/knocknoc\s+environment KNOCKNOC_DATABASE_URL$/,
    );
    expect(lines.find((l) => l.startsWith('serverName'))).toMatch(/web-9\s+flag --server-name$/);

    const json = await knocker(['install', '--root', root.dir, '--answers', file, '--explain', '--json'], { env });
    expect(JSON.parse(json.stdout)['database.option']).toMatchObject({ value: 3, source: { kind: 'file', line: 4, col: 11 } });
    expect(json.stdout).not.toContain('s3cr3t-pw');
    expect(await snapshotTree(root.dir)).toEqual(before);
  });

  test('an unattended run never waits for a key, even with an open stdin', async () => {
    const result = await knocker(
      ['install', '--root', root.dir, '--database-option', '3', '--database-url', 'postgres://u:p@127.0.0.1:1/db', '--listen', '127.0.0.1:8756'],
      {
        keepStdinOpen: true,
        timeoutMs: 30_000,
      },
    );
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toContain('knocker install (unattended)');
  });
});

test('--help tells the truth about the flags', async () => {
  const help = await knocker(['install', '--help']);
  expect(help.exitCode).toBe(0);
  for (const flag of [
    '--answers',
    '--non-interactive',
    '--listen',
    '--trusted-forwarders',
    '--database-option',
    '--database-url',
    '--server-name',
    '--dry-run',
    '--json',
    '--print-answers',
    '--explain',
    '--yes',
  ]) {
    expect(help.stdout).toContain(flag);
  }
  expect(help.stdout).toContain('flag > environment');
});

test("an answers file's haproxy section is planned after the server: HAProxy's checks and steps (dry run: nothing changed)", async () => {
  const bind = `127.0.0.119:${await freePort('127.0.0.119')}`;
  const file = await answers('h.yaml', `version: 1\nhaproxy:\n  bind: "${bind}"\n  nodes: ["web-1=127.0.0.2:8756", "web-2=127.0.0.3:8756"]\n`);
  const clash = await answers('clash.yaml', 'version: 1\nhaproxy:\n  bind: "127.0.0.1:8756"\n  nodes: ["web-1=127.0.0.2:8756"]\n');
  const before = await snapshotTree(root.dir);
  const result = await knocker(['install', '--root', root.dir, '--answers', file, '--dry-run']);
  expect(result.stderr).toBe('');
  expect(result.exitCode).toBe(0);
  expect(result.stdout).toMatch(/✔ ok {3}HAProxy: \S*haproxy \(version \d+\.\d+/);
  expect(result.stdout).toContain(`✔ ok   HAProxy listen address ${bind}: free`);
  const server = result.stdout.indexOf('[service] Knocknoc server: start it');
  const config = result.stdout.search(
    /\+ \[file\] Write \S+\/etc\/haproxy\/haproxy\.cfg: 2 web nodes behind http:\/\/127\.0\.0\.119:\d+ \(checked with haproxy -c first\)/,
  );
  const start = result.stdout.indexOf('+ [service] Start HAProxy (daemon) and wait until its admin socket answers');
  expect(server).toBeGreaterThan(0);
  expect(config).toBeGreaterThan(server);
  expect(start).toBeGreaterThan(config);
  expect(result.stdout).toContain('+    server web-2 127.0.0.3:8756 cookie web-2 check');
  expect(await snapshotTree(root.dir)).toEqual(before);

  const refused = await knocker(['install', '--root', root.dir, '--answers', clash, '--dry-run']);
  expect(refused.exitCode).toBe(3);
  expect(refused.stderr).toContain('HAProxy settings: HAProxy and Knocknoc cannot both listen on 127.0.0.1:8756');
  expect(await snapshotTree(root.dir)).toEqual(before);
});

test('knocker without a command shows its usage and exits 2; --help and --version exit 0', async () => {
  const bare = await knocker([]);
  expect(bare.exitCode).toBe(2);
  expect(bare.stderr).toContain('Usage: knocker');
  expect((await knocker(['--help'])).exitCode).toBe(0);
  expect((await knocker(['--version'])).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
});
