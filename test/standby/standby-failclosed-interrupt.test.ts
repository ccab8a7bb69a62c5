// Rules 1 and 4 of the standby pair (issue 22), interrupted. `standby rejoin` killed (kill -9, the
// plan runner's kill hook) at every step boundary of a rewind (before the first step, after each
// of: stop, read-only settings first, WAL past the divergence kept, pg_rewind, start): the old
// primary is never writable meanwhile, and the same command run again brings it back as a
// standby. A promote --force whose promotion stalls (SIGSTOP of the standby's startup process):
// the run ends with exit 5 and the old primary stays fenced; once the startup process resumes the
// standby finishes promoting, and the rejoin the run printed works. Through it all a sampler asks
// both hosts for a writable session (never two), and every write a writer saw acknowledged is on
// the primary at the end.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startCluster, stopCluster } from '../../src/postgres/cluster.js';
import {
  expectNoAckedLost,
  makePair,
  role,
  run,
  standby,
  startSampler,
  startupPid,
  waitRole,
  writerFor,
  type Pair,
  type Sampler,
  waitStreaming,
} from '../helpers/failclosed.js';
import { waitFor } from '../helpers/server.js';
import { clusterOf, killPostmaster, sql } from '../helpers/standby.js';

let pair: Pair;
let sampler: Sampler;

beforeAll(async () => {
  pair = await makePair('127.0.26.31', '127.0.26.32', '127.0.26.33');
  sampler = startSampler(pair);
}, 90_000);

afterAll(async () => {
  await sampler?.stop();
  await pair?.destroy();
});

type PairRoot = Pair['rootA'];

/**
 * An unplanned promote with a divergence: the standby stopped cleanly, writes on the primary it
 * never gets, the primary killed -9, the standby started and promoted; the old primary started by
 * knocker comes up fenced (its peer is the primary). The old primary alone has ids firstId…firstId+99.
 */
async function diverge(primary: PairRoot, other: PairRoot, otherHost: string, firstId: number): Promise<void> {
  const otherCluster = await clusterOf(other, otherHost, pair.port);
  await stopCluster(otherCluster);
  await sql(primary, 'INSERT INTO standby_probe (id) SELECT g FROM generate_series($1::bigint, $1::bigint + 99) g', [firstId]);
  await killPostmaster(primary);
  await startCluster(otherCluster);
  const promoted = await standby(other, 'promote');
  expect(promoted.exitCode, promoted.stderr).toBe(0);
  await waitRole(other, 'primary');
  const started = await run(['service', '--root', primary.dir, 'start', 'postgres']);
  expect(started.exitCode, started.stderr).toBe(0);
  expect(started.stderr).toContain(`fenced: ${otherHost} is the primary now`);
  expect(await role(primary)).not.toBe('primary');
}

const BOUNDARIES = ['before:1', 'after:1', 'after:2', 'after:3', 'after:4', 'after:5'];

test('standby rejoin killed (kill -9) at every step boundary of a rewind: never writable meanwhile; run again, it streams; no acknowledged write lost', async () => {
  // The roles swap each round: the old primary of one round is the primary of the next.
  let [oldPrimary, oldHost, primary, primaryHost] = [pair.rootA, pair.A, pair.rootB, pair.B];
  for (const [round, boundary] of BOUNDARIES.entries()) {
    await diverge(oldPrimary, primary, primaryHost, 900_000_000 + round * 1000);
    const writer = writerFor(pair, (round + 1) * 1_000_000);
    await waitFor('writes on the new primary', () => (writer.acked.length > 20 ? true : undefined), 30_000);
    const plan = JSON.parse((await standby(oldPrimary, 'rejoin', '--dry-run', '--json')).stdout) as { plan: { title: string; changes: number } };
    expect(plan.plan.title).toContain(': rewind');
    expect(plan.plan.changes).toBe(5);
    const killed = await run(['standby', '--root', oldPrimary.dir, 'rejoin'], { KNOCKER_TEST_KILL_AT: boundary });
    expect(killed.exitCode, `${boundary}: ${killed.stderr}`).not.toBe(0);
    expect(await role(oldPrimary), boundary).not.toBe('primary');
    const again = await standby(oldPrimary, 'rejoin');
    expect(again.exitCode, `${boundary}: ${again.stderr}`).toBe(0);
    expect(again.stdout).toMatch(/^standby of .* \((rewind|follow|reclone|nothing to change)\)$/m);
    await waitRole(oldPrimary, 'standby');
    await waitStreaming(oldPrimary);
    console.info(`rejoin killed at ${boundary}: the old primary not writable meanwhile; run again: ${again.stdout.trim()}`);
    const before = writer.acked.length;
    await waitFor('writes after the rejoin', () => (writer.acked.length > before + 20 ? true : undefined), 30_000);
    await writer.stop();
    await expectNoAckedLost(primary, writer);
    // Nothing of the old primary's own writes came back into the database.
    expect(await sql(primary, 'SELECT 1 FROM standby_probe WHERE id BETWEEN $1 AND $2', [900_000_000 + round * 1000, 900_000_000 + round * 1000 + 99])).toEqual(
      [],
    );
    [oldPrimary, oldHost, primary, primaryHost] = [primary, primaryHost, oldPrimary, oldHost];
  }
  expect(sampler.twoWritable).toEqual([]);
}, 300_000);

test('promote --force stalled (SIGSTOP of the standby startup process): exit 5, the old primary stays fenced; resumed, it finishes; the printed rejoin works', async () => {
  // Whichever is the primary after the rounds above; the other is its streaming standby.
  const [primary, primaryHost, other] = (await role(pair.rootA)) === 'primary' ? [pair.rootA, pair.A, pair.rootB] : [pair.rootB, pair.B, pair.rootA];
  await waitStreaming(other);
  const writer = writerFor(pair, 50_000_000);
  await waitFor('writes before the promote', () => (writer.acked.length > 30 ? true : undefined), 30_000);
  const startup = await startupPid(other);
  process.kill(startup, 'SIGSTOP');
  let result;
  try {
    result = await standby(other, 'promote', '--force', '--promote-timeout', '3');
    expect(result.exitCode, result.stderr).toBe(5);
    expect(result.stderr).toContain('did not finish within 3 s');
    expect(result.stderr).toContain(`${primaryHost} stays fenced`);
    // Stalled: neither takes writes (the old primary fenced, the standby still in recovery).
    expect(await role(primary)).toBe('read-only');
    expect(await role(other)).toBe('standby');
  } finally {
    process.kill(startup, 'SIGCONT');
  }
  // Resumed: it finishes the promotion it was asked for.
  await waitRole(other, 'primary');
  const next = result.stderr.match(/run (knocker standby rejoin) on (\S+?)[;,.]?(\s|$)/);
  expect(next, result.stderr).not.toBeNull();
  expect(next![2]).toBe(primaryHost);
  const rejoin = await standby(primary, 'rejoin');
  expect(rejoin.exitCode, rejoin.stderr).toBe(0);
  await waitRole(primary, 'standby');
  const before = writer.acked.length;
  await waitFor('writes on the new primary', () => (writer.acked.length > before + 30 ? true : undefined), 60_000);
  await writer.stop();
  await sampler.stop();
  await expectNoAckedLost(other, writer);
  expect(sampler.twoWritable).toEqual([]);
  console.info(
    `interrupted runs: ${sampler.rounds} sampler rounds, never two writable; ${writer.acked.length} writes acknowledged in the stalled promote, none missing`,
  );
}, 180_000);
