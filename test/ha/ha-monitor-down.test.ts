// Issue 24: the monitor of an automatic pair killed (kill -9 of its pg_autoctl and its PostgreSQL)
// under writes, on real PostgreSQL and pg_autoctl on loopback (a knocker pair handed to
// pg_auto_failover with `knocker ha monitor` and `knocker ha adopt`, test/helpers/ha.ts). Service
// goes on without it (writes acknowledged, still synchronous); started again, a failover works.
// A formation of its own: its failover must land on a node that pg_rewind never rewound (after a
// rejoin a sandbox root's node runs with the settings pg_rewind copied from the other root;
// ha-interruptions.test.ts records that).
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startKeeper } from '../../src/ha/adopt.js';
import { monitorFiles, startAutoctlDaemon } from '../../src/ha/monitor.js';
import type { Root } from '../../src/system/root.js';
import { finish, role, startSampler, writerFor } from '../helpers/failclosed.js';
import { type AdoptedPair, adoptedPair, dataHost, firstAckAfter, killHost, longestGapFrom, monitorHost, settled } from '../helpers/ha.js';
import { waitFor } from '../helpers/server.js';
import { sql } from '../helpers/standby.js';

const MON = '127.0.24.70';
const A = '127.0.24.71';
const B = '127.0.24.72';
const CLIENT = '127.0.24.73';
let pair: AdoptedPair;

beforeAll(async () => {
  pair = await adoptedPair(MON, A, B, CLIENT);
}, 600_000);

afterAll(async () => {
  await pair?.destroyAll();
}, 120_000);

const syncNames = async (root: Root) => (await sql<{ s: string }>(root, "SELECT current_setting('synchronous_standby_names') AS s"))[0]!.s;

test("the monitor killed (kill -9 of its pg_autoctl and PostgreSQL): writes go on, still synchronous; started again, the primary's death fails over with no human", async () => {
  const writer = writerFor(pair, 1);
  const sampler = startSampler(pair);
  await waitFor('writes before the fault', () => (writer.acked.length > 30 ? true : undefined));

  const monitor = await monitorHost(pair.rootM);
  const t0 = Date.now();
  await killHost(monitor);
  const atKill = writer.acked.length;
  await waitFor('writes acknowledged without the monitor', () => (writer.acked.length > atKill + 200 ? true : undefined), 60_000);
  const withoutMonitorGap = longestGapFrom(writer.ackedAt, t0);
  // The pair is untouched: A still the primary, committing synchronously to B, which streams.
  expect(await role(pair.rootA)).toBe('primary');
  expect(await role(pair.rootB)).toBe('standby');
  expect(await syncNames(pair.rootA)).toMatch(/^ANY 1 \(pgautofailover_standby_\d+\)$/);
  const streaming = await sql<{ sync_state: string }>(pair.rootA, "SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'");
  expect(streaming.map((r) => r.sync_state)).toEqual(['quorum']);
  const withoutMonitor = writer.acked.length - atKill;

  // The monitor back (as its host's boot would start it), then the primary's death.
  await startAutoctlDaemon(pair.rootM, monitorFiles(pair.rootM));
  await settled(pair.rootA, A, 'primary');
  await settled(pair.rootB, B, 'secondary');
  const victim = await dataHost(pair.rootA);
  const t1 = Date.now();
  await killHost(victim);
  const firstAfter = await firstAckAfter(writer.ackedAt, Date.now(), 180_000);
  await waitFor('the standby promoted', async () => ((await role(pair.rootB)) === 'primary' ? true : undefined), 30_000);
  const restarted = Date.now();
  await startKeeper(pair.rootA);
  await settled(pair.rootA, A, 'secondary');
  await settled(pair.rootB, B, 'primary');
  const rejoinMs = Date.now() - restarted;
  await finish(pair.rootB, writer, sampler);
  console.info(
    `monitor down: ${withoutMonitor} writes acknowledged without the monitor (synchronous replication kept), longest gap ${withoutMonitorGap} ms; ` +
      `monitor started again, then kill -9 of the primary: first write on the new primary ${firstAfter - t1} ms after; old primary back as secondary ${rejoinMs} ms after its keeper's start`,
  );
}, 600_000);
