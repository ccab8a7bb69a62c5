// The dashboard and the cluster's history, in a real terminal (tmux) over a real sandbox cluster:
// it starts with the history (so a restart loses nothing), the same on another host's dashboard,
// and it folds the same change of several servers into one line.
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { PATHS } from '../../src/system/root.js';
import { cleanEnv, KNOCKER, knocker } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';
import { sharedDatabase } from '../helpers/server.js';
import { startStatusCluster } from '../helpers/status.js';
import { openTerminal, type Terminal } from '../helpers/tmux.js';

const HOSTS = ['127.0.0.241', '127.0.0.242', '127.0.0.243'];
const db = sharedDatabase({ host: '127.0.0.240', allow: HOSTS });
const newRoot = useRoots();
const terminals: Terminal[] = [];
afterEach(async () => {
  await Promise.all(terminals.splice(0).map((t) => t.close()));
});

async function dashboard(dir: string): Promise<Terminal> {
  const t = await openTerminal([process.execPath, KNOCKER, 'status', '--root', dir, '--interval', '1'], {
    width: 140,
    height: 45,
    env: cleanEnv({ TERM: 'xterm-256color' }),
  });
  terminals.push(t);
  return t;
}

test('the dashboard starts with the history, after a restart and on another host; two nodes going down is one line', async () => {
  const { root, nodes } = await startStatusCluster({ root: await newRoot(), hosts: HOSTS, haproxyHost: '127.0.0.245', databaseUrl: db.url });
  // Another host of the cluster: web-2's, with its own knocknoc.conf.
  const other = await newRoot();
  await fs.mkdir(path.dirname(other.path(PATHS.conf)), { recursive: true });
  await fs.copyFile(nodes[1]!.confFile!, other.path(PATHS.conf));

  for (const action of ['drain', 'ready']) {
    const result = await knocker(['haproxy', action, 'web-3', '--root', root.dir]);
    expect(result.exitCode, result.stderr).toBe(0);
  }
  const drained = /\d\d:\d\d:\d\d ✔ web-1 \(\S+\): knocker haproxy drain web-3 — done/;
  const readied = /\d\d:\d\d:\d\d ✔ web-1 \(\S+\): knocker haproxy ready web-3 — done/;

  const first = await dashboard(root.dir);
  await first.waitFor('3 of 3 servers healthy');
  const seen = await first.waitFor(readied);
  expect(seen).toMatch(drained);
  await first.keys('q');
  await first.waitFor('EXIT=0');

  // Restarted: the same events are back. On web-2's host: the same too.
  for (const dir of [root.dir, other.dir]) {
    const t = await dashboard(dir);
    const screen = await t.waitFor('3 of 3 servers healthy');
    expect(screen).toMatch(drained);
    expect(screen).toMatch(readied);
    await t.keys('q');
    await t.waitFor('EXIT=0');
  }

  // Two nodes stopped at once: one folded line for both, then one ✔ line when they are back.
  const live = await dashboard(root.dir);
  await live.waitFor('3 of 3 servers healthy');
  nodes[1]!.child.kill('SIGSTOP');
  nodes[2]!.child.kill('SIGSTOP');
  const down = await live.waitFor(/[!✗] web-[23], web-[23]: ok → \S+/, 30_000);
  expect(down).toContain('1 of 3 servers healthy');
  nodes[1]!.child.kill('SIGCONT');
  nodes[2]!.child.kill('SIGCONT');
  await live.waitFor(/✔ web-[23], web-[23]: \S+ → ok/, 30_000);
});
