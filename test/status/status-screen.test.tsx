// The live dashboard over a real sandbox cluster (one database, three knocknoc-server nodes,
// knocker's HAProxy): frames as an operator sees them while nodes stop, fall out of step and
// HAProxy goes away, and the keys, the filter and the --admin actions.
import { render } from 'ink-testing-library';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { Dashboard, type DashboardServices } from '../../src/status-app.js';
import { CONFIRM_KEYS } from '../../src/shared/confirm.js';
import { rotateServer } from '../../src/status/actions.js';
import { openMonitor, staleAfterMs } from '../../src/status/index.js';
import type { Root } from '../../src/system/root.js';
import { frame, KEYS, press, type, waitForFrame, type Rendered } from '../helpers/ink.js';
import { knocker } from '../helpers/knocker.js';
import { makeRelease, type TestRelease } from '../helpers/release.js';
import { useRoots } from '../helpers/roots.js';
import { launchServer, sharedDatabase, untilListening, waitFor } from '../helpers/server.js';
import { rowOf, rowOrder, startStatusCluster } from '../helpers/status.js';

const HOSTS = ['127.0.0.121', '127.0.0.122', '127.0.0.123'];
const HAPROXY_HOST = '127.0.0.125';
const db = sharedDatabase({ host: '127.0.0.120', allow: HOSTS });
const newRoot = useRoots();
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

let next: TestRelease;
beforeAll(async () => {
  next = await makeRelease({ version: '1.1.0', migrations: [{ name: 'server_notes', sql: 'ALTER TABLE servers ADD COLUMN note text;\n' }] });
});
afterAll(async () => {
  await next?.destroy();
});

async function dashboard(root: Root, options: { admin?: boolean } = {}): Promise<Rendered> {
  const monitor = await openMonitor(root, { intervalMs: 1000 });
  const services: DashboardServices = {
    monitor,
    staleAfterMs: () => staleAfterMs(monitor),
    ...(options.admin ? { rotate: (name, action, onStatus) => rotateServer(root, name, action, onStatus) } : {}),
  };
  monitor.start();
  const ui = render(<Dashboard services={services} onExit={() => {}} />);
  closers.push(async () => {
    ui.unmount();
    await monitor.stop();
  });
  return ui;
}

const matchRow = (name: string, pattern: RegExp) => (current: string) => pattern.test(rowOf(current, name));

async function waitForRow(ui: Rendered, name: string, pattern: RegExp, timeoutMs = 20_000): Promise<string> {
  return waitFor(
    `${name} to match ${pattern}`,
    () => {
      const current = frame(ui);
      return matchRow(name, pattern)(current) ? current : undefined;
    },
    timeoutMs,
  ).catch((error: Error) => {
    throw new Error(`${error.message}; last frame:\n${frame(ui)}`);
  });
}

test('three healthy nodes; a node that stops is shown stopped, refusing and DOWN, first in the table, with an event', async () => {
  const { root, nodes } = await startStatusCluster({ root: await newRoot(), hosts: HOSTS, haproxyHost: HAPROXY_HOST, databaseUrl: db.url });
  const ui = await dashboard(root);
  const healthy = await waitForFrame(ui, '3 of 3 servers healthy');
  for (const name of ['web-1', 'web-2', 'web-3'])
    expect(rowOf(healthy, name)).toMatch(new RegExp(`✔ ${name}\\s+ok\\s+1\\.0\\.0\\s+200 [\\d.]+ms\\s+UP\\s+\\d+s\\s+L7OK 200`));
  expect(healthy).toMatch(/database primary, no standby/);
  expect(healthy).toMatch(/127\.0\.0\.120:\d+\/knocknoc as knocknoc: PostgreSQL \d+\.\d+, primary/);
  expect(healthy).toContain('none yet: state changes appear here');

  nodes[1]!.child.kill('SIGTERM');
  await nodes[1]!.exited;
  const stopped = await waitForRow(ui, 'web-2', /✗ web-2\s+stopped\s+1\.0\.0\s+refused\s+DOWN/);
  expect(stopped).toContain('2 of 3 servers healthy');
  expect(rowOrder(stopped)[0]).toBe('web-2');
  expect(stopped).toMatch(/web-2: stopped \(marked stopped in the registry\); \/_status: connection refused; HAProxy: DOWN/);
  // The probe or HAProxy may notice before the registry does: the last step is "→ stopped".
  expect(stopped).toMatch(/\d\d:\d\d:\d\d ✗ web-2: \S+ → stopped/);
});

test('HAProxy stopped: its source fails and keeps its last data, the others keep refreshing; back, it says so', async () => {
  const { root, haproxy } = await startStatusCluster({ root: await newRoot(), hosts: HOSTS, haproxyHost: HAPROXY_HOST, databaseUrl: db.url });
  const ui = await dashboard(root);
  await waitForFrame(ui, '3 of 3 servers healthy');
  // A reload (a node taken out of the configuration) is noticed: a new worker answers.
  expect((await haproxy.run('remove', 'web-3')).exitCode).toBe(0);
  const reloaded = await waitForFrame(ui, /HAProxy reloaded \(worker pid \d+ → \d+\)/);
  expect(rowOf(reloaded, 'web-3')).toMatch(/! web-3\s+not-in-lb\s+1\.0\.0\s+200 [\d.]+ms\s+-/);
  expect((await knocker(['service', 'stop', 'haproxy', '--root', root.dir])).exitCode).toBe(0);
  const failing = await waitForFrame(ui, /haproxy ✗ FAILING \d+s old/);
  expect(failing).toContain('HAProxy not answering');
  expect(failing).toContain('2 of 3 servers healthy');
  expect(failing.replace(/\s+/g, ' ')).toMatch(/✗ haproxy: cannot reach HAProxy's runtime API on \S+status\.sock: (no such socket|nothing listens there)/);
  // Its last data is still there (drawn dimmed), and the other sources go on.
  expect(rowOf(failing, 'web-1')).toMatch(/✔ web-1\s+ok\s+1\.0\.0\s+200 [\d.]+ms\s+UP/);
  // Wait for the event (HAProxy's data has aged past a few refreshes), then compare ages in that
  // one frame: the others are fresher than HAProxy's, however loaded the machine is.
  const later = await waitForFrame(ui, /haproxy ✗ FAILING ([3-9]|\d\d+)s old/);
  const ages = /registry (\d+)s · probes (\d+)s · haproxy ✗ FAILING (\d+)s old · database (\d+)s/.exec(later);
  expect(ages, later).not.toBeNull();
  const [registry, probes, haproxyAge, database] = ages!.slice(1).map(Number) as [number, number, number, number];
  for (const other of [registry, probes, database]) expect(other).toBeLessThan(haproxyAge);

  expect((await knocker(['service', 'start', 'haproxy', '--root', root.dir])).exitCode).toBe(0);
  const back = await waitForFrame(ui, /✔ haproxy: answering again/);
  expect(back).not.toContain('FAILING');
});

test('a node out of step with the migrated database is shown out of step; the migration is an event', async () => {
  const databaseUrl = await db.cluster.createDatabase({ role: 'stepping', database: 'stepping' });
  const { root, nodes } = await startStatusCluster({ root: await newRoot(), hosts: HOSTS, haproxyHost: HAPROXY_HOST, databaseUrl });
  const ui = await dashboard(root);
  await waitForFrame(ui, '3 of 3 servers healthy');
  // web-3 comes back on the next release: it migrates the database, which leaves web-1 and web-2 behind.
  nodes[2]!.child.kill('SIGTERM');
  await nodes[2]!.exited;
  const upgraded = launchServer({ confFile: nodes[2]!.confFile, bin: next.serverBin, name: 'web-3', host: nodes[2]!.host, port: nodes[2]!.port });
  await untilListening(upgraded);
  await waitForRow(ui, 'web-1', /✗ web-1\s+out-of-step\s+1\.0\.0 ≠db\s+503/);
  await waitForFrame(ui, 'database schema 2 → 3 (migrated)');
  // Each node re-reads the schema version on its own second: web-2 may notice a moment later.
  await waitForRow(ui, 'web-2', /✗ web-2\s+out-of-step/);
  await waitForRow(ui, 'web-3', /✔ web-3\s+ok\s+1\.1\.0\s+200/);
  const after = frame(ui);
  expect(after).toContain('1 of 3 servers healthy');
  expect(after).toMatch(/web-3: version 1\.0\.0 → 1\.1\.0/);
});

test('keys: filter (! inverts), Esc clears it, pause, interval, help, selection; without --admin nothing changes', async () => {
  const { root, haproxy } = await startStatusCluster({ root: await newRoot(), hosts: HOSTS, haproxyHost: HAPROXY_HOST, databaseUrl: db.url });
  const ui = await dashboard(root);
  await waitForFrame(ui, '3 of 3 servers healthy');

  await press(ui, '/');
  await type(ui, 'web-2');
  expect(rowOrder(frame(ui))).toEqual(['web-2']);
  await press(ui, KEYS.enter);
  expect(frame(ui)).toContain('filter /web-2 (Esc clears)');
  expect(frame(ui)).toContain('2 more hidden by the filter');
  await press(ui, '/');
  for (let i = 0; i < 'web-2'.length; i += 1) await press(ui, KEYS.backspace);
  await type(ui, '!web-2');
  await press(ui, KEYS.enter);
  expect(rowOrder(frame(ui))).toEqual(['web-1', 'web-3']);
  await press(ui, KEYS.escape);
  expect(rowOrder(frame(ui))).toEqual(['web-1', 'web-2', 'web-3']);

  await press(ui, 'p');
  expect(frame(ui)).toContain('PAUSED');
  await waitForFrame(ui, /registry ([3-9]|\d\d+)s/);
  await press(ui, 'p');
  await waitForFrame(ui, /registry [0-1]s .*every 1s/);
  await press(ui, '+');
  expect(frame(ui)).toContain('every 2s');
  await press(ui, '-');
  await press(ui, '-');
  expect(frame(ui)).toContain('every 0.5s');

  await press(ui, '?');
  expect(frame(ui)).toContain('Keys');
  expect(frame(ui)).toContain('Read-only: start with --admin');
  await press(ui, 'x');
  expect(frame(ui)).not.toContain('Read-only: start with --admin');

  expect(rowOf(frame(ui), 'web-1')).toMatch(/^❯/);
  await press(ui, KEYS.down);
  expect(rowOf(frame(ui), 'web-2')).toMatch(/^❯/);
  // Without --admin an admin key is refused with a word, not passed over.
  await press(ui, 'd');
  await waitForFrame(ui, 'read-only: start with --admin to drain, maint or ready a server, or switch over');
  expect(frame(ui)).not.toContain(CONFIRM_KEYS);
  expect((await haproxy.statusOf('web-2')).statusText).toBe('UP');
});

test('--admin: drain, maint and ready the selected node through HAProxy, each confirmed first and logged as an event', async () => {
  const { root, haproxy } = await startStatusCluster({ root: await newRoot(), hosts: HOSTS, haproxyHost: HAPROXY_HOST, databaseUrl: db.url });
  const ui = await dashboard(root, { admin: true });
  await waitForFrame(ui, '3 of 3 servers healthy');
  await press(ui, KEYS.down);
  await press(ui, 'd');
  expect(frame(ui)).toContain(`Drain web-2? No new sessions; clients holding its cookie still reach it. [${CONFIRM_KEYS}]`);
  // A key that is no answer (Enter among them) leaves the question standing.
  await press(ui, KEYS.enter);
  expect(frame(ui)).toContain(`[${CONFIRM_KEYS}]`);
  expect((await haproxy.statusOf('web-2')).statusText).toBe('UP');
  await press(ui, 'n');
  expect(frame(ui)).toContain('drain web-2: cancelled');
  expect((await haproxy.statusOf('web-2')).statusText).toBe('UP');

  await press(ui, 'd');
  await press(ui, 'y');
  await waitForFrame(ui, /drain web-2: done, now DRAIN/);
  expect((await haproxy.statusOf('web-2')).statusText).toBe('DRAIN');
  await waitForRow(ui, 'web-2', /! web-2\s+draining/);

  // Keys typed faster than the screen redraws still count, each in order.
  ui.stdin.write('my');
  await waitForFrame(ui, /maint web-2: done, now MAINT/);
  expect((await haproxy.statusOf('web-2')).statusText).toBe('MAINT');

  await press(ui, 'R');
  expect(frame(ui)).toContain('Bring web-2 back into rotation? Only once a health check passes.');
  await press(ui, 'y');
  await waitForFrame(ui, /ready web-2: done, now UP/, 30_000);
  expect((await haproxy.statusOf('web-2')).statusText).toBe('UP');
  await waitForFrame(ui, '3 of 3 servers healthy');
});
