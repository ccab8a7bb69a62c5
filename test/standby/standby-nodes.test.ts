// The standby and the web nodes together, all real processes on sandbox roots: a primary (root A,
// 127.0.0.90, database option 1, exposed), its standby (root B, 127.0.0.91, `knocker standby
// init`), two knocknoc-server nodes run by `knocker service` on their own roots (127.0.0.92-93)
// with the multi-host DatabaseURL `standby init` printed, knocker's HAProxy (127.0.0.95) in front
// with steady load through it. One story, in order: exposedb prints the multi-host form; an
// upgrade whose migration replicates to the standby, no request failed; kill -9 of the primary's
// PostgreSQL, `standby promote`, the nodes serving from the new primary; the old primary started
// again fenced, the nodes staying; rejoin; a switchover back under load, every request answered;
// the installer given the printed string.
import fs from 'node:fs/promises';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { KnocknocConf } from '../../src/config/knocknoc-conf.js';
import { parseDatabaseUrl, withRootCert } from '../../src/postgres/url.js';
import { freePort } from '../../src/system/host.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { installPrimary } from '../helpers/exposedb.js';
import { knocker, type RunResult } from '../helpers/knocker.js';
import { makeRelease, type TestRelease } from '../helpers/release.js';
import { destroyRoot, makeRoot } from '../helpers/roots.js';
import { request, waitFor } from '../helpers/server.js';
import { killPostmaster, sql } from '../helpers/standby.js';
import { startUpgradeCluster, steadyLoad, type UpgradeCluster } from '../helpers/upgrade.js';

const A = '127.0.0.90';
const B = '127.0.0.91';
const NODES = ['127.0.0.92', '127.0.0.93'];
const INSTALLED = '127.0.0.94';
const HAPROXY = '127.0.0.95';
let rootA: Root;
let rootB: Root;
let port: number;
let multi: string;
let web: UpgradeCluster | undefined;
let next: TestRelease | undefined;
const extraRoots: Root[] = [];

async function run(args: string[]): Promise<RunResult> {
  return knocker(args, { timeoutMs: 180_000 });
}
const standby = (root: Root, ...args: string[]) => run(['standby', '--root', root.dir, ...args]);

async function nodeStatus(host: string, nodePort: number): Promise<{ http: number; databaseHost: string | null } | undefined> {
  try {
    const reply = await request(`http://${host}:${nodePort}/_status`, { timeoutMs: 10_000 });
    return { http: reply.status, databaseHost: (JSON.parse(reply.body) as { databaseHost: string | null }).databaseHost };
  } catch {
    return undefined;
  }
}

/** Every web node answers 200 from `host`. */
async function allOn(host: string, timeoutMs = 60_000): Promise<void> {
  for (const node of web!.nodes) {
    await waitFor(
      `${node.name} 200 from ${host}:${port}`,
      async () => {
        const s = await nodeStatus(node.host, node.port);
        return s?.http === 200 && s.databaseHost === `${host}:${port}` ? true : undefined;
      },
      timeoutMs,
    );
  }
}

async function schemaVersion(root: Root): Promise<number> {
  return (await sql<{ v: number }>(root, 'SELECT max(version)::int AS v FROM knocknoc_schema_migrations'))[0]!.v;
}

beforeAll(async () => {
  [rootA, rootB] = await Promise.all([makeRoot(), makeRoot()]);
  await installPrimary(rootA, A);
  // The primary's own web node is not one of the nodes under test: stopped and out of the registry.
  expect((await run(['service', 'stop', 'server', '--root', rootA.dir])).exitCode).toBe(0);
  await sql(rootA, 'DELETE FROM servers');
  const init = await run(['exposedb', '--root', rootA.dir, '--init']);
  expect(init.exitCode, init.stderr).toBe(0);
  port = Number(new URL(init.stdout.trim()).port);
  // The nodes are allowed before the standby is cloned: its pg_hba.conf gets the allow-list then.
  for (const host of [...NODES, INSTALLED]) expect((await run(['exposedb', '--root', rootA.dir, '--add', `${host}/32`])).exitCode).toBe(0);
  const add = await run(['exposedb', '--root', rootA.dir, '--add-standby', B]);
  expect(add.exitCode, add.stderr).toBe(0);
  const made = await standby(rootB, 'init', '--bundle', add.stdout.trim());
  expect(made.exitCode, made.stderr).toBe(0);
  multi = made.stdout.trim();
  // The standby's host is a web node with database option 3 too (installed with --database-ca):
  // the CA file the printed string names is there. The test's nodes read it from that path.
  await fs.mkdir(rootB.path('/opt/knocknoc/etc'), { recursive: true });
  await fs.copyFile(rootA.path(PATHS.clusterCaCert), rootB.path(PATHS.databaseCa));
  next = await makeRelease({
    version: '1.1.0',
    migrations: [
      {
        name: 'standby_marker',
        sql: 'CREATE TABLE standby_marker (migrated_at timestamptz NOT NULL DEFAULT now()); INSERT INTO standby_marker DEFAULT VALUES;',
      },
    ],
  });
  web = await startUpgradeCluster({ hosts: NODES, haproxyHost: HAPROXY, databaseUrl: multi });
}, 240_000);

afterAll(async () => {
  await web?.stop();
  await next?.destroy();
  await Promise.all([rootA && destroyRoot(rootA), rootB && destroyRoot(rootB), ...extraRoots.map(destroyRoot)]);
});

test('exposedb once a standby exists: --init prints the multi-host form (primary, standby, read-write, verify-full with the CA); --add says so', async () => {
  const again = await run(['exposedb', '--root', rootA.dir, '--init']);
  expect(again.exitCode, again.stderr).toBe(0);
  expect(again.stderr).toContain('Nothing to change');
  expect(again.stderr).toContain(`This primary has a standby (${B}:${port})`);
  const printed = again.stdout.trim();
  const parsed = parseDatabaseUrl(printed);
  const fromInit = parseDatabaseUrl(multi);
  expect(parsed.ok && fromInit.ok).toBe(true);
  if (!parsed.ok || !fromInit.ok) return;
  // The same string standby init printed, the CA being the nodes' copy on this host.
  expect({ ...parsed.value, sslrootcert: '' }).toEqual({ ...fromInit.value, sslrootcert: '' });
  expect(parsed.value.hosts).toEqual([
    { host: A, port },
    { host: B, port },
  ]);
  expect(parsed.value).toMatchObject({ user: 'knocknoc_remote', database: 'knocknoc', sslmode: 'verify-full', sslrootcert: rootA.path(PATHS.databaseCa) });
  expect(parsed.value.targetSessionAttrs).toBe('read-write');
  // The single-host string stays in the file --add-standby reads.
  expect(await fs.readFile(rootA.path(PATHS.exposedbUrl), 'utf8')).not.toContain(`,${B}`);
  const add = await run(['exposedb', '--root', rootA.dir, '--add', '127.0.0.96/32']);
  expect(add.exitCode).toBe(0);
  expect(add.stderr).toContain(`note: this host is the primary; its standby is ${B}:${port}`);
  expect(add.stderr).toContain(`knocker exposedb --root ${rootA.dir} --init`);
  // The standby's pg_hba.conf follows the primary's list: the change itself took it there.
  expect(add.stderr).toContain(`the standby ${B}: pg_hba.conf allow-list brought up to date (checked by PostgreSQL, reloaded)`);
  expect(add.stderr).not.toContain('warning');
  const standbyHba = await fs.readFile(rootB.path(`${PATHS.pgData}/pg_hba.conf`), 'utf8');
  expect(standbyHba).toContain(`${NODES[0]}/32`);
  expect(standbyHba).toContain('127.0.0.96/32');
  // Already allowed: the note again, no warning.
  const same = await run(['exposedb', '--root', rootA.dir, '--add', `${NODES[0]}/32`]);
  expect(same.stdout).toContain('Unchanged');
  expect(same.stderr).toContain(`note: this host is the primary; its standby is ${B}:${port}`);
  expect(same.stderr).not.toContain('warning');
});

test('the web nodes serve from the primary through the multi-host string', async () => {
  await allOn(A);
});

test('knocker upgrade with a standby under steady load: the migration replicated to the standby, no request failed', async () => {
  const before = await schemaVersion(rootA);
  const load = steadyLoad(web!.haproxy.url, 50);
  await new Promise((r) => setTimeout(r, 500));
  const result = await knocker(['upgrade', '--root', web!.root.dir, '--upgrade-command', web!.commandFor(next!.dir), '--non-interactive'], {
    timeoutMs: 180_000,
  });
  await new Promise((r) => setTimeout(r, 500));
  const report = await load.stop();
  expect(result.exitCode, result.stdout + result.stderr).toBe(0);
  expect(report.failed, JSON.stringify(report.failed.slice(0, 5))).toEqual([]);
  expect(report.total).toBeGreaterThan(50);
  expect(report.versions.get('1.1.0')).toBeGreaterThan(0);
  const after = await schemaVersion(rootA);
  expect(after).toBe(before + 1);
  await waitFor('the standby to replay the migration', async () => ((await schemaVersion(rootB).catch(() => 0)) === after ? true : undefined), 30_000);
  expect((await sql<{ n: number }>(rootB, 'SELECT count(*)::int AS n FROM standby_marker'))[0]!.n).toBe(1);
}, 240_000);

test('kill -9 of the primary, standby promote: every web node serves from the new primary; the old one started again is fenced and the nodes stay', async () => {
  await allOn(A);
  await killPostmaster(rootA);
  const promoted = await standby(rootB, 'promote');
  expect(promoted.exitCode, promoted.stderr).toBe(0);
  await allOn(B);
  // The nodes write there: their heartbeat rows on the new primary are fresh.
  await waitFor('heartbeats on the new primary', async () => {
    const rows = await sql<{ n: number }>(
      rootB,
      `SELECT count(*)::int AS n FROM servers WHERE state = 'running' AND last_seen > now() - interval '10 seconds'`,
    );
    return rows[0]!.n === NODES.length ? true : undefined;
  });

  const started = await run(['service', '--root', rootA.dir, 'start', 'postgres']);
  expect(started.exitCode, started.stderr).toBe(0);
  expect(started.stdout + started.stderr).toContain(`fenced: ${B} is the primary now`);
  const ro = await sql<{ r: boolean; ro: string }>(rootA, `SELECT pg_is_in_recovery() AS r, current_setting('transaction_read_only') AS ro`);
  expect(ro[0]).toEqual({ r: true, ro: 'on' });
  await expect(sql(rootA, 'CREATE TABLE after_fence (id integer)')).rejects.toThrow(/read-only transaction/);
  // HAProxy took the nodes out of rotation while the database was lost: back in (2 passing checks).
  for (const node of web!.nodes)
    await waitFor(`${node.name} UP in HAProxy`, async () => ((await web!.haproxy.statusOf(node.name)).statusText === 'UP' ? true : undefined), 30_000);
  // The nodes, which list A first, stay on B: each heartbeats there after A is back.
  const [{ t }] = (await sql<{ t: string }>(rootB, 'SELECT now()::text AS t')) as [{ t: string }];
  const load = steadyLoad(web!.haproxy.url, 20);
  await waitFor('a heartbeat of every node on B after A came back', async () => {
    const rows = await sql<{ n: number }>(rootB, `SELECT count(*)::int AS n FROM servers WHERE state = 'running' AND last_seen > $1::timestamptz`, [t]);
    return rows[0]!.n === NODES.length ? true : undefined;
  });
  const report = await load.stop();
  expect(report.failed, JSON.stringify(report.failed.slice(0, 5))).toEqual([]);
  for (const node of web!.nodes) expect(await nodeStatus(node.host, node.port)).toEqual({ http: 200, databaseHost: `${B}:${port}` });
}, 240_000);

test('rejoin, then a switchover back under steady load: every request answered, the nodes on the new primary', async () => {
  const rejoined = await standby(rootA, 'rejoin');
  expect(rejoined.exitCode, rejoined.stderr).toBe(0);
  await waitFor(
    'A streaming from B',
    async () => {
      const s = JSON.parse((await standby(rootA, 'status', '--json')).stdout) as { receiver?: { status: string } };
      return s.receiver?.status === 'streaming' ? true : undefined;
    },
    60_000,
  );
  // exposedb names the roles as they are now (A the standby since the promote), not as the pair was made.
  const listed = await run(['exposedb', '--root', rootA.dir, '--list']);
  expect(listed.exitCode, listed.stderr).toBe(0);
  expect(listed.stderr).toContain(`note: this host is the standby now; the primary is ${B}:${port}`);
  const init = await run(['exposedb', '--root', rootA.dir, '--init']);
  expect(init.stderr).toContain(`This host is the standby now (the primary is ${B}:${port})`);
  expect(init.stderr).not.toContain('This primary');
  const load = steadyLoad(web!.haproxy.url, 50);
  await new Promise((r) => setTimeout(r, 1000));
  const result = await standby(rootB, 'switchover');
  expect(result.exitCode, result.stderr).toBe(0);
  expect(result.stdout.trim()).toBe(`primary ${A}:${port}`);
  await allOn(A);
  await new Promise((r) => setTimeout(r, 1000));
  const report = await load.stop();
  expect(report.failed, JSON.stringify(report.failed.slice(0, 5))).toEqual([]);
  expect(report.total).toBeGreaterThan(50);
}, 240_000);

test('knocker install, database option 3, with the string standby init printed: each host checked and named, the string written as given', async () => {
  const root = await makeRoot();
  extraRoots.push(root);
  const listen = `${INSTALLED}:${await freePort(INSTALLED)}`;
  const result = await knocker(
    ['install', '--root', root.dir, '--listen', listen, '--server-name', 'web-9', '--database-option', '3', '--database-ca', rootA.path(PATHS.clusterCaCert)],
    {
      // The release the database is at since the upgrade.
      bin: next!.knockerBin,
      env: { KNOCKNOC_DATABASE_URL: multi },
    },
  );
  expect(result.stdout).toBe('');
  expect(result.exitCode, result.stdout).toBe(0);
  // A is the primary again (the switchover), B its standby.
  expect(result.stderr).toMatch(new RegExp(`✔ ok +database host ${A.replace(/\./g, '\\.')}:${port}: primary \\(read-write\\)`));
  expect(result.stderr).toMatch(new RegExp(`✔ ok +database host ${B.replace(/\./g, '\\.')}:${port}: standby \\(in recovery, read-only\\)`));
  const conf = KnocknocConf.parse(await fs.readFile(root.path(PATHS.conf), 'utf8'));
  // As given but for the CA file, which is this node's copy (the same path on real hosts, where
  // the string standby init printed is then written unchanged).
  expect(conf.get('DatabaseURL')).toBe(withRootCert(multi, root.path(PATHS.databaseCa)));
  expect(withRootCert(multi, rootB.path(PATHS.databaseCa))).toBe(multi);
  const status = await request(`http://${listen}/_status`);
  expect(JSON.parse(status.body)).toMatchObject({ status: 'ok', databaseHost: `${A}:${port}` });
}, 180_000);
