// Rule 1 of the standby pair (issue 22): at most one writable primary, always. A switchover whose
// promotion does not finish in time (the standby's postmaster stalled by SIGSTOP after pg_promote
// was sent: the promotion is pending and happens when it resumes) must not restart the old primary
// writable; a switchover killed (kill -9) right after the promotion leaves the old primary so that
// starting it while the new primary does not answer (SIGSTOP) brings it up read-only. Through
// both, a writer walks the multi-host string and a sampler asks both hosts for a writable session.
import { execa } from 'execa';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { KNOCKER, cleanEnv } from '../helpers/knocker.js';
import { waitFor } from '../helpers/server.js';
import { startCluster } from '../../src/postgres/cluster.js';
import { finish, makePair, postmasterPid, role, run, standby, startSampler, waitRole, writerFor, type Pair } from '../helpers/failclosed.js';
import { clusterOf } from '../helpers/standby.js';
import { probeIds } from '../helpers/standby.js';

let pair: Pair;

beforeAll(async () => {
  pair = await makePair('127.0.22.1', '127.0.22.2', '127.0.22.3');
}, 90_000);

afterAll(async () => {
  await pair?.destroy();
});

async function streaming(root: Pair['rootA']): Promise<true | undefined> {
  const result = await standby(root, 'status', '--json');
  return (JSON.parse(result.stdout) as { receiver?: { status: string } }).receiver?.status === 'streaming' ? true : undefined;
}

test('switchover: the standby stalls after pg_promote was sent; the old primary is not restarted writable (exit 5), no acknowledged write lost', async () => {
  const writer = writerFor(pair, 1);
  const sampler = startSampler(pair);
  await waitFor('writes before the switchover', () => (writer.acked.length > 30 ? true : undefined));
  const stalled = await postmasterPid(pair.rootB);
  let stopped = false;
  const child = execa(process.execPath, [KNOCKER, 'standby', '--root', pair.rootA.dir, 'switchover', '--catch-up-timeout', '3'], {
    env: cleanEnv(),
    extendEnv: false,
    reject: false,
    timeout: 120_000,
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    // Its connection to the standby is open; from here the standby's postmaster forwards no signal:
    // the promotion pg_promote asks for stays pending until SIGCONT.
    if (!stopped && /Fence this primary/.test(stderr)) {
      stopped = true;
      process.kill(stalled, 'SIGSTOP');
    }
  });
  const result = await child;
  try {
    expect(stopped).toBe(true);
    expect(result.exitCode, stderr).toBe(5);
    expect(stderr).toContain('not the primary again');
    expect(stderr).toContain('knocker standby promote here');
    expect(await role(pair.rootA)).toBe('standby');
  } finally {
    process.kill(stalled, 'SIGCONT');
  }
  // The pending promotion finishes; the old primary, a standby already, follows it.
  await waitRole(pair.rootB, 'primary');
  await waitFor('the old primary streaming from the new one', () => streaming(pair.rootA), 60_000);
  await finish(pair.rootB, writer, sampler);
  await waitFor('the old primary to have every acknowledged write', async () => {
    const ids = await probeIds(pair.rootA);
    return writer.acked.every((id) => ids.has(id)) ? true : undefined;
  });
}, 150_000);

test('switchover killed (kill -9) after the promotion; the old primary started while the new one does not answer comes up read-only', async () => {
  // Now B is the primary and A its standby: back to A (the host with knocker's service), then a
  // switchover killed right after pg_promote.
  const back = await standby(pair.rootB, 'switchover');
  expect(back.exitCode, back.stderr).toBe(0);
  const writer = writerFor(pair, 1_000_000);
  const sampler = startSampler(pair);
  await waitFor('writes before the switchover', () => (writer.acked.length > 30 ? true : undefined));
  const killed = await run(['standby', '--root', pair.rootA.dir, 'switchover'], { KNOCKER_TEST_KILL_AT: 'after:5' });
  expect(killed.exitCode, killed.stderr).not.toBe(0);
  await waitRole(pair.rootB, 'primary');
  expect(await role(pair.rootA)).toBe('down');
  const newPrimary = await postmasterPid(pair.rootB);
  process.kill(newPrimary, 'SIGSTOP');
  try {
    const started = await run(['service', '--root', pair.rootA.dir, 'start', 'postgres']);
    expect(started.exitCode, started.stderr).toBe(0);
    expect(await role(pair.rootA)).toBe('standby');
  } finally {
    process.kill(newPrimary, 'SIGCONT');
  }
  await waitFor('the old primary streaming from the new one', () => streaming(pair.rootA), 60_000);
  await finish(pair.rootB, writer, sampler);
}, 150_000);

test('switchover killed (kill -9) at each step boundary before the promotion: started again, that host is the only primary and the pair streams', async () => {
  // B is the primary now (test above), A its standby; B has no knocker service: pg_ctl starts it, as an operator would.
  const writer = writerFor(pair, 2_000_000);
  const sampler = startSampler(pair);
  const clusterB = await clusterOf(pair.rootB, pair.B, pair.port);
  for (const point of ['after:1', 'after:2', 'after:3', 'after:4']) {
    await waitFor('A streaming from B', () => streaming(pair.rootA), 60_000);
    const killed = await run(['standby', '--root', pair.rootB.dir, 'switchover'], { KNOCKER_TEST_KILL_AT: point });
    expect(killed.exitCode, `${point}: ${killed.stderr}`).not.toBe(0);
    expect(await role(pair.rootA)).toBe('standby');
    if ((await role(pair.rootB)) === 'down') await startCluster(clusterB);
    await waitRole(pair.rootB, 'primary');
  }
  await waitFor('A streaming from B', () => streaming(pair.rootA), 60_000);
  await finish(pair.rootB, writer, sampler);
}, 120_000);
