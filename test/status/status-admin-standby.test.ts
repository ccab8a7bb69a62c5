// The standby's moves from the dashboard, on the host where they run (bin/knocker status --admin in
// a real terminal, tmux): S shows the plan `knocker standby switchover --dry-run` prints and the one
// confirm question; n changes nothing; y runs the same command through the runner. The move is in
// the cluster's history: spooled on this host while its database is the standby (read-only), and
// written by the next command once it is the primary again.
import { afterEach, expect, test } from 'vitest';
import { CONFIRM_KEYS } from '../../src/shared/confirm.js';
import { STANDBY_TITLE } from '../../src/status/actions.js';
import type { Root } from '../../src/system/root.js';
import { installPrimary } from '../helpers/exposedb.js';
import { cleanEnv, KNOCKER, knocker } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';
import { openTerminal, type Terminal } from '../helpers/tmux.js';

const A = '127.0.0.247';
const B = '127.0.0.248';
const newRoot = useRoots();
const terminals: Terminal[] = [];
afterEach(async () => {
  await Promise.all(terminals.splice(0).map((t) => t.close()));
});

async function role(root: Root): Promise<string> {
  const result = await knocker(['standby', 'status', '--json', '--root', root.dir]);
  return (JSON.parse(result.stdout) as { node: { role: string } }).node.role;
}

interface Listed {
  events: Array<{ command: string; outcome: string; spooled: boolean; server: string | null }>;
}

test('S on the primary: the plan, the question, n cancels, y switches over; the move is in the history', async () => {
  const [rootA, rootB] = [await newRoot(), await newRoot()];
  await installPrimary(rootA, A);
  expect((await knocker(['exposedb', '--root', rootA.dir, '--init'])).exitCode).toBe(0);
  expect((await knocker(['exposedb', '--root', rootA.dir, '--add', `${B}/32`])).exitCode).toBe(0);
  const add = await knocker(['exposedb', '--root', rootA.dir, '--add-standby', B]);
  expect(add.exitCode, add.stderr).toBe(0);
  const init = await knocker(['standby', '--root', rootB.dir, 'init', '--bundle', add.stdout.trim()], { timeoutMs: 180_000 });
  expect(init.exitCode, init.stderr).toBe(0);

  const dry = await knocker(['standby', 'switchover', '--dry-run', '--root', rootA.dir]);
  expect(dry.exitCode, dry.stderr).toBe(0);
  const planTitle = dry.stdout.split('\n')[0]!;
  expect(planTitle).toMatch(/: \d+ changes$/);

  const t = await openTerminal([process.execPath, KNOCKER, 'status', '--admin', '--root', rootA.dir, '--interval', '1'], {
    width: 180,
    height: 60,
    env: cleanEnv({ TERM: 'xterm-256color' }),
  });
  terminals.push(t);
  await t.waitFor('1 of 1 server healthy');
  await t.keys('S');
  const asked = await t.waitFor(`${STANDBY_TITLE.switchover} [${CONFIRM_KEYS}]`, 60_000);
  // The plan the command prints, step by step, above the question.
  expect(asked).toContain(planTitle);
  for (const step of dry.stdout.split('\n').filter((line) => /^ {2}\+ \[/.test(line))) expect(asked).toContain(step.slice(0, 150));
  await t.keys('n');
  await t.waitFor('switchover: cancelled');
  expect(await role(rootA)).toBe('primary');

  await t.keys('S');
  await t.waitFor(`${STANDBY_TITLE.switchover} [${CONFIRM_KEYS}]`, 60_000);
  await t.keys('y');
  const done = await t.waitFor('switchover: done', 120_000);
  // This host's database is the standby now, but this host's own node (and so its history) follows
  // the pair's multi-host string (exposedb --add-standby gave it): the event is written to the new
  // primary at once, nothing waits in the spool.
  expect(done.replace(/\s+/g, ' ')).not.toContain('the database is read-only here');
  expect(await role(rootA)).toBe('standby');
  expect(await role(rootB)).toBe('primary');
  await t.keys('q');
  await t.waitFor('EXIT=0');

  const written = JSON.parse((await knocker(['history', '--json', '--root', rootA.dir])).stdout) as Listed;
  expect(written.events.at(-1)).toMatchObject({ command: 'knocker standby switchover', outcome: 'ok', spooled: false });

  // Back (from B's host, on the command line). B was made by standby init alone and has no
  // knocknoc.conf: its run is noted in its own log only (README, knocker history), so the cluster's
  // history, read from A again now A is the primary, still has the one move made from A.
  const back = await knocker(['standby', 'switchover', '--root', rootB.dir], { timeoutMs: 120_000 });
  expect(back.exitCode, back.stderr).toBe(0);
  expect(await role(rootA)).toBe('primary');
  const after = JSON.parse((await knocker(['history', '--json', '--root', rootA.dir])).stdout) as Listed;
  expect(after.events.filter((e) => e.command === 'knocker standby switchover')).toEqual([expect.objectContaining({ outcome: 'ok', spooled: false })]);
}, 300_000);
