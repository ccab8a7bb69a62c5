// Rule 2 of the standby pair (issue 22): a fence is local and can't be mistaken. Another database
// set read-only on a writable primary does not make it look fenced (promote is refused); a
// promote --force killed (kill -9) right after fencing the old primary leaves the fence on that
// server only, so the promotion run again gives a new primary that takes writes; the fence stays
// on the old primary across a restart and is gone once it rejoins (it would not come back with the
// roles swapped). A writer walks the multi-host string; a sampler asks both hosts all along.
import fs from 'node:fs/promises';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { PATHS } from '../../src/system/root.js';
import { waitFor } from '../helpers/server.js';
import { finish, makePair, role, run, standby, startSampler, writerFor, type Pair } from '../helpers/failclosed.js';
import { sql } from '../helpers/standby.js';

let pair: Pair;

beforeAll(async () => {
  pair = await makePair('127.0.22.11', '127.0.22.12', '127.0.22.13');
}, 90_000);

afterAll(async () => {
  await pair?.destroy();
});

test('another database set read-only on the primary is no fence: promote is refused, never two writable hosts', async () => {
  const writer = writerFor(pair, 1);
  const sampler = startSampler(pair);
  await sql(pair.rootA, 'CREATE DATABASE unrelated', [], 'postgres');
  await sql(pair.rootA, 'ALTER DATABASE unrelated SET default_transaction_read_only = on', [], 'postgres');
  await waitFor('some writes', () => (writer.acked.length > 20 ? true : undefined));
  const status = JSON.parse((await standby(pair.rootB, 'status', '--json')).stdout) as { peer: { role: string; readOnly: boolean } };
  expect(status.peer).toMatchObject({ role: 'primary', readOnly: false });
  const refused = await standby(pair.rootB, 'promote');
  expect(refused.exitCode, refused.stderr).toBe(3);
  expect(refused.stderr).toContain('still answers and takes writes');
  expect(await role(pair.rootB)).toBe('standby');
  await finish(pair.rootA, writer, sampler);
}, 60_000);

test('promote --force killed after the fence: the fence stays on the old primary only; run again, the new primary takes writes', async () => {
  const writer = writerFor(pair, 100_000);
  const sampler = startSampler(pair);
  await waitFor('some writes', () => (writer.acked.length > 20 ? true : undefined));
  const killed = await run(['standby', '--root', pair.rootB.dir, 'promote', '--force'], { KNOCKER_TEST_KILL_AT: 'after:1' });
  expect(killed.exitCode).not.toBe(0);
  expect(await role(pair.rootA)).toBe('read-only');
  expect(await role(pair.rootB)).toBe('standby');
  // Nothing of the fence reached the standby: no catalog setting, and its own file has none.
  const settings = `SELECT coalesce(d.datname, '(all)') AS db FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase WHERE array_to_string(setconfig, ',') LIKE '%default_transaction_read_only%'`;
  expect(await sql(pair.rootB, settings, [], 'postgres')).toEqual([{ db: 'unrelated' }]);
  expect(await fs.readFile(pair.rootA.path(`${PATHS.pgData}/postgresql.auto.conf`), 'utf8')).toMatch(/^default_transaction_read_only = 'on'/m);
  expect(await fs.readFile(pair.rootB.path(`${PATHS.pgData}/postgresql.auto.conf`), 'utf8')).not.toContain('default_transaction_read_only');

  const promoted = await standby(pair.rootB, 'promote', '--force');
  expect(promoted.exitCode, promoted.stderr).toBe(0);
  expect(await role(pair.rootB)).toBe('primary');
  const before = writer.acked.length;
  await waitFor('writes on the new primary', () => (writer.acked.length > before + 30 ? true : undefined), 30_000);
  const onB = JSON.parse((await standby(pair.rootB, 'status', '--json')).stdout) as { peer: { readOnly: boolean }; problems: string[] };
  expect(onB.peer.readOnly).toBe(true);
  expect(onB.problems.join(' ')).not.toContain('TWO PRIMARIES');
  const onA = await standby(pair.rootA, 'status');
  expect(onA.stdout).toContain('fenced: read-only');

  // The fence outlives a restart of the old primary (its own file), and goes with the rejoin.
  expect((await run(['service', '--root', pair.rootA.dir, 'restart', 'postgres'])).exitCode).toBe(0);
  expect(['read-only', 'standby']).toContain(await role(pair.rootA));
  const rejoin = await standby(pair.rootA, 'rejoin');
  expect(rejoin.exitCode, rejoin.stderr).toBe(0);
  // Gone with it: a later switchover back would find the old primary writable.
  expect(await fs.readFile(pair.rootA.path(`${PATHS.pgData}/postgresql.auto.conf`), 'utf8')).not.toContain('default_transaction_read_only');
  expect(await role(pair.rootA)).toBe('standby');
  await finish(pair.rootB, writer, sampler);
}, 120_000);
