// The whole dashboard as an operator runs it: bin/knocker status in a real 80-column terminal
// (tmux), over a real sandbox cluster, keys typed at the keyboard.
import { afterEach, expect, test } from 'vitest';
import { cleanEnv, KNOCKER } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';
import { sharedDatabase } from '../helpers/server.js';
import { startStatusCluster } from '../helpers/status.js';
import { openTerminal, type Terminal } from '../helpers/tmux.js';

const HOSTS = ['127.0.0.141', '127.0.0.142', '127.0.0.143'];
const db = sharedDatabase({ host: '127.0.0.140', allow: HOSTS });
const newRoot = useRoots();
const terminals: Terminal[] = [];
afterEach(async () => {
  await Promise.all(terminals.splice(0).map((t) => t.close()));
});

test('the dashboard in an 80-column terminal: the cluster, a node dying, help, filter and q', async () => {
  const { root, nodes } = await startStatusCluster({ root: await newRoot(), hosts: HOSTS, haproxyHost: '127.0.0.145', databaseUrl: db.url });
  const t = await openTerminal([process.execPath, KNOCKER, 'status', '--root', root.dir, '--interval', '1'], {
    width: 80,
    height: 32,
    env: cleanEnv({ TERM: 'xterm-256color' }),
  });
  terminals.push(t);
  const screen = await t.waitFor('3 of 3 servers healthy');
  expect(screen).toMatch(/SERVER\s+HEALTH↓?\s+VERSION\s+\/_STATUS\s+HAPROXY/);
  expect(screen).toMatch(/^❯ ✔ web-1\s+ok\s+1\.0\.0\s+200 [\d.]+ms\s+UP/m);
  // Nothing runs past the 80 columns.
  for (const line of screen.split('\n')) expect([...line].length).toBeLessThanOrEqual(80);

  nodes[0]!.child.kill('SIGKILL');
  const dead = await t.waitFor(/^. ✗ web-1\s+\S+\s+1\.0\.0\s+refused/m);
  expect(dead).toContain('2 of 3 servers healthy');
  // HAProxy may see it first ("ok → failing"), then the probe: either way the event names the refusal.
  await t.waitFor(/✗ web-1: \S+ → no-answer: \/_status: connection refused/);

  await t.keys('?');
  await t.waitFor('Keys');
  await t.keys('Escape');
  await t.type('/web-3');
  await t.keys('Enter');
  const filtered = await t.waitFor('filter /web-3 (Esc clears)');
  expect(filtered).toMatch(/^. ✔ web-3/m);
  expect(filtered).not.toMatch(/^. [✔✗!] web-1/m);
  expect(filtered).toContain('2 more hidden by the filter');

  await t.keys('q');
  await t.waitFor('EXIT=0');

  // Ctrl-C ends it too, as any terminal program (raw mode: it arrives as a key, not a signal).
  const again = await openTerminal([process.execPath, KNOCKER, 'status', '--root', root.dir, '--interval', '1'], {
    width: 80,
    height: 32,
    env: cleanEnv({ TERM: 'xterm-256color' }),
  });
  terminals.push(again);
  await again.waitFor('servers healthy');
  await again.keys('C-c');
  await again.waitFor('EXIT=0');
});
