// Rules 3, 4 and 7 of the standby pair (issue 22) around an unplanned promote and the rejoins after
// it. A rejoin on a standby that already streams from the primary on its timeline changes nothing.
// The old primary (killed -9 after writes its standby never got) started by knocker while the new
// primary does not answer (SIGSTOP) comes up read-only and says how to decide. The rewind keeps
// that node's WAL past the divergence in a named folder first; two re-clones keep both old data
// directories; standby status lists each with its size and the command that removes it. A sampler
// asks both hosts for a writable session all along; a writer's acknowledged writes on the new
// primary are all there at the end.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { findPgBinaries, startCluster, stopCluster } from '../../src/postgres/cluster.js';
import { PATHS } from '../../src/system/root.js';
import { waitFor } from '../helpers/server.js';
import { finish, makePair, postmasterPid, role, run, standby, startSampler, waitRole, writerFor, type Pair, type Sampler } from '../helpers/failclosed.js';
import { clusterOf, killPostmaster, sql } from '../helpers/standby.js';

let pair: Pair;
let sampler: Sampler;

beforeAll(async () => {
  pair = await makePair('127.0.22.31', '127.0.22.32', '127.0.22.33');
  sampler = startSampler(pair);
}, 90_000);

afterAll(async () => {
  await sampler?.stop();
  await pair?.destroy();
});

interface Status {
  receiver?: { status: string };
  kept: Array<{ path: string; bytes: number; remove: string }>;
}
const status = async (root: Pair['rootA']) => JSON.parse((await standby(root, 'status', '--json')).stdout) as Status;

test('rejoin on a standby streaming from the primary on its timeline: nothing to change (not restarted, nothing kept)', async () => {
  const pid = await postmasterPid(pair.rootB);
  const dry = await standby(pair.rootB, 'rejoin', '--dry-run', '--json');
  expect(dry.exitCode, dry.stderr).toBe(0);
  expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, plan: { changes: 0 }, error: null });
  const result = await standby(pair.rootB, 'rejoin');
  expect(result.exitCode, result.stderr).toBe(0);
  expect(result.stdout.trim()).toBe(`standby of ${pair.A}:${pair.port} (nothing to change)`);
  expect(await postmasterPid(pair.rootB)).toBe(pid);
  expect((await status(pair.rootB)).kept).toEqual([]);
});

test('unplanned promote: the old primary started while the new one is silent comes up read-only; the rewind keeps its WAL past the divergence, listed by status', async () => {
  const clusterB = await clusterOf(pair.rootB, pair.B, pair.port);
  await stopCluster(clusterB);
  await sql(pair.rootA, 'INSERT INTO standby_probe (id) SELECT g FROM generate_series(900001, 900200) g');
  await killPostmaster(pair.rootA);
  await startCluster(clusterB);
  const promoted = await standby(pair.rootB, 'promote');
  expect(promoted.exitCode, promoted.stderr).toBe(0);
  const writer = writerFor(pair, 1);

  const newPrimary = await postmasterPid(pair.rootB);
  process.kill(newPrimary, 'SIGSTOP');
  try {
    const started = await run(['service', '--root', pair.rootA.dir, 'start', 'postgres']);
    expect(started.exitCode, started.stderr).toBe(0);
    expect(started.stdout + started.stderr).toContain(`${pair.B}:${pair.port} does not answer`);
    expect(started.stdout + started.stderr).toContain('knocker standby promote');
    expect(await role(pair.rootA)).toBe('standby');
  } finally {
    process.kill(newPrimary, 'SIGCONT');
  }

  const rejoin = await standby(pair.rootA, 'rejoin');
  expect(rejoin.exitCode, rejoin.stderr).toBe(0);
  expect(rejoin.stdout.trim()).toBe(`standby of ${pair.B}:${pair.port} (rewind)`);
  const diverged = /diverged at ([0-9A-F]+\/[0-9A-F]+) on timeline (\d+)/.exec(rejoin.stderr);
  expect(diverged, rejoin.stderr).not.toBeNull();
  const kept = (await status(pair.rootA)).kept;
  expect(kept).toHaveLength(1);
  expect(kept[0]!.path).toMatch(/postgresql\.rewind-wal-/);
  expect(kept[0]!.bytes).toBeGreaterThan(0);
  expect(kept[0]!.remove).toBe(`rm -r ${kept[0]!.path}`);
  expect((await standby(pair.rootA, 'status')).stdout).toContain(`remove with: rm -r ${kept[0]!.path}`);
  // The writes the new primary never got are in the kept WAL (their inserts, past the divergence).
  const bin = (await findPgBinaries())!;
  const dump = await execa(path.join(bin.dir, 'pg_waldump'), ['--path', kept[0]!.path, '--start', diverged![1]!, '--timeline', diverged![2]!], {
    reject: false,
  });
  expect(dump.stdout.match(/INSERT/g)?.length ?? 0).toBeGreaterThanOrEqual(200);
  expect(await sql(pair.rootB, 'SELECT 1 FROM standby_probe WHERE id > 900000')).toEqual([]);
  await finish(pair.rootB, writer, sampler);
}, 90_000);

// The harness makes the split here on purpose (the old primary started without standby.signal and
// written to): no sampler.
test('two re-clones keep both old data directories, each under its own name, both listed', async () => {
  const clusterA = await clusterOf(pair.rootA, pair.A, pair.port);
  for (const id of [950001, 950002]) {
    await waitFor('A streaming', async () => ((await status(pair.rootA)).receiver?.status === 'streaming' ? true : undefined), 30_000);
    await stopCluster(clusterA);
    await fs.rm(pair.rootA.path(`${PATHS.pgData}/standby.signal`));
    await startCluster(clusterA);
    await sql(pair.rootA, 'INSERT INTO standby_probe (id) VALUES ($1)', [id]);
    const result = await standby(pair.rootA, 'rejoin');
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/\(reclone\)$/);
    await waitRole(pair.rootA, 'standby');
  }
  const copies = (await status(pair.rootA)).kept.filter((k) => /before-rejoin-/.test(k.path));
  expect(copies).toHaveLength(2);
  for (const copy of copies) expect(await fs.stat(path.join(copy.path, 'PG_VERSION'))).toBeTruthy();
}, 90_000);
