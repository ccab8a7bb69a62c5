// knocker standby on a second pair (primary 127.0.0.90, standby 127.0.0.91): promote --force while
// the old primary still takes writes fences it first (its database read-only, its sessions ended)
// and then rejoin brings it back; a standby whose slot lost WAL (max_slot_wal_keep_size, trap 2)
// is reported by status and re-cloned by rejoin; exposedb --add-standby refuses a primary that
// pg_rewind could not use as a source (full_page_writes off, trap 8); a rejoin whose pg_rewind
// fails (the WAL it needs is gone) falls back to a fresh clone.
import fs from 'node:fs/promises';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { clusterOwner, findPgBinaries, startCluster, stopCluster } from '../../src/postgres/cluster.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { installPrimary } from '../helpers/exposedb.js';
import { knocker, type RunResult } from '../helpers/knocker.js';
import { destroyRoot, makeRoot } from '../helpers/roots.js';
import { waitFor } from '../helpers/server.js';
import { createProbeTable, sql } from '../helpers/standby.js';

const A = '127.0.0.90';
const B = '127.0.0.91';
let rootA: Root;
let rootB: Root;
let port: number;

const run = (args: string[]): Promise<RunResult> => knocker(args, { timeoutMs: 180_000 });
const standby = (root: Root, ...args: string[]) => run(['standby', '--root', root.dir, ...args]);
async function status(root: Root): Promise<{ exitCode: number; report: Record<string, any> }> {
  const result = await standby(root, 'status', '--json');
  return { exitCode: result.exitCode, report: JSON.parse(result.stdout) as Record<string, any> };
}

beforeAll(async () => {
  [rootA, rootB] = await Promise.all([makeRoot(), makeRoot()]);
  await installPrimary(rootA, A);
  const init = await run(['exposedb', '--root', rootA.dir, '--init']);
  expect(init.exitCode, init.stderr).toBe(0);
  port = Number(new URL(init.stdout.trim()).port);
  await createProbeTable(rootA);
  const add = await run(['exposedb', '--root', rootA.dir, '--add-standby', B]);
  expect(add.exitCode, add.stderr).toBe(0);
  const made = await standby(rootB, 'init', '--bundle', add.stdout.trim());
  expect(made.exitCode, made.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  await Promise.all([rootA && destroyRoot(rootA), rootB && destroyRoot(rootB)]);
});

test('promote --force: the old primary, still up, is fenced first (read-only, sessions ended); rejoin brings it back', async () => {
  const dry = await standby(rootB, 'promote', '--force', '--dry-run');
  expect(dry.exitCode, dry.stderr).toBe(0);
  expect(dry.stdout).toContain('Fence the old primary 127.0.0.90');
  const result = await standby(rootB, 'promote', '--force');
  expect(result.exitCode, result.stderr).toBe(0);
  expect(result.stderr).toMatch(/session\(s\) ended/);
  // A new session on the old primary is read-only: clients that want read-write skip it.
  const onA = await sql<{ ro: string; r: boolean }>(rootA, `SELECT current_setting('transaction_read_only') AS ro, pg_is_in_recovery() AS r`);
  expect(onA[0]).toEqual({ ro: 'on', r: false });
  await expect(sql(rootA, 'INSERT INTO standby_probe (id) VALUES (1)')).rejects.toThrow(/read-only transaction/);
  const onB = await status(rootB);
  expect(onB.report.node.role).toBe('primary');
  expect(onB.report.peer).toMatchObject({ role: 'primary', readOnly: true });
  expect(onB.report.problems.join(' ')).not.toContain('TWO PRIMARIES');
  const back = await standby(rootA, 'rejoin');
  expect(back.exitCode, back.stderr).toBe(0);
  expect(back.stdout).toMatch(/standby of 127\.0\.0\.91:\d+ \((rewind|reclone)\)/);
  expect((await status(rootA)).report.node.role).toBe('standby');
  // The fence lived in the old primary's catalog; the rewound node has the new primary's.
  await sql(rootB, 'INSERT INTO standby_probe (id) VALUES (2)');
  expect((await sql<{ ro: string }>(rootB, `SELECT current_setting('transaction_read_only') AS ro`))[0]!.ro).toBe('off');
}, 180_000);

test('a standby whose slot lost WAL: status says it must be cloned again, rejoin re-clones it', async () => {
  const clusterA = {
    bin: (await findPgBinaries())!,
    dataDir: rootA.path(PATHS.pgData),
    socketDir: rootA.path(PATHS.pgSocketDir),
    logFile: rootA.path(PATHS.pgLog),
    host: A,
    port,
    osUser: await clusterOwner(),
  };
  await stopCluster(clusterA);
  await sql(rootB, `ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'`, [], 'postgres');
  await sql(rootB, 'SELECT pg_reload_conf()', [], 'postgres');
  await waitFor(
    'the slot to lose WAL',
    async () => {
      await sql(
        rootB,
        'INSERT INTO standby_probe (id) SELECT g FROM generate_series((SELECT coalesce(max(id), 0) + 1 FROM standby_probe), (SELECT coalesce(max(id), 0) + 2000 FROM standby_probe)) g',
      );
      await sql(rootB, 'SELECT pg_switch_wal()', [], 'postgres');
      await sql(rootB, 'CHECKPOINT', [], 'postgres');
      const slot = await sql<{ wal_status: string }>(
        rootB,
        `SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'knocker_127_0_0_90'`,
        [],
        'postgres',
      );
      return slot[0]?.wal_status === 'lost' ? true : undefined;
    },
    60_000,
  );
  const onB = await status(rootB);
  expect(onB.exitCode).toBe(1);
  expect(onB.report.problems.join(' ')).toContain('must be cloned again');
  await startCluster(clusterA);
  const result = await standby(rootA, 'rejoin');
  expect(result.exitCode, result.stderr).toBe(0);
  expect(result.stdout).toMatch(/\(reclone\)$/);
  expect(result.stderr).toContain('slot lost');
  const onA = await status(rootA);
  expect(onA.report.receiver.status).toBe('streaming');
  await sql(rootB, `ALTER SYSTEM RESET max_slot_wal_keep_size`, [], 'postgres');
}, 180_000);

test('exposedb --add-standby refuses a primary pg_rewind could not use (full_page_writes off), changing nothing', async () => {
  await sql(rootB, `ALTER SYSTEM SET full_page_writes = off`, [], 'postgres');
  await sql(rootB, 'SELECT pg_reload_conf()', [], 'postgres');
  const hbaBefore = await fs.readFile(rootB.path(`${PATHS.pgData}/pg_hba.conf`), 'utf8');
  // Root B has no knocknoc.conf of option 1: its connection string is given.
  const conn = `postgres://knocknoc:x@${B}:${port}/knocknoc`;
  const refused = await run(['exposedb', '--root', rootB.dir, '--add-standby', '127.0.0.92', '--conn', conn]);
  expect(refused.exitCode).toBe(3);
  expect(refused.stderr).toMatch(/full_page_writes is off|not exposed yet/);
  expect(await fs.readFile(rootB.path(`${PATHS.pgData}/pg_hba.conf`), 'utf8')).toBe(hbaBefore);
  await sql(rootB, `ALTER SYSTEM RESET full_page_writes`, [], 'postgres');
  await sql(rootB, 'SELECT pg_reload_conf()', [], 'postgres');
});

test('rejoin when pg_rewind cannot work (WAL it needs was removed): it falls back to a fresh clone', async () => {
  const bin = (await findPgBinaries())!;
  const osUser = await clusterOwner();
  const cluster = (root: Root, host: string) => ({
    bin,
    dataDir: root.path(PATHS.pgData),
    socketDir: root.path(PATHS.pgSocketDir),
    logFile: root.path(PATHS.pgLog),
    host,
    port,
    osUser,
  });
  // A is B's standby. A stops; B writes what A never gets and stops cleanly; A is promoted by hand.
  await waitFor('A streaming', async () => ((await status(rootA)).report.receiver?.status === 'streaming' ? true : undefined));
  await stopCluster(cluster(rootA, A));
  await sql(rootB, 'INSERT INTO standby_probe (id) VALUES (5000001), (5000002)');
  await stopCluster(cluster(rootB, B));
  await startCluster(cluster(rootA, A));
  expect((await sql<{ done: boolean }>(rootA, 'SELECT pg_promote(true, 60) AS done', [], 'postgres'))[0]!.done).toBe(true);
  // B's own WAL back to the divergence is gone (the lost-slot test above recycled it): pg_rewind fails.
  const rejoin = await standby(rootB, 'rejoin');
  expect(rejoin.exitCode, rejoin.stderr).toBe(0);
  expect(rejoin.stderr).toContain('pg_rewind could not bring this node back');
  expect(rejoin.stdout).toMatch(/\(reclone\)$/);
  expect(await sql(rootB, 'SELECT 1 FROM standby_probe WHERE id >= 5000001')).toEqual([]);
  expect((await status(rootB)).report.receiver.status).toBe('streaming');
}, 180_000);
