// knocker standby on hosts' own PostgreSQL in Debian's layout: two Debian-layout clusters made with
// pg_createcluster under PG_CLUSTER_CONF_ROOT (as exposedb-debian.test.ts does), "host" A with
// cluster pa on 127.0.0.90 and "host" B with cluster pb on 127.0.0.91, each with a sandbox root of
// its own for knocker's files; KNOCKER_PG_CLUSTER names the cluster each host's knocker works on.
// The primary is exposed and given a standby by exposedb (in-process, with the host-cluster finder);
// standby init on B replaces the empty cluster Debian created by a clone, keeping B's own
// configuration in /etc/postgresql/…/pb; status on both; switchover there and back through
// pg_ctlcluster.
import { execa } from 'execa';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runExposeDb, type ExposeRequest } from '../../src/exposedb/index.js';
import { findSystemCluster } from '../../src/postgres/locate.js';
import { executeQuoted, withAdminSession } from '../../src/postgres/admin.js';
import { findPgBinaries } from '../../src/postgres/cluster.js';
import { generatePassword, scramVerifier } from '../../src/postgres/scram.js';
import { findSystemClusters, stopSystemCluster, type SystemCluster } from '../../src/postgres/system-cluster.js';
import { buildDatabaseUrl } from '../../src/postgres/url.js';
import { dropInFile } from '../../src/standby/boot-unit.js';
import { STANDBY_PATHS } from '../../src/standby/paths.js';
import { freePort } from '../../src/system/host.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { knocker, type RunResult } from '../helpers/knocker.js';
import { destroyRoot, makeRoot } from '../helpers/roots.js';
import { waitFor } from '../helpers/server.js';
import { createDebianCluster } from '../helpers/pg.js';
import { makeTempDir } from '../helpers/temp.js';

const A = '127.0.0.90';
const B = '127.0.0.91';
let base: string;
let etc: string;
let version: string;
let rootA: Root;
let rootB: Root;
let portA: number;
let portB: number;
let appConn: string;
let bundle: string;
let password = '';
const outputs: string[] = [];
const saved = process.env.PG_CLUSTER_CONF_ROOT;

async function cluster(name: string): Promise<SystemCluster> {
  const found = (await findSystemClusters()).find((c) => c.name === name);
  if (!found) throw new Error(`no cluster ${name}`);
  return found;
}

async function sql<T = Record<string, unknown>>(name: string, text: string, database = 'postgres'): Promise<T[]> {
  const c = await cluster(name);
  return withAdminSession({ socketDir: c.socketDir, port: c.port, osUser: c.osUser, database }, undefined, async (s) => (await s.query<T>(text)).rows);
}

async function standby(root: Root, name: string, ...args: string[]): Promise<RunResult> {
  const result = await knocker(['standby', '--root', root.dir, ...args], {
    env: { PG_CLUSTER_CONF_ROOT: etc, KNOCKER_PG_CLUSTER: `${version}/${name}` },
    timeoutMs: 180_000,
  });
  outputs.push(result.stdout, result.stderr);
  return result;
}

async function status(root: Root, name: string): Promise<{ exitCode: number; report: Record<string, any> }> {
  const result = await standby(root, name, 'status', '--json');
  expect(result.stdout, result.stderr).not.toBe('');
  return { exitCode: result.exitCode, report: JSON.parse(result.stdout) as Record<string, any> };
}

async function exposedb(request: Omit<ExposeRequest, 'conn'>): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runExposeDb(
    { ...request, conn: appConn },
    { root: rootA, io: { out: (l) => out.push(l), err: (l) => err.push(l) }, findCluster: findSystemCluster },
  );
  outputs.push(...out, ...err);
  return { code, out, err };
}

async function createCluster(name: string, port: number): Promise<void> {
  await createDebianCluster({ base, etc, version, name, port, snakeoil: true });
  // pg_rewind needs wal_log_hints (or data checksums), which exposedb --add-standby warns about when off.
  await fs.writeFile(path.join(etc, version, name, 'conf.d', 'rewind.conf'), 'wal_log_hints = on\n');
}

beforeAll(async () => {
  base = await makeTempDir('knocker-standby-debian-');
  await fs.chmod(base, 0o755);
  etc = path.join(base, 'etc');
  await fs.mkdir(etc);
  process.env.PG_CLUSTER_CONF_ROOT = etc;
  version = (await findPgBinaries())!.version;
  portA = await freePort(A);
  portB = await freePort(B);
  await createCluster('pa', portA);
  await createCluster('pb', portB);
  await fs.chmod(etc, 0o755);
  await execa('pg_ctlcluster', [version, 'pa', 'start'], { env: { PG_CLUSTER_CONF_ROOT: etc } });
  // The application's role and database on A, as option 1 on that host would have made them.
  const appPassword = generatePassword();
  const a = await cluster('pa');
  await withAdminSession({ socketDir: a.socketDir, port: a.port, osUser: a.osUser }, undefined, async (s) => {
    await executeQuoted(s, 'CREATE ROLE %I LOGIN PASSWORD %L', ['knocknoc', scramVerifier(appPassword)]);
    await executeQuoted(s, 'CREATE DATABASE %I OWNER %I', ['knocknoc', 'knocknoc']);
  });
  appConn = buildDatabaseUrl({ host: '127.0.0.1', port: portA, user: 'knocknoc', password: appPassword, database: 'knocknoc' });
  [rootA, rootB] = await Promise.all([makeRoot(), makeRoot()]);
  // Traversable, as a real host's / is: PostgreSQL reads the certificates knocker puts under them.
  await Promise.all([fs.chmod(rootA.dir, 0o755), fs.chmod(rootB.dir, 0o755)]);
  const init = await exposedb({ action: 'init', host: A });
  expect(init.code, init.err.join('\n')).toBe(0);
  await sql('pa', 'CREATE TABLE standby_probe (id bigint PRIMARY KEY)', 'knocknoc');
  await sql('pa', 'GRANT ALL ON standby_probe TO knocknoc', 'knocknoc');
}, 180_000);

afterAll(async () => {
  for (const name of ['pa', 'pb']) {
    const c = await cluster(name).catch(() => undefined);
    if (c?.running) await stopSystemCluster(c).catch(() => {});
  }
  if (saved === undefined) delete process.env.PG_CLUSTER_CONF_ROOT;
  else process.env.PG_CLUSTER_CONF_ROOT = saved;
  await Promise.all([rootA && destroyRoot(rootA), rootB && destroyRoot(rootB)]);
  if (base) await fs.rm(base, { recursive: true, force: true });
  expect(password).not.toBe('');
  for (const text of outputs) expect(text).not.toContain(password);
});

test('exposedb --add-standby on a Debian cluster: replication lines in /etc/…/pg_hba.conf, a bundle naming the primary at the printed address', async () => {
  const result = await exposedb({ action: 'add-standby', standby: `${B}:${portB}` });
  expect(result.code, result.err.join('\n')).toBe(0);
  bundle = result.out[0]!;
  const content = JSON.parse(await fs.readFile(bundle, 'utf8')) as {
    password: string;
    primary: { host: string; port: number };
    standby: { host: string; port: number };
  };
  password = content.password;
  expect(content.primary).toEqual({ host: A, port: portA });
  expect(content.standby).toEqual({ host: B, port: portB });
  const hba = await fs.readFile((await cluster('pa')).hbaFile, 'utf8');
  expect(hba).toMatch(new RegExp(`^hostssl  replication  knocker_replicator  ${B.replace(/\./g, '\\.')}/32  scram-sha-256$`, 'm'));
  // systemd's check before the cluster starts, written for this cluster's instance of Debian's unit.
  const dropIn = await fs.readFile(dropInFile(rootA, { version, name: 'pa' }), 'utf8');
  expect(dropIn).toContain(`Environment=KNOCKER_PG_CLUSTER=${version}/pa\n`);
  expect(dropIn).toMatch(/^After=network-online\.target$/m);
  expect(dropIn).toMatch(new RegExp(`^ExecStartPre=/usr/bin/timeout --kill-after=5 60 .+ standby pre-start --root ${rootA.dir}$`, 'm'));
}, 120_000);

test("standby init on a Debian host: the empty cluster Debian made is set aside, the clone streams with this host's own configuration", async () => {
  const b = await cluster('pb');
  // Refused, nothing changed: a cluster the host does not have; a cluster on another port than the bundle's standby.
  const unknown = await standby(rootB, 'nope', 'init', '--bundle', bundle);
  expect(unknown.exitCode).toBe(3);
  expect(unknown.stderr).toContain(`KNOCKER_PG_CLUSTER=${version}/nope: pg_lsclusters lists no such cluster`);
  const wrongPort = await standby(rootB, 'pa', 'init', '--bundle', bundle);
  expect(wrongPort.exitCode).toBe(3);
  expect(wrongPort.stderr).toContain(`knocker exposedb --add-standby ${B}:${portA}`);
  await expect(fs.access(rootB.path(STANDBY_PATHS.state))).rejects.toThrow();
  const dry = await standby(rootB, 'pb', 'init', '--bundle', bundle, '--dry-run', '--json');
  expect(dry.exitCode, dry.stderr).toBe(0);
  expect(JSON.stringify(JSON.parse(dry.stdout))).toContain(`pg_ctlcluster ${version} pb start`);
  const init = await standby(rootB, 'pb', 'init', '--bundle', bundle);
  expect(init.exitCode, init.stderr).toBe(0);
  expect(init.stdout).toContain(`@${A}:${portA},${B}:${portB}/knocknoc?target_session_attrs=read-write`);
  // Debian's cluster is kept, stopped, beside it; the data directory is the clone (postgres, 0700).
  expect((await fs.stat(`${b.dataDir}.before-standby`)).isDirectory()).toBe(true);
  const stat = await fs.stat(b.dataDir);
  expect(stat.mode & 0o777).toBe(0o700);
  expect(stat.uid).toBe((await fs.stat(path.join(b.dataDir, 'PG_VERSION'))).uid);
  await fs.access(path.join(b.dataDir, 'standby.signal'));
  // No configuration file copied into the data directory; postgresql.auto.conf holds this host's own settings.
  await expect(fs.access(path.join(b.dataDir, 'postgresql.conf'))).rejects.toThrow();
  const auto = await fs.readFile(path.join(b.dataDir, 'postgresql.auto.conf'), 'utf8');
  expect(auto).toContain(`listen_addresses = '${B}'`);
  expect(auto).toMatch(/primary_conninfo = '.*user=knocker_replicator passfile=.*sslmode=verify-full/);
  expect(auto).toContain(`ssl_cert_file = '${rootB.path(PATHS.pgTlsCert)}'`);
  expect(auto).not.toContain(password);
  expect(await fs.readFile(b.hbaFile, 'utf8')).toMatch(/^hostssl {2}replication {2}knocker_replicator {2}127\.0\.0\.90\/32 {2}scram-sha-256$/m);
  expect((await fs.stat(rootB.path(STANDBY_PATHS.passfile))).mode & 0o777).toBe(0o600);
  // pg_lsclusters sees it as Debian's cluster pb, online, in recovery.
  const listed = await execa('pg_lsclusters', ['--no-header'], { env: { PG_CLUSTER_CONF_ROOT: etc } });
  expect(listed.stdout).toMatch(new RegExp(`^${version}\\s+pb\\s+${portB}\\s+online,recovery\\s`, 'm'));
  // A row written on A reaches B.
  await sql('pa', 'INSERT INTO standby_probe VALUES (1)', 'knocknoc');
  await waitFor('the row on the standby', async () =>
    (await sql('pb', 'SELECT 1 FROM standby_probe WHERE id = 1', 'knocknoc')).length === 1 ? true : undefined,
  );
  expect(await fs.readFile(dropInFile(rootB, { version, name: 'pb' }), 'utf8')).toContain(`Environment=KNOCKER_PG_CLUSTER=${version}/pb\n`);
  // Again: nothing to change.
  const again = await standby(rootB, 'pb', 'init', '--bundle', bundle);
  expect(again.exitCode, again.stderr).toBe(0);
  expect(again.stderr).toContain('Nothing to change');
}, 240_000);

test('standby status on both Debian hosts', async () => {
  const onB = await status(rootB, 'pb');
  expect(onB.exitCode).toBe(0);
  expect(onB.report.node).toMatchObject({ host: B, role: 'standby', timeline: 1 });
  expect(onB.report.receiver).toMatchObject({ status: 'streaming', sender: `${A}:${portA}` });
  expect(onB.report.peer).toMatchObject({ host: A, role: 'primary', answers: true });
  const onA = await status(rootA, 'pa');
  expect(onA.exitCode).toBe(0);
  expect(onA.report.node).toMatchObject({ host: A, role: 'primary', timeline: 1 });
  expect(onA.report.slots[0]).toMatchObject({ name: 'knocker_127_0_0_91', active: true });
}, 60_000);

test('switchover there and back through pg_ctlcluster: each cluster keeps its own /etc configuration', async () => {
  const confA = await fs.readFile(path.join(etc, version, 'pa', 'postgresql.conf'), 'utf8');
  const over = await standby(rootA, 'pa', 'switchover');
  expect(over.exitCode, over.stderr).toBe(0);
  expect(over.stdout.trim()).toBe(`primary ${B}:${portB}`);
  await sql('pb', 'INSERT INTO standby_probe VALUES (2)', 'knocknoc');
  await waitFor('the row on the old primary, now a standby', async () =>
    (await sql('pa', 'SELECT 1 FROM standby_probe WHERE id = 2', 'knocknoc')).length === 1 ? true : undefined,
  );
  const onA = await status(rootA, 'pa');
  expect(onA.report.node).toMatchObject({ role: 'standby', timeline: 2 });
  expect(onA.report.receiver).toMatchObject({ status: 'streaming' });
  expect((await status(rootB, 'pb')).report.node).toMatchObject({ role: 'primary', timeline: 2 });
  expect(await fs.readFile(path.join(etc, version, 'pa', 'postgresql.conf'), 'utf8')).toBe(confA);
  const back = await standby(rootB, 'pb', 'switchover');
  expect(back.exitCode, back.stderr).toBe(0);
  expect(back.stdout.trim()).toBe(`primary ${A}:${portA}`);
  await sql('pa', 'INSERT INTO standby_probe VALUES (3)', 'knocknoc');
  await waitFor('the row on B again', async () => ((await sql('pb', 'SELECT 1 FROM standby_probe WHERE id = 3', 'knocknoc')).length === 1 ? true : undefined));
  expect((await status(rootB, 'pb')).report.node).toMatchObject({ role: 'standby', timeline: 3 });
}, 240_000);

test('primary A lost (stopped -m immediate): promote B; rejoin A with pg_rewind (its configuration outside the data directory, --config-file)', async () => {
  await sql('pa', 'INSERT INTO standby_probe VALUES (4)', 'knocknoc');
  await waitFor('row 4 on B', async () => ((await sql('pb', 'SELECT 1 FROM standby_probe WHERE id = 4', 'knocknoc')).length === 1 ? true : undefined));
  await execa('pg_ctlcluster', [version, 'pa', 'stop', '-m', 'immediate'], { env: { PG_CLUSTER_CONF_ROOT: etc } });
  const promote = await standby(rootB, 'pb', 'promote');
  expect(promote.exitCode, promote.stderr).toBe(0);
  expect(promote.stdout.trim()).toBe(`primary ${B}:${portB}`);
  await sql('pb', 'INSERT INTO standby_probe VALUES (5)', 'knocknoc');
  const rejoin = await standby(rootA, 'pa', 'rejoin');
  expect(rejoin.exitCode, rejoin.stderr).toBe(0);
  expect(rejoin.stdout.trim(), rejoin.stderr).toMatch(new RegExp(`^standby of ${B.replace(/\./g, '\\.')}:${portB} \\(rewind\\)$`));
  await waitFor("row 5 on A, now B's standby", async () =>
    (await sql('pa', 'SELECT 1 FROM standby_probe WHERE id = 5', 'knocknoc')).length === 1 ? true : undefined,
  );
  const onA = await status(rootA, 'pa');
  expect(onA.exitCode).toBe(0);
  expect(onA.report.node).toMatchObject({ host: A, role: 'standby' });
  expect(onA.report.receiver).toMatchObject({ status: 'streaming', sender: `${B}:${portB}` });
  await expect(fs.access(path.join((await cluster('pa')).dataDir, 'postgresql.conf'))).rejects.toThrow();
}, 240_000);

/**
 * Starts a cluster as systemd starts its unit: the drop-in's ExecStartPre as it is written (its
 * Environment=, systemd's PATH and nothing else of this process's environment but the test's
 * /etc/postgresql), then, if it exits 0, ExecStart (pg_ctlcluster start).
 */
async function startAsSystemdWould(root: Root, name: string): Promise<{ preStart: { exitCode: number; stdout: string; stderr: string } }> {
  const text = await fs.readFile(dropInFile(root, { version, name }), 'utf8');
  const env: Record<string, string> = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', PG_CLUSTER_CONF_ROOT: etc };
  for (const [, key, value] of text.matchAll(/^Environment=([A-Z_]+)=(\S+)$/gm)) env[key!] = value!;
  const argv = /^ExecStartPre=(.+)$/m.exec(text)![1]!.split(' ');
  const preStart = await execa(argv[0]!, argv.slice(1), { env, extendEnv: false, reject: false });
  outputs.push(preStart.stdout, preStart.stderr);
  if (preStart.exitCode === 0) await execa('pg_ctlcluster', [version, name, 'start'], { env: { PG_CLUSTER_CONF_ROOT: etc } });
  return { preStart: { exitCode: preStart.exitCode ?? -1, stdout: preStart.stdout, stderr: preStart.stderr } };
}

test('started by its unit (the drop-in): a check that cannot decide keeps it stopped; the primary restarted with its standby up starts writable; the old primary, down while the standby was promoted, comes back read-only even when the new primary does not answer', async () => {
  // B is the primary, A its standby. B restarted: A answers as a standby, so B starts as it was.
  await execa('pg_ctlcluster', [version, 'pb', 'stop'], { env: { PG_CLUSTER_CONF_ROOT: etc } });
  // A check that cannot decide (the pair's state unreadable) fails: systemd does not start the cluster.
  const stateFile = rootB.path(STANDBY_PATHS.state);
  const state = await fs.readFile(stateFile, 'utf8');
  await fs.writeFile(stateFile, '{"version": 1, "self": {');
  const undecided = await startAsSystemdWould(rootB, 'pb');
  await fs.writeFile(stateFile, state);
  expect(undecided.preStart.exitCode).toBe(3);
  expect(undecided.preStart.stderr).toContain(`${stateFile} cannot be read`);
  expect((await cluster('pb')).running).toBe(false);
  const restart = await startAsSystemdWould(rootB, 'pb');
  expect(restart.preStart.exitCode, restart.preStart.stderr).toBe(0);
  expect(restart.preStart.stdout).toBe('primary');
  expect(restart.preStart.stderr).toContain(`${A}:${portA} answers as a standby`);
  await sql('pb', 'INSERT INTO standby_probe VALUES (6)', 'knocknoc');
  await waitFor('row 6 on A', async () => ((await sql('pa', 'SELECT 1 FROM standby_probe WHERE id = 6', 'knocknoc')).length === 1 ? true : undefined));

  // B lost; A promoted while B is down.
  await execa('pg_ctlcluster', [version, 'pb', 'stop', '-m', 'immediate'], { env: { PG_CLUSTER_CONF_ROOT: etc } });
  const promote = await standby(rootA, 'pa', 'promote');
  expect(promote.exitCode, promote.stderr).toBe(0);
  await sql('pa', 'INSERT INTO standby_probe VALUES (7)', 'knocknoc');

  // B booted while A, the new primary, is stalled (SIGSTOP): no answer within the bound, so B starts read-only.
  const postmaster = Number((await fs.readFile(path.join((await cluster('pa')).dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  process.kill(postmaster, 'SIGSTOP');
  let boot: Awaited<ReturnType<typeof startAsSystemdWould>>;
  try {
    boot = await startAsSystemdWould(rootB, 'pb');
  } finally {
    process.kill(postmaster, 'SIGCONT');
  }
  expect(boot.preStart.exitCode, boot.preStart.stderr).toBe(0);
  expect(boot.preStart.stdout).toBe('fenced');
  expect(boot.preStart.stderr).toContain(`fenced: the other database host ${A}:${portA} does not answer`);
  expect(boot.preStart.stderr).toContain('knocker standby promote');
  // Bounded by itself: the drop-in's line runs under `timeout 60`, which would have ended it with
  // 124 and no word; exit 0 and "fenced" say the check gave up on the stalled peer on its own.
  expect(await sql('pb', 'SELECT pg_is_in_recovery() AS r')).toEqual([{ r: true }]);
  await expect(sql('pb', 'INSERT INTO standby_probe VALUES (8)', 'knocknoc')).rejects.toThrow(/read-only/);
  expect(await fs.readFile(path.join(rootB.path(STANDBY_PATHS.log)), 'utf8')).toContain('pre-start: fenced:');

  // Rejoin makes it A's streaming standby; then a switchover puts the roles back (B primary) for the next test.
  const rejoin = await standby(rootB, 'pb', 'rejoin');
  expect(rejoin.exitCode, rejoin.stderr).toBe(0);
  await waitFor("row 7 on B, now A's standby", async () =>
    (await sql('pb', 'SELECT 1 FROM standby_probe WHERE id = 7', 'knocknoc')).length === 1 ? true : undefined,
  );
  expect((await status(rootB, 'pb')).report.receiver).toMatchObject({ status: 'streaming', sender: `${A}:${portA}` });
  const back = await standby(rootA, 'pa', 'switchover');
  expect(back.exitCode, back.stderr).toBe(0);
  expect(back.stdout.trim()).toBe(`primary ${B}:${portB}`);
}, 240_000);

test('remove on both Debian hosts: B (the standby again after a switchover) gets back the cluster Debian created; A drops the slot and the replication lines', async () => {
  const over = await standby(rootB, 'pb', 'switchover');
  expect(over.exitCode, over.stderr).toBe(0);
  const b = await cluster('pb');
  const dry = await standby(rootB, 'pb', 'remove', '--dry-run', '--json');
  expect(dry.exitCode, dry.stderr).toBe(0);
  const removed = await standby(rootB, 'pb', 'remove');
  expect(removed.exitCode, removed.stderr).toBe(0);
  await expect(fs.access(`${b.dataDir}.before-standby`)).rejects.toThrow();
  await expect(fs.access(path.join(b.dataDir, 'standby.signal'))).rejects.toThrow();
  expect(await fs.readFile(b.hbaFile, 'utf8')).not.toContain('knocker_replicator');
  const listed = await execa('pg_lsclusters', ['--no-header'], { env: { PG_CLUSTER_CONF_ROOT: etc } });
  expect(listed.stdout).toMatch(new RegExp(`^${version}\\s+pb\\s+${portB}\\s+online\\s`, 'm'));
  // Debian's own empty cluster: no knocknoc database in it.
  expect(await sql('pb', `SELECT 1 FROM pg_database WHERE datname = 'knocknoc'`)).toEqual([]);
  await expect(fs.access(rootB.path(STANDBY_PATHS.state))).rejects.toThrow();
  const onA = await standby(rootA, 'pa', 'remove');
  expect(onA.exitCode, onA.stderr).toBe(0);
  expect(await sql('pa', 'SELECT slot_name FROM pg_replication_slots')).toEqual([]);
  expect(await fs.readFile((await cluster('pa')).hbaFile, 'utf8')).not.toContain('knocker_replicator');
  expect((await sql('pa', 'SELECT count(*)::int AS n FROM standby_probe', 'knocknoc'))[0]).toEqual({ n: 7 });
  // systemd's check before a start went with the pair, on both hosts.
  await expect(fs.access(dropInFile(rootA, { version, name: 'pa' }))).rejects.toThrow();
  await expect(fs.access(dropInFile(rootB, { version, name: 'pb' }))).rejects.toThrow();
}, 240_000);
