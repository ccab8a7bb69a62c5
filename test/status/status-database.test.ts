// The dashboard's database panel on real clusters: a primary with a streaming standby (each
// standby's lag in bytes and time, hidden without pg_monitor), the standby itself (its role and
// how far behind it is), and the exposedb allow-list of a sandbox root's own cluster.
import { execa } from 'execa';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startCluster, stopCluster, writeClusterSettings, type PrivateCluster } from '../../src/postgres/cluster.js';
import { parseDatabaseUrl, buildDatabaseUrl } from '../../src/postgres/url.js';
import { freePort } from '../../src/system/host.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { installPrimary } from '../helpers/exposedb.js';
import { knocker } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';
import { sharedDatabase, startServer } from '../helpers/server.js';
import { makeTempDir } from '../helpers/temp.js';

const NODE_HOST = '127.0.0.151';
const STANDBY_HOST = '127.0.0.152';
const db = sharedDatabase({ host: '127.0.0.150', allow: [NODE_HOST] });
const newRoot = useRoots();
let standby: PrivateCluster;
let standbyBase: string;

/** A streaming standby of the shared cluster, named standby-1, letting the node's host log in. */
beforeAll(async () => {
  const primary = db.cluster;
  await fs.appendFile(path.join(primary.dataDir, 'pg_hba.conf'), 'local replication all peer\n');
  await primary.admin('SELECT pg_reload_conf()');
  standbyBase = await makeTempDir('knocker-standby-');
  const owner = primary.osUser;
  await execa('chown', [owner, standbyBase]);
  standby = {
    bin: primary.bin,
    dataDir: path.join(standbyBase, 'data'),
    socketDir: path.join(standbyBase, 'sock'),
    logFile: path.join(standbyBase, 'postgresql.log'),
    host: STANDBY_HOST,
    port: await freePort(STANDBY_HOST),
    osUser: owner,
  };
  await execa('runuser', [
    '-u',
    owner,
    '--',
    path.join(primary.bin.dir, 'pg_basebackup'),
    '-h',
    primary.socketDir,
    '-p',
    String(primary.port),
    '-D',
    standby.dataDir,
    '-X',
    'stream',
    '--checkpoint=fast',
  ]);
  await writeClusterSettings(standby);
  await fs.appendFile(path.join(standby.dataDir, 'pg_hba.conf'), `host all all ${NODE_HOST}/32 scram-sha-256\n`);
  await fs.appendFile(
    path.join(standby.dataDir, 'postgresql.auto.conf'),
    `primary_conninfo = 'host=${primary.socketDir} port=${primary.port} user=${owner} application_name=standby-1'\n`,
  );
  await fs.writeFile(path.join(standby.dataDir, 'standby.signal'), '');
  await execa('chown', ['-R', owner, standbyBase]);
  await startCluster(standby);
}, 120_000);
afterAll(async () => {
  if (standby) await stopCluster(standby, undefined, 'immediate').catch(() => {});
  if (standbyBase) await fs.rm(standbyBase, { recursive: true, force: true });
});

/** A root whose knocknoc.conf is a node's, pointing at `databaseUrl`. */
async function rootFor(databaseUrl: string, listen: string): Promise<Root> {
  const root = await newRoot();
  await fs.mkdir(path.dirname(root.path(PATHS.conf)), { recursive: true });
  await fs.writeFile(root.path(PATHS.conf), `Listen = ${listen}\nDatabaseURL = ${databaseUrl}\nServerName = web-1\n`, { mode: 0o600 });
  return root;
}

async function statusJson(
  root: Root,
): Promise<{ exitCode: number; status: { database: Record<string, unknown> & { standbys: Array<Record<string, unknown>> } } }> {
  const result = await knocker(['status', '--json', '--root', root.dir]);
  expect(result.stderr).toBe('');
  return { exitCode: result.exitCode, status: JSON.parse(result.stdout) };
}

test('a primary lists its standby: lag hidden without pg_monitor, then in bytes and time; the standby shows itself as one', async () => {
  const node = await startServer({ host: NODE_HOST, databaseUrl: db.url, name: 'web-1' });
  const listen = `${node.host}:${node.port}`;
  const onPrimary = await rootFor(db.url, listen);
  await expect
    .poll(async () => (await db.cluster.admin<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'"))[0]!.n, {
      timeout: 20_000,
    })
    .toBe(1);

  const hidden = await statusJson(onPrimary);
  expect(hidden.exitCode).toBe(0);
  expect(hidden.status.database).toMatchObject({ role: 'primary', limited: true, schemaVersion: 2, connections: { max: 100 } });
  expect(hidden.status.database.standbys).toEqual([
    { name: 'standby-1', clientAddress: null, state: null, syncState: null, lagBytes: null, lagSeconds: null, slot: null },
  ]);
  const hiddenText = await knocker(['status', '--once', '--root', onPrimary.dir]);
  expect(hiddenText.stdout).toContain('database primary, 1 standby (lag hidden: needs pg_monitor)');
  expect(hiddenText.stdout).toContain('standby standby-1: ?, lag hidden (needs pg_monitor)');

  await db.cluster.admin('GRANT pg_monitor TO knocknoc');
  try {
    const shown = await statusJson(onPrimary);
    expect(shown.status.database).toMatchObject({ limited: false });
    expect(shown.status.database.standbys[0]).toMatchObject({ name: 'standby-1', state: 'streaming', syncState: 'async', lagBytes: expect.any(Number) });
    const text = await knocker(['status', '--once', '--root', onPrimary.dir]);
    expect(text.stdout).toMatch(/database primary, 1 standby, worst lag \d+(\.\d)? (B|KiB|MiB)/);
    expect(text.stdout).toMatch(/standby standby-1: streaming, async, lag \d+(\.\d)? (B|KiB|MiB)/);
  } finally {
    await db.cluster.admin('REVOKE pg_monitor FROM knocknoc');
  }

  // The same registry read through the standby: a read-only copy, and it says so.
  const parsed = parseDatabaseUrl(db.url);
  if (!parsed.ok) throw new Error(parsed.error);
  const standbyUrl = buildDatabaseUrl({ ...parsed.value, host: STANDBY_HOST, port: standby.port, hosts: undefined });
  const onStandby = await rootFor(standbyUrl, listen);
  const replica = await statusJson(onStandby);
  expect(replica.exitCode).toBe(0);
  expect(replica.status.database).toMatchObject({ role: 'standby', standbys: [], upstream: { connected: true, lagBytes: expect.any(Number) } });
  const text = await knocker(['status', '--once', '--root', onStandby.dir]);
  expect(text.stdout).toMatch(/database standby, lag \d+(\.\d)? (B|KiB|MiB)/);
  expect(text.stdout).toContain('receiving from its primary');
});

test("the exposedb allow-list of this host's own cluster: not exposed, then the allowed ranges", async () => {
  const root = await newRoot();
  await installPrimary(root, '127.0.0.155');
  const before = await statusJson(root);
  expect(before.exitCode).toBe(0);
  expect(before.status.database.allowList).toEqual({ cidrs: [], exposed: false });
  expect((await knocker(['exposedb', '--init', '--root', root.dir])).exitCode).toBe(0);
  expect((await knocker(['exposedb', '--add', '10.1.2.3/24', '--root', root.dir])).exitCode).toBe(0);
  expect((await knocker(['exposedb', '--add', '127.0.0.156/32', '--root', root.dir])).exitCode).toBe(0);
  const after = await statusJson(root);
  expect(after.status.database.allowList).toEqual({ cidrs: ['10.1.2.0/24', '127.0.0.156/32'], exposed: true });
  const text = await knocker(['status', '--once', '--root', root.dir]);
  expect(text.stdout).toContain('allow-list: 10.1.2.0/24, 127.0.0.156/32');
});
