// The dashboard's P (promote) on the standby's host, end to end (bin/knocker status --admin in tmux):
// a pair whose standby host B runs a web node too (so the dashboard starts there), the primary A
// lost (its postmaster shut down). P shows the plan `knocker standby promote --dry-run` prints and
// the one confirm question; n changes nothing (B still in recovery); y promotes B through the same
// code as the command. A writer records every acknowledged write and a sampler checks, through the
// whole run, that never two hosts take writes; none acknowledged is lost.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { CONFIRM_KEYS } from '../../src/shared/confirm.js';
import { STANDBY_TITLE } from '../../src/status/actions.js';
import { finish, makePair, webNodeOnStandbyHost, type Pair, postmasterPid, role, startSampler, writerFor } from '../helpers/failclosed.js';
import { cleanEnv, KNOCKER, knocker } from '../helpers/knocker.js';
import { waitFor } from '../helpers/server.js';
import { openTerminal, type Terminal } from '../helpers/tmux.js';

const A = '127.0.27.1';
const B = '127.0.27.2';
const CLIENT = '127.0.27.3';
let pair: Pair;
let terminal: Terminal | undefined;

beforeAll(async () => {
  // B's own web node (option 3 on the primary's string; add-standby gives it the pair's).
  pair = await makePair(A, B, CLIENT, { beforeStandby: webNodeOnStandbyHost(B) });
}, 240_000);

afterAll(async () => {
  await terminal?.close();
  await pair?.destroy();
}, 120_000);

test("P on the standby's host with the primary lost: the plan, the question, n changes nothing, y promotes; 0 acknowledged writes lost, never two writable", async () => {
  const writer = writerFor(pair, 1);
  const sampler = startSampler(pair);
  await waitFor('writes before the primary is lost', () => (writer.acked.length > 30 ? true : undefined));

  // The primary lost by a fast shutdown (SIGINT to its postmaster): its walsender hands the standby
  // every acknowledged write first. (A kill -9 of an asynchronous primary may lose the last ones: the
  // manual pair's known limit, README "Standby (two hosts)"; the test is about the dashboard's P.)
  const postmaster = await postmasterPid(pair.rootA);
  process.kill(postmaster, 'SIGINT');
  await waitFor('the primary gone', async () => ((await role(pair.rootA)) === 'down' ? true : undefined));

  const dry = await knocker(['standby', 'promote', '--dry-run', '--root', pair.rootB.dir]);
  expect(dry.exitCode, dry.stderr).toBe(0);
  const planTitle = dry.stdout.split('\n')[0]!;
  expect(planTitle).toMatch(/: \d+ changes?$/);

  terminal = await openTerminal([process.execPath, KNOCKER, 'status', '--admin', '--root', pair.rootB.dir, '--interval', '1'], {
    width: 180,
    height: 60,
    env: cleanEnv({ TERM: 'xterm-256color' }),
  });
  // The console says the truth of the incident: no read-write primary, so no registry.
  await terminal.waitFor('database unreachable', 60_000);
  await terminal.keys('P');
  const asked = await terminal.waitFor(`${STANDBY_TITLE.promote} [${CONFIRM_KEYS}]`, 60_000);
  // The plan the command prints, step by step, above the question.
  expect(asked).toContain(planTitle);
  for (const step of dry.stdout.split('\n').filter((line) => /^ {2}\+ \[/.test(line))) expect(asked).toContain(step.slice(0, 150));
  await terminal.keys('n');
  await terminal.waitFor('promote: cancelled');
  expect(await role(pair.rootB)).toBe('standby');

  await terminal.keys('P');
  await terminal.waitFor(`${STANDBY_TITLE.promote} [${CONFIRM_KEYS}]`, 60_000);
  await terminal.keys('y');
  await terminal.waitFor('promote: done', 120_000);
  expect(await role(pair.rootB)).toBe('primary');
  // The dashboard follows the promoted standby: the registry is read again, B's node in it.
  await terminal.waitFor('web-b', 60_000);

  await finish(pair.rootB, writer, sampler);
}, 400_000);
