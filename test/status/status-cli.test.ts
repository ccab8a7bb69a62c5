// `knocker status --once` and `--json` as scripts use them, over a real sandbox cluster: the exit
// code says healthy (0), degraded (1) or database unreachable (3); without a terminal plain
// `knocker status` prints the same snapshot; misuse is exit 2.
import fs from 'node:fs/promises';
import path from 'node:path';
import { expect, test } from 'vitest';
import { freePort } from '../../src/system/host.js';
import { PATHS } from '../../src/system/root.js';
import { knocker } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';
import { sharedDatabase, waitFor } from '../helpers/server.js';
import { startStatusCluster } from '../helpers/status.js';

const HOSTS = ['127.0.0.131', '127.0.0.132', '127.0.0.133'];
const HAPROXY_HOST = '127.0.0.135';
const db = sharedDatabase({ host: '127.0.0.130', allow: HOSTS });
const newRoot = useRoots();

interface JsonServer {
  name: string;
  health: string;
  state: string;
  problems: string[];
  registry: { state: string; online: boolean; version: string } | null;
  status: { http: number | null; versionMatch: boolean | null; error: string | null } | null;
  haproxy: { status: string; statusText: string } | null;
}
interface JsonStatus {
  healthy: boolean;
  exitCode: number;
  verdict: string;
  summary: { servers: number; healthy: number };
  servers: JsonServer[];
  database: { role: string; connections: { used: number; max: number }; schemaVersion: number } | null;
  haproxy: { version: string; pid: number } | null;
  sources: Record<string, { ok: boolean; error: string | null }>;
}

async function json(root: string): Promise<{ exitCode: number; status: JsonStatus }> {
  const result = await knocker(['status', '--json', '--root', root]);
  expect(result.stderr).toBe('');
  return { exitCode: result.exitCode, status: JSON.parse(result.stdout) as JsonStatus };
}

test('healthy, then degraded: exit 0 and 1, the same story in plain text, JSON and without a terminal', async () => {
  const { root, nodes } = await startStatusCluster({ root: await newRoot(), hosts: HOSTS, haproxyHost: HAPROXY_HOST, databaseUrl: db.url });
  // The nodes' first heartbeat and HAProxy's first checks are in: every source has its answer.
  const healthy = await json(root.dir);
  expect(healthy.exitCode).toBe(0);
  expect(healthy.status).toMatchObject({ healthy: true, exitCode: 0, summary: { servers: 3, healthy: 3 }, database: { role: 'primary', schemaVersion: 2 } });
  expect(healthy.status.servers.map((s) => [s.name, s.health, s.state, s.status?.http, s.status?.versionMatch, s.haproxy?.status])).toEqual([
    ['web-1', 'ok', 'ok', 200, true, 'UP'],
    ['web-2', 'ok', 'ok', 200, true, 'UP'],
    ['web-3', 'ok', 'ok', 200, true, 'UP'],
  ]);
  expect(Object.values(healthy.status.sources).every((s) => s.ok)).toBe(true);

  const once = await knocker(['status', '--once', '--root', root.dir]);
  expect(once.exitCode).toBe(0);
  expect(once.stdout).toMatch(/^knocker status \S+: healthy: all 3 servers online, in step and in rotation$/m);
  expect(once.stdout).toMatch(/^✔\s+web-2\s+ok\s+1\.0\.0\s+200 [\d.]+ms\s+UP\s+\d+s\s+L7OK 200/m);
  expect(once.stdout).not.toContain('postgres://');
  // No terminal (the test's pipes): plain `knocker status` is --once.
  const plain = await knocker(['status', '--root', root.dir]);
  expect(plain.exitCode).toBe(0);
  expect(plain.stdout).toMatch(/^knocker status \S+: healthy/m);

  // A node killed without a word: at once it stops answering; after three missed heartbeats the registry calls it offline.
  nodes[2]!.child.kill('SIGKILL');
  await nodes[2]!.exited;
  const refused = await json(root.dir);
  expect(refused.exitCode).toBe(1);
  const web3 = refused.status.servers[0]!;
  expect(web3).toMatchObject({ name: 'web-3', health: 'fail', status: { http: null, error: 'connection refused' } });
  expect(refused.status.verdict).toBe('degraded: 1 of 3 servers not healthy');
  const offline = await waitFor(
    'web-3 to be offline in the registry',
    async () => {
      const { status } = await json(root.dir);
      return status.servers.find((s) => s.name === 'web-3')?.state === 'offline' ? status : undefined;
    },
    30_000,
  );
  expect(offline.servers[0]).toMatchObject({ name: 'web-3', registry: { state: 'running', online: false } });
  const text = await knocker(['status', '--once', '--root', root.dir]);
  expect(text.exitCode).toBe(1);
  expect(text.stdout).toMatch(/^✗\s+web-3\s+offline\s+1\.0\.0\s+refused\s+DOWN/m);
  expect(text.stdout).toMatch(/^ {2}web-3: offline \(no heartbeat\); \/_status: connection refused; HAProxy: DOWN/m);
});

test('a drained node is degraded (out of rotation); HAProxy not set up here is not a problem', async () => {
  const { root, haproxy } = await startStatusCluster({ root: await newRoot(), hosts: HOSTS, haproxyHost: HAPROXY_HOST, databaseUrl: db.url });
  expect((await haproxy.run('drain', 'web-1')).exitCode).toBe(0);
  const drained = await json(root.dir);
  expect(drained.exitCode).toBe(1);
  expect(drained.status.servers[0]).toMatchObject({ name: 'web-1', health: 'warn', state: 'draining', haproxy: { status: 'DRAIN' } });

  // Another node's host, with no HAProxy of knocker's: its status watches the same cluster.
  const other = await newRoot();
  await fs.mkdir(path.dirname(other.path(PATHS.conf)), { recursive: true });
  await fs.copyFile(root.path(PATHS.conf), other.path(PATHS.conf));
  expect((await haproxy.run('ready', 'web-1')).exitCode).toBe(0);
  const elsewhere = await json(other.dir);
  expect(elsewhere.exitCode).toBe(0);
  expect(elsewhere.status.haproxy).toBeNull();
  expect(elsewhere.status.sources.haproxy).toMatchObject({ ok: false, error: null, absent: expect.stringContaining('HAProxy is not set up on this host') });
});

test('the database cannot be reached: exit 3 saying why, never the password; no knocknoc.conf: exit 3; misuse: exit 2', async () => {
  const root = await newRoot();
  await fs.mkdir(path.dirname(root.path(PATHS.conf)), { recursive: true });
  const port = await freePort('127.0.0.136');
  await fs.writeFile(
    root.path(PATHS.conf),
    `Listen = 127.0.0.136:8756\nDatabaseURL = postgres://knocknoc:hunter2secret@127.0.0.136:${port}/knocknoc\nServerName = web-9\n`,
    { mode: 0o600 },
  );
  const text = await knocker(['status', '--once', '--root', root.dir]);
  expect(text.exitCode).toBe(3);
  expect(text.stdout).toMatch(/the database could not be reached: .*127\.0\.0\.136/);
  const asJson = await knocker(['status', '--json', '--root', root.dir]);
  expect(asJson.exitCode).toBe(3);
  expect(JSON.parse(asJson.stdout)).toMatchObject({ healthy: false, exitCode: 3, servers: [], database: null });
  for (const out of [text.stdout, text.stderr, asJson.stdout, asJson.stderr]) expect(out).not.toContain('hunter2secret');

  const empty = await newRoot();
  const none = await knocker(['status', '--once', '--root', empty.dir]);
  expect(none.exitCode).toBe(3);
  expect(none.stderr).toContain('cannot tell which database to watch');

  for (const args of [['--admin', '--once'], ['--interval', '0.1'], ['--interval', 'soon'], ['--bogus']]) {
    const misuse = await knocker(['status', ...args, '--root', root.dir]);
    expect(misuse.exitCode, args.join(' ')).toBe(2);
    expect(misuse.stdout).toBe('');
  }
  const help = await knocker(['status', '--help']);
  expect(help.exitCode).toBe(0);
  for (const flag of [
    '--once',
    '--json',
    '--interval <seconds>',
    '--admin',
    '--format <format>',
    '--output <file>',
    'Exit codes of --once, --json and --format',
  ])
    expect(help.stdout).toContain(flag);
});
