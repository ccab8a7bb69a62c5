// knocker standby on real PostgreSQL: a primary on 127.0.0.80 (sandbox root A, database option 1,
// exposed with TLS from the cluster's CA), its standby on 127.0.0.81 (root B), a writer on
// 127.0.0.82 going through whichever host takes writes. The tests run in order, one story:
// add-standby, a clone cut off and re-run under write load, status, switchover there and back
// under load counting every acknowledged write, kill -9 of the primary and promote, the old
// primary fenced when started again, rejoin with pg_rewind, a same-timeline divergence re-cloned,
// remove. Traps of research/standby.md section 4.9 covered here: 1 (no password in
// postgresql.auto.conf), 2 (cut-off clone's slot dropped; max_slot_wal_keep_size), 3 (own
// settings after clone and rewind), 4 (promote and rejoin CHECKPOINT the new primary, and the
// rewind right after the promotion reports the divergence; pg_rewind's own "no rewind required"
// without it depends on the checkpointer's timing here and is not reproduced as a control),
// 5 (primary_conninfo is the replication role's, not pg_rewind's), 6 (same timeline → re-clone),
// 7 (PGPASSWORD/PGUSER in knocker's environment never reach the walreceiver), 8 (127.0.0.1).
import { execa } from 'execa';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { DRY_RUN_KEYS } from '../../src/system/runner.js';
import { startCluster, stopCluster } from '../../src/postgres/cluster.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { STANDBY_PATHS } from '../../src/standby/paths.js';
import { installPrimary } from '../helpers/exposedb.js';
import { KNOCKER, cleanEnv, knocker, type RunResult } from '../helpers/knocker.js';
import { destroyRoot, makeRoot } from '../helpers/roots.js';
import { waitFor } from '../helpers/server.js';
import { clusterOf, createProbeTable, probeIds, killPostmaster, readJson, sql, startWriter } from '../helpers/standby.js';

const A = '127.0.0.80';
const B = '127.0.0.81';
const WRITER = '127.0.0.82';
let rootA: Root;
let rootB: Root;
let port: number;
let bundle: string;
let nodesUrl: string;
let ca: string;
let replicationPassword = '';
const outputs: string[] = [];

async function run(args: string[], env?: Record<string, string>): Promise<RunResult> {
  const result = await knocker(args, { env, timeoutMs: 180_000 });
  outputs.push(result.stdout, result.stderr);
  return result;
}
const standby = (root: Root, ...args: string[]) => run(['standby', '--root', root.dir, ...args]);
const hosts = () => [
  { host: A, port },
  { host: B, port },
];

async function status(root: Root): Promise<{ exitCode: number; report: Record<string, any> }> {
  const result = await standby(root, 'status', '--json');
  return { exitCode: result.exitCode, report: JSON.parse(result.stdout) as Record<string, any> };
}

beforeAll(async () => {
  [rootA, rootB] = await Promise.all([makeRoot(), makeRoot()]);
  await installPrimary(rootA, A);
  const init = await run(['exposedb', '--root', rootA.dir, '--init']);
  expect(init.exitCode, init.stderr).toBe(0);
  nodesUrl = init.stdout.trim();
  port = Number(new URL(nodesUrl).port);
  ca = await fs.readFile(rootA.path(PATHS.clusterCaCert), 'utf8');
  expect((await run(['exposedb', '--root', rootA.dir, '--add', `${WRITER}/32`])).exitCode).toBe(0);
  await createProbeTable(rootA);
}, 120_000);

afterAll(async () => {
  await Promise.all([rootA && destroyRoot(rootA), rootB && destroyRoot(rootB)]);
  // No secret in any output.
  expect(replicationPassword).not.toBe('');
  for (const text of outputs) expect(text).not.toContain(replicationPassword);
});

test('exposedb --add-standby: replication role (SCRAM verifier), hostssl replication lines for the standby, a 0600 bundle with its certificate', async () => {
  const result = await run(['exposedb', '--root', rootA.dir, '--add-standby', B]);
  expect(result.exitCode, result.stderr).toBe(0);
  bundle = result.stdout.trim();
  expect((await fs.stat(bundle)).mode & 0o777).toBe(0o600);
  const content = await readJson<{ password: string; certificate: string; standby: { host: string; port: number } }>(bundle);
  expect(content.standby).toEqual({ host: B, port });
  replicationPassword = content.password;
  const role = await sql<{ rolreplication: boolean; rolsuper: boolean; rolpassword: string }>(
    rootA,
    `SELECT rolreplication, rolsuper, rolpassword FROM pg_authid WHERE rolname = 'knocker_replicator'`,
  );
  expect(role[0]).toMatchObject({ rolreplication: true, rolsuper: false });
  expect(role[0]!.rolpassword).toMatch(/^SCRAM-SHA-256\$/);
  const hba = await fs.readFile(rootA.path(`${PATHS.pgData}/pg_hba.conf`), 'utf8');
  expect(hba).toMatch(new RegExp(`^hostssl  replication  knocker_replicator  ${B.replace(/\./g, '\\.')}/32  scram-sha-256$`, 'm'));
  expect((await sql<{ s: string }>(rootA, `SELECT current_setting('max_slot_wal_keep_size') AS s`))[0]!.s).not.toBe('-1');
  // The certificate names the standby and comes from the cluster's CA.
  const text = (await execa('openssl', ['x509', '-noout', '-ext', 'subjectAltName'], { input: content.certificate })).stdout;
  expect(text).toContain(`IP Address:${B}`);
  // Again: nothing new (the same password), still exit 0.
  const again = await run(['exposedb', '--root', rootA.dir, '--add-standby', B]);
  expect(again.exitCode, again.stderr).toBe(0);
  expect((await readJson<{ password: string }>(bundle)).password).toBe(content.password);
});

test('standby init: a clone cut off (kill -9) leaves no cluster; the re-run under write load clears it, drops the stale slot and streams', async () => {
  const child = execa(process.execPath, [KNOCKER, 'standby', '--root', rootB.dir, 'init', '--bundle', bundle, '--max-rate', '32k'], {
    env: cleanEnv(),
    extendEnv: false,
    reject: false,
  });
  await waitFor(
    'the slow clone to be copying',
    async () => {
      const slots = await sql<{ active: boolean }>(rootA, `SELECT active FROM pg_replication_slots WHERE slot_name = 'knocker_127_0_0_81'`);
      const files = await fs.readdir(rootB.path(STANDBY_PATHS.clone)).catch(() => []);
      return slots[0]?.active && files.length > 0 ? true : undefined;
    },
    60_000,
  );
  child.kill('SIGKILL');
  await child;
  expect(await fs.stat(rootB.path(PATHS.pgData)).catch(() => undefined)).toBeUndefined();
  expect(await sql(rootA, `SELECT 1 FROM pg_replication_slots WHERE slot_name = 'knocker_127_0_0_81'`)).toHaveLength(1);

  const writer = startWriter(nodesUrl, hosts(), WRITER, ca);
  await waitFor('some writes', () => (writer.acked.length > 20 ? true : undefined));
  // libpq variables in knocker's environment must reach neither pg_basebackup nor the walreceiver.
  const init = await run(['standby', '--root', rootB.dir, 'init', '--bundle', bundle], {
    PGPASSWORD: 'not-the-password',
    PGUSER: 'nobody',
    PGSSLMODE: 'disable',
  });
  expect(init.exitCode, init.stderr).toBe(0);
  expect(init.stderr).toContain('a slot a cut-off clone left was dropped first');
  expect(init.stdout.trim()).toBe(
    `postgres://knocknoc_remote:${new URL(nodesUrl).password}@${A}:${port},${B}:${port}/knocknoc?target_session_attrs=read-write&sslmode=verify-full&sslrootcert=${rootB.path(PATHS.databaseCa)}`,
  );
  await waitFor('more writes while streaming', () => (writer.acked.length > 200 ? true : undefined));
  await writer.stop();
  const acked = writer.acked;
  await waitFor('the standby to have every acknowledged row', async () => {
    const ids = await probeIds(rootB);
    return acked.every((id) => ids.has(id)) ? true : undefined;
  });
  expect(await fs.stat(rootB.path(STANDBY_PATHS.clone)).catch(() => undefined)).toBeUndefined();
  // Its own settings, not the primary's (trap 3); the passfile, not a password (traps 1 and 5).
  const auto = await fs.readFile(rootB.path(`${PATHS.pgData}/postgresql.auto.conf`), 'utf8');
  expect(auto).toContain(`listen_addresses = '${B}'`);
  expect(auto).toMatch(/primary_conninfo = '.*user=knocker_replicator passfile=.*sslmode=verify-full/);
  expect(auto).not.toContain((await readJson<{ password: string }>(bundle)).password);
  expect((await sql<{ s: string }>(rootB, `SELECT current_setting('listen_addresses') AS s`))[0]!.s).toBe(B);
  const passfile = await fs.stat(rootB.path(STANDBY_PATHS.passfile));
  expect(passfile.mode & 0o777).toBe(0o600);
  // A re-run converges: nothing to change.
  const again = await standby(rootB, 'init', '--bundle', bundle);
  expect(again.exitCode, again.stderr).toBe(0);
  expect(again.stderr).toContain('Nothing to change');
}, 180_000);

test('standby init refuses a host with a cluster of its own, and misuse, changing nothing', async () => {
  const refused = await standby(rootA, 'init', '--bundle', bundle);
  expect(refused.exitCode).toBe(3);
  expect(refused.stderr).toContain('standby init never replaces a cluster');
  expect((await standby(rootB, 'init', '--bundle', bundle, '--json')).exitCode).toBe(2);
  const missing = await standby(rootB, 'init', '--bundle', `${bundle}.nope`);
  expect(missing.exitCode).toBe(3);
  expect(missing.stderr).toContain('knocker exposedb --add-standby');
  const dry = await standby(rootB, 'init', '--bundle', bundle, '--dry-run', '--json');
  expect(dry.exitCode, dry.stderr).toBe(0);
  expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, plan: { changes: 0 }, error: null });
});

test('standby status: role, timeline, lag, slot, can take over (both hosts, JSON)', async () => {
  const onB = await status(rootB);
  expect(onB.exitCode).toBe(0);
  expect(onB.report.node).toMatchObject({ host: B, role: 'standby', timeline: 1 });
  expect(onB.report.receiver).toMatchObject({ status: 'streaming', sender: `${A}:${port}` });
  expect(onB.report.peer).toMatchObject({ host: A, role: 'primary', answers: true });
  const onA = await status(rootA);
  expect(onA.exitCode).toBe(0);
  expect(onA.report.node).toMatchObject({ role: 'primary', timeline: 1 });
  expect(onA.report.replicas[0]).toMatchObject({ name: 'knocker_127_0_0_81', state: 'streaming' });
  expect(onA.report.slots[0]).toMatchObject({ name: 'knocker_127_0_0_81', active: true, walStatus: 'reserved' });
  const text = await standby(rootA, 'status');
  expect(text.stdout).toContain('PRIMARY  timeline 1');
});

async function switchoverUnderLoad(from: Root, to: Root, newPrimary: string, firstId: number): Promise<{ acked: number; failures: number }> {
  const writer = startWriter(nodesUrl, hosts(), WRITER, ca, firstId);
  await waitFor('writes before the switchover', () => (writer.acked.length > 50 ? true : undefined));
  const dry = await standby(from, 'switchover', '--dry-run', '--json');
  expect(dry.exitCode, dry.stderr).toBe(0);
  expect(Object.keys(JSON.parse(dry.stdout))).toEqual([...DRY_RUN_KEYS]);
  expect(JSON.parse(dry.stdout)).toMatchObject({ command: 'knocker standby switchover', error: null });
  expect(JSON.parse(dry.stdout).plan.steps).toHaveLength(6);
  const result = await standby(from, 'switchover');
  expect(result.exitCode, result.stderr).toBe(0);
  expect(result.stdout.trim()).toBe(`primary ${newPrimary}:${port}`);
  const before = writer.acked.length;
  await waitFor('writes on the new primary', () => (writer.acked.length > before + 50 ? true : undefined));
  await writer.stop();
  const ids = await probeIds(to);
  const lost = writer.acked.filter((id) => !ids.has(id));
  expect(lost).toEqual([]);
  return { acked: writer.acked.length, failures: writer.failures };
}

test('switchover when the standby does not catch up: undone, this node the primary again, nothing else changed', async () => {
  await sql(rootB, 'SELECT pg_wal_replay_pause()', [], 'postgres');
  const result = await standby(rootA, 'switchover', '--catch-up-timeout', '2');
  await sql(rootB, 'SELECT pg_wal_replay_resume()', [], 'postgres');
  expect(result.exitCode, result.stderr).toBe(4);
  expect(result.stderr).toContain('every change made before the failure was rolled back');
  expect((await status(rootA)).report.node).toMatchObject({ role: 'primary', timeline: 1 });
  await sql(rootA, 'INSERT INTO standby_probe (id) VALUES (-1)');
  expect(await sql(rootB, `SELECT 1 FROM pg_replication_slots`, [], 'postgres')).toEqual([]);
  await waitFor('the standby streaming again', async () => ((await status(rootB)).report.receiver?.status === 'streaming' ? true : undefined));
  expect((await status(rootB)).report.node.role).toBe('standby');
}, 120_000);

test('switchover under load, there and back: every acknowledged write on the new primary; the old one streams on the new timeline', async () => {
  await switchoverUnderLoad(rootA, rootB, B, 100_000);
  const onA = await status(rootA);
  expect(onA.report.node).toMatchObject({ role: 'standby', timeline: 2 });
  expect(onA.report.receiver).toMatchObject({ status: 'streaming' });
  expect((await status(rootB)).report.node).toMatchObject({ role: 'primary', timeline: 2 });
  // And back (the slot for B on A is created by the switchover).
  await switchoverUnderLoad(rootB, rootA, A, 200_000);
  expect((await status(rootA)).report.node).toMatchObject({ role: 'primary', timeline: 3 });
  const onB = await status(rootB);
  expect(onB.exitCode).toBe(0);
  expect(onB.report.node).toMatchObject({ role: 'standby', timeline: 3 });
}, 180_000);

test('promote: refused while the primary takes writes; after kill -9 of the primary it promotes; the old primary started again is fenced', async () => {
  const refused = await standby(rootB, 'promote');
  expect(refused.exitCode).toBe(3);
  expect(refused.stderr).toContain('still answers and takes writes');
  expect((await status(rootB)).report.node.role).toBe('standby');

  // Writes the standby never gets: it is stopped, the primary writes, then dies.
  const clusterB = await clusterOf(rootB, B, port);
  await stopCluster(clusterB);
  await sql(rootA, 'INSERT INTO standby_probe (id) SELECT g FROM generate_series(900001, 900010) g');
  await killPostmaster(rootA);
  await startCluster(clusterB);
  const promoted = await standby(rootB, 'promote');
  expect(promoted.exitCode, promoted.stderr).toBe(0);
  expect(promoted.stderr).toMatch(/it had received WAL up to [0-9A-F]+\/[0-9A-F]+/);
  const state = await readJson<{ promoted: { oldPrimary: { host: string }; timeline: number } }>(rootB.path(STANDBY_PATHS.state));
  expect(state.promoted).toMatchObject({ oldPrimary: { host: A }, timeline: 4 });
  expect((await status(rootB)).report.node).toMatchObject({ role: 'primary', timeline: 4 });
  const ids = await probeIds(rootB);
  expect(ids.has(900001)).toBe(false);

  // The old primary, started again the way knocker starts it, does not take writes.
  const started = await run(['service', '--root', rootA.dir, 'start', 'postgres']);
  expect(started.exitCode, started.stderr).toBe(0);
  expect(started.stdout + started.stderr).toContain(`fenced: ${B} is the primary now`);
  const ro = await sql<{ r: boolean; ro: string }>(rootA, `SELECT pg_is_in_recovery() AS r, current_setting('transaction_read_only') AS ro`);
  expect(ro[0]).toEqual({ r: true, ro: 'on' });
  await expect(sql(rootA, 'INSERT INTO standby_probe (id) VALUES (999999)')).rejects.toThrow(/read-only transaction/);
  // --force on a node that is already primary is refused too.
  expect((await standby(rootB, 'promote', '--force')).exitCode).toBe(3);
}, 180_000);

test('rejoin with pg_rewind: diverged writes gone, the old primary streams from the new one with its own settings', async () => {
  const dry = await standby(rootA, 'rejoin', '--dry-run');
  expect(dry.exitCode, dry.stderr).toBe(0);
  expect(dry.stdout).toContain('rewind');
  const result = await standby(rootA, 'rejoin');
  expect(result.exitCode, result.stderr).toBe(0);
  expect(result.stdout.trim()).toBe(`standby of ${B}:${port} (rewind)`);
  expect(result.stderr).toMatch(/diverged at [0-9A-F]+\/[0-9A-F]+ on timeline 3/);
  const onA = await status(rootA);
  expect(onA.exitCode).toBe(0);
  expect(onA.report.node).toMatchObject({ role: 'standby', timeline: 4 });
  expect(onA.report.slots).toEqual([]);
  await sql(rootB, 'INSERT INTO standby_probe (id) VALUES (777777)');
  await waitFor('the rewound standby to replay', async () => ((await probeIds(rootA)).has(777777) ? true : undefined));
  expect((await probeIds(rootA)).has(900001)).toBe(false);
  const auto = await fs.readFile(rootA.path(`${PATHS.pgData}/postgresql.auto.conf`), 'utf8');
  expect(auto).toContain(`listen_addresses = '${A}'`);
  expect(auto).toMatch(/primary_conninfo = 'host=127\.0\.0\.81 .*user=knocker_replicator /);
  expect(auto).not.toContain('knocker-rewind');
}, 180_000);

test('rejoin after a same-timeline divergence (started without standby.signal, written to): a fresh clone, the old data kept', async () => {
  const clusterA = await clusterOf(rootA, A, port);
  await stopCluster(clusterA);
  await fs.rm(rootA.path(`${PATHS.pgData}/standby.signal`));
  await startCluster(clusterA);
  await sql(rootA, 'INSERT INTO standby_probe (id) VALUES (888888)');
  expect((await status(rootA)).report.node).toMatchObject({ role: 'primary', timeline: 4 });
  const result = await standby(rootA, 'rejoin');
  expect(result.exitCode, result.stderr).toBe(0);
  expect(result.stdout.trim()).toBe(`standby of ${B}:${port} (reclone)`);
  expect(result.stderr).toContain('same-timeline divergence');
  const kept = (await fs.readdir(path.dirname(rootA.path(PATHS.pgData))))
    .filter((n) => n.startsWith('postgresql.before-rejoin-'))
    .map((n) => path.join(path.dirname(rootA.path(PATHS.pgData)), n))[0]!;
  expect(await fs.stat(path.join(kept, 'PG_VERSION'))).toBeTruthy();
  const onA = await status(rootA);
  expect(onA.report.node).toMatchObject({ role: 'standby', timeline: 4 });
  expect(onA.report.receiver.status).toBe('streaming');
  expect((await probeIds(rootA)).has(888888)).toBe(false);
}, 180_000);

test('remove: the standby and its slot gone, the primary holds no WAL for it', async () => {
  const onStandby = await standby(rootA, 'remove');
  expect(onStandby.exitCode, onStandby.stderr).toBe(0);
  expect(await fs.stat(rootA.path(`${PATHS.pgData}/PG_VERSION`)).catch(() => undefined)).toBeUndefined();
  expect(await sql(rootB, `SELECT 1 FROM pg_replication_slots`)).toEqual([]);
  const onPrimary = await standby(rootB, 'remove');
  expect(onPrimary.exitCode, onPrimary.stderr).toBe(0);
  const hba = await fs.readFile(rootB.path(`${PATHS.pgData}/pg_hba.conf`), 'utf8');
  expect(hba).not.toContain('replication  knocker_replicator');
  expect(await fs.stat(rootB.path(STANDBY_PATHS.state)).catch(() => undefined)).toBeUndefined();
}, 120_000);
