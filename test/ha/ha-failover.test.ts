// Issue 24, milestone 2: knocker's replicated pair handed to pg_auto_failover in place, and an
// unattended failover. Real PostgreSQL and pg_autoctl on loopback: a knocker pair (primary root A,
// standby root B, test/helpers/failclosed.ts), a monitor root M (exposedb --add-monitor, ha monitor);
// `ha adopt` on A, then `ha adopt --bundle` on B, with a writer through the pair recording every
// acknowledged id and a sampler checking that never two hosts take writes. Then kill -9 of A's
// keeper and postmaster: writes come back on B with no human, none acknowledged is lost; A's keeper
// started again rejoins as a standby by itself and is never writable. Then two switchovers: the
// demoted primary is rewound for real (pg_rewind copies the new primary's configuration files) and
// comes back as secondary on its own address with TLS verify-full, the files host-neutral.
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { nodeFiles, nodeName, runningKeeper, startKeeper, stopKeeper } from '../../src/ha/adopt.js';
import { autoctl, monitorFiles, runningMonitor, stopMonitor } from '../../src/ha/monitor.js';
import { readHaNodeState } from '../../src/ha/node-state.js';
import { expectedFailoverMs, readMonitorTimeouts, splitBrainGuard } from '../../src/ha/timeouts.js';
import { withAdminSession } from '../../src/postgres/admin.js';
import { connect, isEncrypted } from '../../src/postgres/connect.js';
import { parseDatabaseUrl } from '../../src/postgres/url.js';
import { freePort } from '../../src/system/host.js';
import { isAlive } from '../../src/system/lock.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { finish, makePair, role, run, startSampler, writerFor, type Pair } from '../helpers/failclosed.js';
import { dataHost, killHost, longestGapFrom, settled } from '../helpers/ha.js';
import { destroyRoot, makeRoot } from '../helpers/roots.js';
import { waitFor } from '../helpers/server.js';
import { sql } from '../helpers/standby.js';

const MON = '127.0.24.40';
const A = '127.0.24.41';
const B = '127.0.24.42';
const CLIENT = '127.0.24.43';
let pair: Pair;
let rootM: Root;
let monPort: number;
let nextId = 1;
/** Set once both hosts are adopted: the later tests need the automatic pair. */
let adopted = false;

const ha = (root: Root, ...args: string[]) => run(['ha', '--root', root.dir, ...args]);
const ids = (n: number) => {
  const first = nextId;
  nextId += n;
  return first;
};

beforeAll(async () => {
  pair = await makePair(A, B, CLIENT);
  rootM = await makeRoot();
  monPort = await freePort(MON);
  const made = await run(['exposedb', '--root', pair.rootA.dir, '--add-monitor', `${MON}:${monPort}`]);
  expect(made.exitCode, made.stderr).toBe(0);
  const monitor = await ha(rootM, 'monitor', '--bundle', made.stdout.trim());
  expect(monitor.exitCode, monitor.stderr).toBe(0);
}, 240_000);

afterAll(async () => {
  for (const root of [pair?.rootA, pair?.rootB]) if (root) await stopKeeper(root, 20_000).catch(() => {});
  if (rootM) await stopMonitor(monitorFiles(rootM), 20_000).catch(() => {});
  await Promise.all([pair?.destroy(), rootM && destroyRoot(rootM)]);
}, 120_000);

/**
 * What pg_rewind copies from the new primary at a rejoin that diverged (postgresql.conf,
 * postgresql.auto.conf, pg_hba.conf) holds nothing of one host: no line naming either data host's
 * address or a root's own folder in the first two, and pg_hba.conf's lines naming the data hosts the
 * same on both.
 */
async function expectHostNeutral(): Promise<void> {
  const hbaLines: string[][] = [];
  for (const root of [pair.rootA, pair.rootB]) {
    for (const file of ['postgresql.conf', 'postgresql.auto.conf']) {
      const lines = (await fs.readFile(root.path(`${PATHS.pgData}/${file}`), 'utf8')).split('\n').filter((l) => !/^\s*(#|$)/.test(l));
      for (const specific of [A, B, pair.rootA.dir, pair.rootB.dir])
        expect(
          lines.filter((l) => l.includes(specific)),
          `${root.dir} ${file}`,
        ).toEqual([]);
    }
    const hba = (await fs.readFile(root.path(`${PATHS.pgData}/pg_hba.conf`), 'utf8')).split('\n').filter((l) => !/^\s*(#|$)/.test(l));
    expect(hba.filter((l) => l.includes(pair.rootA.dir) || l.includes(pair.rootB.dir))).toEqual([]);
    hbaLines.push(hba.filter((l) => l.includes(A) || l.includes(B)).sort());
  }
  expect(hbaLines[0]).toEqual(hbaLines[1]);
}

/** `host` answers on its own address over TLS verify-full with the cluster's CA (as the web nodes connect). */
async function answersVerifyFull(host: string): Promise<boolean> {
  expect(pair.nodesUrl).toContain('sslmode=verify-full');
  const parsed = parseDatabaseUrl(pair.nodesUrl);
  if (!parsed.ok) throw new Error(parsed.error);
  const client = await connect(
    { ...parsed.value, host, port: pair.port },
    { sourceAddress: pair.client, ca: pair.ca, connectTimeoutMs: 5000, queryTimeoutMs: 5000 },
  );
  client.on('error', () => {});
  try {
    // Asked of the socket: pg_stat_ssl hides the row of a session that SET ROLE (the nodes' role does).
    await client.query('SELECT 1');
    return isEncrypted(client);
  } finally {
    await client.end().catch(() => {});
  }
}

test('ha adopt --dry-run --json on the primary: pg_autoctl told its address, --skip-pg-hba, verify-full, a monitor URI without password; nothing changed', async () => {
  const dry = await ha(pair.rootA, 'adopt', '--dry-run', '--json');
  expect(dry.exitCode, dry.stderr).toBe(0);
  const plan = JSON.parse(dry.stdout);
  expect(plan.details).toMatchObject({ role: 'primary', dataHosts: [A, B] });
  const create = plan.plan.steps.find((s: { title: string }) => s.title.includes('pg_autoctl create postgres'));
  const line = create.details.join('\n');
  for (const flag of [`--hostname ${A}`, `--listen ${A}`, '--skip-pg-hba', '--ssl-mode verify-full', `--monitor postgres://autoctl_node@${MON}:${monPort}/`])
    expect(line).toContain(flag);
  expect(line).not.toMatch(/--auth|--ssl-self-signed|\btrust\b/);
  const bundle = JSON.parse(await fs.readFile(path.join(pair.rootA.path('/opt/knocknoc/etc'), `monitor-${MON}.json`), 'utf8'));
  expect(dry.stdout).not.toContain(bundle.password);
  await expect(fs.stat(pair.rootA.path('/var/lib/knocknoc/ha'))).rejects.toThrow();
  expect(await role(pair.rootA)).toBe('primary');
  // The standby refuses to go first.
  const early = await ha(pair.rootB, 'adopt', '--dry-run');
  expect(early.exitCode).toBe(3);
}, 60_000);

test('a failure in the middle (pg_autoctl cannot make its backup folder) is undone: exit 4, PostgreSQL as it was, running and writable, the monitor without the node', async () => {
  const data = pair.rootA.path(PATHS.pgData);
  const files = ['postgresql.conf', 'postgresql.auto.conf', 'pg_hba.conf'];
  const before = await Promise.all(files.map((f) => fs.readFile(path.join(data, f), 'utf8')));
  const blocker = pair.rootA.path('/var/lib/knocknoc/backup');
  await fs.writeFile(blocker, 'not a folder\n');
  const writer = writerFor(pair, ids(1_000_000));
  const sampler = startSampler(pair);
  try {
    await waitFor('writes before the failed adoption', () => (writer.acked.length > 30 ? true : undefined));
    const failed = await ha(pair.rootA, 'adopt');
    expect(failed.exitCode, failed.stderr).toBe(4);
  } finally {
    await fs.rm(blocker, { force: true });
  }
  expect(await Promise.all(files.map((f) => fs.readFile(path.join(data, f), 'utf8')))).toEqual(before);
  for (const f of ['postgresql-auto-failover.conf', 'standby.signal']) await expect(fs.stat(path.join(data, f))).rejects.toThrow();
  await expect(fs.stat(pair.rootA.path('/var/lib/knocknoc/ha'))).rejects.toThrow();
  expect(await readHaNodeState(pair.rootA)).toBeUndefined();
  await fs.access(pair.rootA.path('/var/lib/knocknoc/standby/state.json'));
  expect(await role(pair.rootA)).toBe('primary');
  expect(await runningKeeper(pair.rootA)).toBeUndefined();
  const m = monitorFiles(rootM);
  const shown = await autoctl(rootM, m, ['show', 'state', '--pgdata', m.data, '--json']);
  expect(shown.stdout).not.toContain(nodeName(A));
  await finish(pair.rootA, writer, sampler);
}, 300_000);

test('ha adopt on the primary then on the standby, under writes: a pair of pg_auto_failover, 0 acknowledged writes lost, never two writable', async () => {
  const writer = writerFor(pair, ids(1_000_000));
  const sampler = startSampler(pair);
  await waitFor('writes before the adoption', () => (writer.acked.length > 30 ? true : undefined));

  const sizes = new Map<Root, string>();
  for (const root of [pair.rootA, pair.rootB]) sizes.set(root, (await sql<{ sb: string }>(root, "SELECT current_setting('shared_buffers') AS sb"))[0]!.sb);
  let started = Date.now();
  const onA = await ha(pair.rootA, 'adopt');
  const primaryMs = Date.now() - started;
  expect(onA.exitCode, onA.stderr).toBe(0);
  const standbyBundle = onA.stdout.trim();
  expect(((await fs.stat(standbyBundle)).mode & 0o777).toString(8)).toBe('600');
  const gapPrimary = writer.longestGapMs;

  started = Date.now();
  const onB = await ha(pair.rootB, 'adopt', '--bundle', standbyBundle);
  const standbyMs = Date.now() - started;
  expect(onB.exitCode, onB.stderr).toBe(0);

  await settled(pair.rootA, A, 'primary');
  await settled(pair.rootB, B, 'secondary');
  // Synchronous replication to pg_autoctl's standby (knocker's own settings no longer override it).
  const [sync] = await sql<{ s: string }>(pair.rootA, "SELECT current_setting('synchronous_standby_names') AS s");
  expect(sync!.s).toMatch(/^ANY 1 \(pgautofailover_standby_\d+\)$/);
  const slots = await sql<{ slot_name: string }>(pair.rootA, 'SELECT slot_name FROM pg_replication_slots');
  expect(slots.map((s) => s.slot_name).filter((n) => n.startsWith('knocker_'))).toEqual([]);
  await finish(pair.rootA, writer, sampler);

  for (const [root, host] of [
    [pair.rootA, A],
    [pair.rootB, B],
  ] as const) {
    const state = await readHaNodeState(root);
    expect(state).toMatchObject({ mode: 'automatic', name: nodeName(host), address: host });
    expect(state!.monitorUri).toContain('sslmode=verify-full');
    await expect(fs.stat(root.path('/var/lib/knocknoc/standby/state.json'))).rejects.toThrow();
    const files = nodeFiles(root);
    expect(((await fs.stat(files.passfile)).mode & 0o777).toString(8)).toBe('600');
    const hba = await fs.readFile(root.path(`${PATHS.pgData}/pg_hba.conf`), 'utf8');
    expect(hba).toContain(`hostssl  replication  pgautofailover_replicator  ${A}/32  scram-sha-256`);
    expect(hba).toContain(`hostssl  replication  pgautofailover_replicator  ${B}/32  scram-sha-256`);
    expect(hba.split('\n').filter((l) => !l.startsWith('#'))).not.toContainEqual(expect.stringMatching(/\btrust\b/));
    // No password in pg_autoctl's config, pg_autoctl's logs, knocker's log, or the standby include.
    const secrets = (await fs.readFile(files.passfile, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => l.slice(l.lastIndexOf(':') + 1));
    let text = await fs.readFile(files.daemonLog, 'utf8');
    text += await fs.readFile(root.path('/var/log/knocknoc/ha.log'), 'utf8');
    for (const f of await fs.readdir(files.xdg, { recursive: true })) {
      const full = path.join(files.xdg, f);
      if ((await fs.stat(full)).isFile()) text += await fs.readFile(full, 'utf8');
    }
    text += await fs.readFile(root.path(`${PATHS.pgData}/postgresql-auto-failover-standby.conf`), 'utf8').catch(() => '');
    for (const secret of secrets) expect(text).not.toContain(secret);
    expect(text).not.toContain('Connecting to');
    const [tuned] = await sql<{ sb: string }>(root, "SELECT current_setting('shared_buffers') AS sb");
    expect(tuned!.sb).toBe(sizes.get(root));
  }
  await expectHostNeutral();
  adopted = true;
  console.info(
    `adoption: primary ${primaryMs} ms (longest write gap ${gapPrimary} ms), standby ${standbyMs} ms; ${writer.acked.length} writes acknowledged, none lost`,
  );
}, 600_000);

test('the timeouts in effect (read back from the monitor and both keepers) keep the split-brain guard, and give a failover under 20 s', async () => {
  expect(adopted).toBe(true);
  const files = monitorFiles(rootM);
  const monitor = await withAdminSession({ socketDir: files.socket, port: monPort, osUser: 'postgres', database: 'pg_auto_failover' }, undefined, (s) =>
    readMonitorTimeouts(async (text, values) => (await s.query<{ v: string }>(text, values)).rows),
  );
  expect(monitor.unhealthyMs).toBe(6000);
  expect(monitor.demoteMs).toBe(10_000);
  for (const root of [pair.rootA, pair.rootB]) {
    const node = nodeFiles(root);
    const got = await autoctl(root, node, ['config', 'get', '--pgdata', node.data, 'timeout.network_partition_timeout']);
    const npt = Number(got.stdout.trim());
    expect(npt).toBe(5);
    const guard = splitBrainGuard(monitor, npt);
    expect(guard.sound, JSON.stringify(guard)).toBe(true);
    expect(guard.fencedByMs).toBeLessThan(guard.promoteNotBeforeMs);
  }
  expect(expectedFailoverMs(monitor)).toBeLessThanOrEqual(20_000);
}, 60_000);

test("on the adopted pair, knocker's read side finds pg_autoctl from what adopt wrote: standby status (both hosts) shows the formation in sync; knocker's own promote refuses", async () => {
  expect(adopted).toBe(true);
  for (const [root, self] of [
    [pair.rootA, A],
    [pair.rootB, B],
  ] as const) {
    const shown = await run(['standby', 'status', '--root', root.dir, '--json']);
    expect(shown.exitCode, shown.stderr).toBe(0);
    const report = JSON.parse(shown.stdout) as {
      mode: string;
      self: { name: string; address: string };
      monitor: { reachable: boolean };
      nodes: Array<{ name: string; address: string; reportedState: string; goalState: string }>;
      primary: string | null;
      replication: string;
      local: { keeperRunning: boolean; postgresRunning: boolean };
      problems: string[];
    };
    expect(report.mode).toBe('automatic');
    expect(report.self).toEqual({ name: nodeName(self), address: self });
    expect(report.monitor.reachable).toBe(true);
    expect(report.primary).toBe(nodeName(A));
    expect(report.replication).toBe('sync');
    expect(report.problems).toEqual([]);
    expect(report.local).toMatchObject({ keeperRunning: true, postgresRunning: true });
    expect(report.nodes.map((n) => [n.address, n.reportedState, n.goalState]).sort()).toEqual([
      [A, 'primary', 'primary'],
      [B, 'secondary', 'secondary'],
    ]);
  }
  // The manual pair's promote would fight the keeper: refused, nothing changed (B still in recovery).
  const promote = await run(['standby', 'promote', '--root', pair.rootB.dir, '--force']);
  expect(promote.exitCode, promote.stderr).toBe(3);
  expect(promote.stderr).toContain('pg_auto_failover');
  expect(await role(pair.rootB)).toBe('standby');
}, 120_000);

test("kill -9 of the primary's keeper and postmaster: writes back on the standby with no human, 0 acknowledged lost, never two writable; the old primary rejoins as a standby by itself", async () => {
  expect(adopted).toBe(true);
  const writer = writerFor(pair, ids(1_000_000));
  const sampler = startSampler(pair);
  await waitFor('writes before the fault', () => (writer.acked.length > 30 ? true : undefined));

  const host = await dataHost(pair.rootA);
  const t0 = Date.now();
  await killHost(host);

  await waitFor('writes acknowledged on the new primary', () => (writer.ackedAt.some((t) => t > t0 + 100) ? true : undefined), 90_000);
  expect(await role(pair.rootB)).toBe('primary');
  const firstAfter = writer.ackedAt.find((t) => t > t0 + 100)!;
  const longestGap = longestGapFrom(writer.ackedAt, t0);

  // The old primary's keeper started again (as a boot would): it asks the monitor first and comes back as a standby.
  const restarted = Date.now();
  await startKeeper(pair.rootA);
  await settled(pair.rootA, A, 'secondary');
  await waitFor('the old primary in recovery', async () => ((await role(pair.rootA)) === 'standby' ? true : undefined), 60_000);
  const rejoinMs = Date.now() - restarted;
  await settled(pair.rootB, B, 'primary');
  await finish(pair.rootB, writer, sampler);
  console.info(
    `failover: first acknowledged write on the new primary ${firstAfter - t0} ms after kill -9; writes unavailable ${longestGap} ms; old primary back as secondary ${rejoinMs} ms after its keeper's start`,
  );
}, 600_000);

test('two switchovers under writes: the demoted primary is rewound from the new one (pg_rewind copies its configuration files), and comes back as secondary on its own address, TLS verify-full, knocker still finding its cluster', async () => {
  expect(adopted).toBe(true);
  const logs = [pair.rootA, pair.rootB].map((root) => nodeFiles(root).daemonLog);
  const sizesBefore = await Promise.all(logs.map(async (f) => (await fs.stat(f)).size));
  const writer = writerFor(pair, ids(1_000_000));
  const sampler = startSampler(pair);
  await waitFor('writes before the switchovers', () => (writer.acked.length > 30 ? true : undefined));
  for (const [from, to, toHost, fromHost] of [
    [pair.rootB, pair.rootA, A, B],
    [pair.rootA, pair.rootB, B, A],
  ] as const) {
    const moved = await run(['standby', '--root', from.dir, 'switchover']);
    expect(moved.exitCode, moved.stderr).toBe(0);
    await settled(to, toHost, 'primary');
    await settled(from, fromHost, 'secondary');
    await waitFor('the old primary in recovery', async () => ((await role(from)) === 'standby' ? true : undefined), 60_000);
    expect(await answersVerifyFull(fromHost)).toBe(true);
    expect(await answersVerifyFull(toHost)).toBe(true);
  }
  await finish(pair.rootB, writer, sampler);
  // pg_rewind ran for real (a demoted primary's shutdown checkpoint diverges from the promoted standby's timeline).
  const added = await Promise.all(logs.map(async (f, i) => (await fs.readFile(f, 'utf8')).slice(sizesBefore[i])));
  expect(added.join('\n')).toMatch(/servers diverged at WAL location/);
  await expectHostNeutral();
  for (const root of [pair.rootA, pair.rootB]) {
    const status = await run(['standby', '--root', root.dir, 'status', '--json']);
    expect(status.exitCode, status.stderr).toBe(0);
    const service = await run(['service', '--root', root.dir, 'status', 'postgres']);
    expect(`${service.stdout}${service.stderr}`).not.toMatch(/not set up/);
  }
}, 600_000);

test('the keepers and the monitor stop cleanly', async () => {
  expect(adopted).toBe(true);
  for (const root of [pair.rootA, pair.rootB]) {
    const pid = await runningKeeper(root);
    expect(pid).toBeDefined();
    await stopKeeper(root, 30_000);
    expect(isAlive(pid!)).toBe(false);
  }
  const files = monitorFiles(rootM);
  const pid = await runningMonitor(files);
  await stopMonitor(files, 30_000);
  if (pid !== undefined) expect(isAlive(pid)).toBe(false);
}, 120_000);
