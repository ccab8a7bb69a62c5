// `knocker service logs -f` in a real terminal (tmux): it follows until Ctrl-C, and ends as well on
// SIGTERM, as a service manager or `timeout` would send it; both are a normal end (exit 0).
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { PATHS } from '../../src/system/root.js';
import { cleanEnv, KNOCKER } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';
import { openTerminal, type Terminal } from '../helpers/tmux.js';

const newRoot = useRoots();
const terminals: Terminal[] = [];
afterEach(async () => {
  await Promise.all(terminals.splice(0).map((t) => t.close()));
});

async function following(): Promise<{ t: Terminal; log: string }> {
  const root = await newRoot();
  const log = root.path(PATHS.serverLog);
  await fs.mkdir(path.dirname(log), { recursive: true });
  await fs.writeFile(log, 'INFO  an old line\n');
  const t = await openTerminal([process.execPath, KNOCKER, 'service', 'logs', '-f', '--root', root.dir], { env: cleanEnv({ TERM: 'xterm-256color' }) });
  terminals.push(t);
  await t.waitFor('an old line');
  // Followed: a line written now appears.
  await fs.appendFile(log, 'INFO  a new line\n');
  await t.waitFor('a new line');
  return { t, log };
}

test('service logs -f ends on Ctrl-C, exit 0', async () => {
  const { t } = await following();
  await t.keys('C-c');
  const screen = await t.waitFor(/EXIT=\d+/);
  expect(screen).toContain('EXIT=0');
});

test('service logs -f ends on SIGTERM, exit 0', async () => {
  const { t } = await following();
  process.kill(await t.programPid(), 'SIGTERM');
  const screen = await t.waitFor(/EXIT=\d+/);
  expect(screen).toContain('EXIT=0');
});
