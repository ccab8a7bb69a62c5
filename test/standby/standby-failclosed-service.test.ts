// Rule 6 of the standby pair (issue 22): `knocker service` manages PostgreSQL on a standby host
// made by `standby init` alone (no knocker install there) as on the primary, including once a
// promote made that host the primary; `service start` keeps the fence (the peer asked first, a
// node that cannot prove it is the only primary starts read-only) and the next command it prints
// works. A writer walks the multi-host string and a sampler asks both hosts all along.
import fs from 'node:fs/promises';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { PATHS } from '../../src/system/root.js';
import { finish, makePair, role, run, standby, startSampler, waitRole, writerFor, type Pair, waitStreaming } from '../helpers/failclosed.js';
import { waitFor } from '../helpers/server.js';

let pair: Pair;
const service = (root: Pair['rootA'], ...args: string[]) => run(['service', '--root', root.dir, ...args]);

beforeAll(async () => {
  pair = await makePair('127.0.26.11', '127.0.26.12', '127.0.26.13');
}, 90_000);

afterAll(async () => {
  await pair?.destroy();
});

test('on the standby host (no install): service status, stop and start postgres; the rest is not set up', async () => {
  await expect(fs.stat(pair.rootB.path(PATHS.conf))).rejects.toThrow();
  const status = await service(pair.rootB, 'status');
  expect(status.exitCode, status.stdout + status.stderr).toBe(0);
  expect(status.stdout).toMatch(/^postgres\s+running\s+private cluster .* a standby of the pair \(starts read-only\)$/m);
  expect(status.stdout).toMatch(/^server\s+not set up/m);
  const writer = writerFor(pair, 1);
  const sampler = startSampler(pair);
  const stopped = await service(pair.rootB, 'stop', 'postgres');
  expect(stopped.exitCode, stopped.stderr).toBe(0);
  expect(await role(pair.rootB)).toBe('down');
  const down = await service(pair.rootB, 'status', 'postgres');
  expect(down.exitCode).toBe(1);
  expect(down.stdout).toMatch(/^postgres\s+stopped/m);
  const started = await service(pair.rootB, 'start', 'postgres');
  expect(started.exitCode, started.stderr).toBe(0);
  expect(await role(pair.rootB)).toBe('standby');
  await waitStreaming(pair.rootB);
  await finish(pair.rootA, writer, sampler);
}, 90_000);

test('after a promote the standby host runs the primary: service restart keeps it; started while the old primary does not answer it is fenced, and the printed promote works', async () => {
  const writer = writerFor(pair, 100_000);
  const sampler = startSampler(pair);
  await waitFor('some writes', () => (writer.acked.length > 20 ? true : undefined));
  // The primary stopped cleanly (it hands the standby all its WAL), then the standby promoted.
  expect((await service(pair.rootA, 'stop', 'postgres')).exitCode).toBe(0);
  const promoted = await standby(pair.rootB, 'promote');
  expect(promoted.exitCode, promoted.stderr).toBe(0);
  await waitRole(pair.rootB, 'primary');
  const status = await service(pair.rootB, 'status', 'postgres');
  expect(status.exitCode).toBe(0);
  expect(status.stdout).toContain("the pair's primary");

  // The old primary started by knocker asks B first: B is the primary, so A comes back its standby.
  const oldPrimary = await service(pair.rootA, 'start', 'postgres');
  expect(oldPrimary.exitCode, oldPrimary.stderr).toBe(0);
  expect(oldPrimary.stderr).toContain(`fenced: ${pair.B} is the primary now`);
  expect(await role(pair.rootA)).toBe('standby');

  // B restarted while A answers (as a standby): B is the primary again, the only one.
  const restarted = await service(pair.rootB, 'restart', 'postgres');
  expect(restarted.exitCode, restarted.stderr).toBe(0);
  await waitRole(pair.rootB, 'primary');

  // A stopped, then B restarted: A cannot be asked, so B starts read-only and says how to decide.
  expect((await service(pair.rootA, 'stop', 'postgres')).exitCode).toBe(0);
  expect((await service(pair.rootB, 'stop', 'postgres')).exitCode).toBe(0);
  const fenced = await service(pair.rootB, 'start', 'postgres');
  expect(fenced.exitCode, fenced.stderr).toBe(0);
  expect(fenced.stderr).toContain(`the other database host ${pair.A}:${pair.port} does not answer`);
  expect(['standby', 'read-only']).toContain(await role(pair.rootB));
  const next = fenced.stderr.split('\n').find((l) => l.includes('knocker standby promote'));
  expect(next, fenced.stderr).toBeDefined();
  // The printed command, run as printed (it keeps this root): B takes writes again, A still down.
  // (The runner shows a step's note in parentheses after its title: that line ends with ")".)
  const words = next!
    .slice(next!.indexOf('knocker ') + 'knocker '.length)
    .replace(/\)$/, '')
    .trim()
    .split(' ');
  expect(words).toEqual(['standby', 'promote', '--root', pair.rootB.dir]);
  const again = await run(words);
  expect(again.exitCode, again.stderr).toBe(0);
  await waitRole(pair.rootB, 'primary');
  expect(await role(pair.rootA)).toBe('down');
  await finish(pair.rootB, writer, sampler);
}, 180_000);
