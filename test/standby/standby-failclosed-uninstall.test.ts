// Rule 6 of the standby pair (issue 22): uninstall on a host of a pair. On the primary it refuses
// first (exit 3, nothing changed) with the commands to run. After a switchover the old primary's
// host is the standby: its uninstall stops PostgreSQL before it removes anything, drops its slot on
// the primary and the pair's secrets here, and with its DatabaseURL naming only this host (as
// knocker left it before the node followed the pair) it says the registry here is read-only
// instead of planning a change it would have to "undo". `standby remove` on the primary then takes
// away what exposedb --add-standby made there. A writer and a sampler run through it all.
import fs from 'node:fs/promises';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { PATHS } from '../../src/system/root.js';
import { STANDBY_PATHS } from '../../src/standby/paths.js';
import { finish, makePair, role, run, standby, type Pair, switchoverUnderLoad } from '../helpers/failclosed.js';
import { sql } from '../helpers/standby.js';

let pair: Pair;
const exists = (file: string) =>
  fs
    .stat(file)
    .then(() => true)
    .catch(() => false);

beforeAll(async () => {
  pair = await makePair('127.0.26.21', '127.0.26.22', '127.0.26.23');
}, 90_000);

afterAll(async () => {
  await pair?.destroy();
});

test('uninstall on the primary of a pair: refused first (exit 3), naming the standby and the commands to run; nothing changed', async () => {
  const conf = await fs.readFile(pair.rootA.path(PATHS.conf), 'utf8');
  const refused = await run(['uninstall', '--root', pair.rootA.dir, '--yes']);
  expect(refused.exitCode, refused.stderr).toBe(3);
  expect(refused.stderr).toContain(`this host is the primary of a replicated pair: the standby ${pair.B}:${pair.port} replicates from it`);
  expect(refused.stderr).toContain(`knocker standby remove --root ${pair.rootA.dir}`);
  expect(refused.stderr).toContain(`knocker standby switchover --root ${pair.rootA.dir}`);
  const dry = await run(['uninstall', '--root', pair.rootA.dir, '--dry-run', '--json']);
  expect(dry.exitCode).toBe(3);
  expect((JSON.parse(dry.stdout) as { error: { exitCode: number } }).error.exitCode).toBe(3);
  expect(await fs.readFile(pair.rootA.path(PATHS.conf), 'utf8')).toBe(conf);
  expect(await role(pair.rootA)).toBe('primary');
}, 60_000);

test('after a switchover, uninstall on the old primary (now the standby): PostgreSQL stopped first, its slot on the primary dropped, its secrets gone, the read-only registry left with a word, no undo claimed', async () => {
  const { writer, sampler } = await switchoverUnderLoad(pair, pair.rootA, 1);
  const slotOnB = `knocker_${pair.A.replace(/\./g, '_')}`;
  expect((await sql(pair.rootB, 'SELECT slot_name FROM pg_replication_slots', [], 'postgres')).map((r) => r.slot_name)).toContain(slotOnB);
  // The DatabaseURL as knocker wrote it before the node followed the pair (the single-host one,
  // kept as knocknoc.conf.bak): its registry is this host's, read-only now.
  await fs.copyFile(`${pair.rootA.path(PATHS.conf)}.bak`, pair.rootA.path(PATHS.conf));

  const result = await run(['uninstall', '--root', pair.rootA.dir, '--yes']);
  expect(result.exitCode, result.stderr).toBe(0);
  expect(result.stderr).not.toMatch(/rolled back|rollback/i);
  expect(result.stderr).toContain('is read-only here (a standby, or fenced)');
  expect(result.stderr).toContain(`on ${pair.B}, run knocker standby remove`);
  // PostgreSQL stopped before anything was removed: the steps in the order they were applied.
  const applied = [...result.stderr.matchAll(/^\s*\[(\d+)\/\d+\] (.*) …$/gm)].map((m) => m[2]!);
  const stop = applied.findIndex((t) => t.startsWith('Stop PostgreSQL'));
  expect(stop, result.stderr).toBeGreaterThan(-1);
  expect(applied.findIndex((t) => /^(Remove|Take|Delete)/.test(t))).toBeGreaterThan(stop);
  expect(applied.slice(0, stop).every((t) => t.startsWith('Stop '))).toBe(true);
  expect(await role(pair.rootA)).toBe('down');
  expect((await sql(pair.rootB, 'SELECT slot_name FROM pg_replication_slots', [], 'postgres')).map((r) => r.slot_name)).not.toContain(slotOnB);
  for (const file of [STANDBY_PATHS.passfile, STANDBY_PATHS.ca, STANDBY_PATHS.state, PATHS.pgTlsKey, PATHS.conf])
    expect(await exists(pair.rootA.path(file)), file).toBe(false);
  // The bundle it made for B while it was the primary (B's key and the password) goes too.
  expect(await exists(pair.bundle)).toBe(false);
  // The data is kept (no --purge-data), as on any uninstall.
  expect(await exists(pair.rootA.path(`${PATHS.pgData}/PG_VERSION`))).toBe(true);
  // The row stays in the registry of the primary, as the warning said.
  expect((await sql<{ n: number }>(pair.rootB, 'SELECT count(*)::int AS n FROM servers')).at(0)!.n).toBeGreaterThan(0);
  await finish(pair.rootB, writer, sampler);
}, 180_000);

test('standby remove on the primary then takes away what exposedb --add-standby made there: lines, role, passfile, bundle', async () => {
  const removed = await standby(pair.rootB, 'remove');
  expect(removed.exitCode, removed.stderr).toBe(0);
  for (const file of [STANDBY_PATHS.passfile, STANDBY_PATHS.ca, STANDBY_PATHS.state]) expect(await exists(pair.rootB.path(file)), file).toBe(false);
  expect(await sql(pair.rootB, `SELECT rolname FROM pg_roles WHERE rolname = 'knocker_replicator'`, [], 'postgres')).toEqual([]);
  expect(await fs.readFile(pair.rootB.path(`${PATHS.pgData}/pg_hba.conf`), 'utf8')).not.toContain('knocker standby');
  expect(await role(pair.rootB)).toBe('primary');
}, 60_000);
