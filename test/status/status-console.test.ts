// The console as an operator keeps it open through an incident: bin/knocker status in real
// terminals (tmux, 80×24 and 200×50) over a real cluster of three nodes on a primary with a
// streaming standby behind a two-host DatabaseURL, knocker's HAProxy in front. Fifty events do not
// push the head off the screen; a resize redraws without stale lines; Enter, Esc, l, D and s; and
// NO_COLOR or --no-color leave no colour on the screen.
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { BACKEND } from '../../src/haproxy/config.js';
import { haproxyPaths } from '../../src/haproxy/service.js';
import { setServerState } from '../../src/haproxy/runtime.js';
import { buildDatabaseUrl, parseDatabaseUrl } from '../../src/postgres/url.js';
import { DASHBOARD_KEYS, dashboardKeyWidth } from '../../src/screens/keys.js';
import { PATHS } from '../../src/system/root.js';
import { cleanEnv, KNOCKER } from '../helpers/knocker.js';
import { startTestCluster, type TestCluster } from '../helpers/pg.js';
import { allowLogins, startTestStandby, type TestStandby } from '../helpers/replica.js';
import { destroyRoot, makeRoot } from '../helpers/roots.js';
import { stopServers, waitFor } from '../helpers/server.js';
import { rowOrder, startStatusCluster, type StatusCluster } from '../helpers/status.js';
import { openTerminal, type Terminal } from '../helpers/tmux.js';

const PRIMARY = '127.0.0.220';
const STANDBY = '127.0.0.221';
const NODES = ['127.0.0.222', '127.0.0.223', '127.0.0.224'];
const HAPROXY_HOST = '127.0.0.225';
let primary: TestCluster | undefined;
let standby: TestStandby | undefined;
let cluster: StatusCluster;
let hosts: { P: string; S: string };
const terminals: Terminal[] = [];

beforeAll(async () => {
  primary = await startTestCluster({ host: PRIMARY });
  await allowLogins(primary, NODES);
  const single = parseDatabaseUrl(await primary.createDatabase({ role: 'knocknoc', database: 'knocknoc' }));
  if (!single.ok) throw new Error(single.error);
  await primary.admin('GRANT pg_monitor TO knocknoc');
  standby = await startTestStandby(primary, { host: STANDBY, name: 'standby_c', allow: NODES });
  hosts = { P: `${PRIMARY}:${primary.port}`, S: `${STANDBY}:${standby.cluster.port}` };
  const databaseUrl = buildDatabaseUrl({
    host: '',
    port: 0,
    hosts: [hosts.P, hosts.S].map((h) => ({ host: h.split(':')[0]!, port: Number(h.split(':')[1]) })),
    user: 'knocknoc',
    password: single.value.password,
    database: 'knocknoc',
    params: { target_session_attrs: 'read-write' },
  });
  cluster = await startStatusCluster({ root: await makeRoot(), hosts: NODES, haproxyHost: HAPROXY_HOST, databaseUrl });
}, 120_000);

afterAll(async () => {
  await Promise.all(terminals.splice(0).map((t) => t.close()));
  await stopServers();
  if (cluster) await destroyRoot(cluster.root);
  await standby?.destroy();
  await primary?.destroy();
});

async function dashboard(width: number, height: number, env: Record<string, string> = {}, args: string[] = [], root = cluster.root): Promise<Terminal> {
  // As a person's terminal: the tests' FORCE_COLOR=0 (test/setup-env.ts) left out.
  const terminalEnv = cleanEnv({ TERM: 'xterm-256color', ...env });
  delete terminalEnv.FORCE_COLOR;
  const t = await openTerminal([process.execPath, KNOCKER, 'status', '--root', root.dir, '--interval', '0.5', ...args], {
    width,
    height,
    env: terminalEnv,
  });
  terminals.push(t);
  await t.waitFor('3 of 3 servers healthy');
  return t;
}

/** The head an operator must never lose: the summary line and every server's row, on the visible screen. */
function expectHead(screen: string, width: number, height: number, options: { rows?: boolean } = {}): void {
  const lines = screen.replace(/\n$/, '').split('\n');
  expect(lines.length, screen).toBeLessThanOrEqual(height);
  expect(lines[0], screen).toMatch(/^[✔!✗] knocker status \d of 3 servers healthy/);
  const servers = rowOrder(screen).filter((name) => name.startsWith('web-'));
  if (options.rows !== false) expect(servers.sort(), screen).toEqual(['web-1', 'web-2', 'web-3']);
  expect(screen.match(/knocker status/g), screen).toHaveLength(1);
  for (const line of lines) expect([...line].length, line).toBeLessThanOrEqual(width);
}

test('80×24 and 200×50: after 50 events the summary and every server stay on screen; a resize redraws cleanly', async () => {
  const small = await dashboard(80, 24);
  const large = await dashboard(200, 50);
  const small0 = await small.visible();
  expectHead(small0, 80, 24);
  // The database panel shows both hosts of the two-host DatabaseURL and the standby.
  expect(await large.waitFor(`host ${hosts.S}: standby`)).toContain('standby standby_c');

  // Fifty events and more: all three nodes flipped between drain and maint through HAProxy's
  // runtime API, each flip waited for on the screen (the events pane folds the three nodes' same
  // change into one line, so a flip makes one or two lines).
  const socket = haproxyPaths(cluster.root).adminSocket;
  const eventsOn = (screen: string) =>
    Number(/Events \((\d+) older not shown\)/.exec(screen)?.[1] ?? 0) + (screen.match(/^ {2}\d\d:\d\d:\d\d [✔!✗] /gm) ?? []).length;
  for (let flip = 0; eventsOn(await large.visible()) < 50; flip += 1) {
    expect(flip, 'flips before 50 events').toBeLessThan(100);
    const state = flip % 2 === 0 ? 'drain' : 'maint';
    await Promise.all(['web-1', 'web-2', 'web-3'].map((name) => setServerState(socket, BACKEND, name, state)));
    const word = state === 'drain' ? 'draining' : 'maint';
    await large.waitFor(new RegExp(`(^. ! web-\\d\\s+${word}\\b[^\\n]*\\n){3}`, 'm'));
  }
  expectHead(await large.visible(), 200, 50);
  const smallAfter = await small.visible();
  expectHead(smallAfter, 80, 24);
  expect(smallAfter).toMatch(/Events \(\d+ older not shown\)/);
  // The database panel and the footer are still there, within the 24 lines.
  expect(smallAfter).toContain('Database');
  expect(smallAfter).toMatch(/q quit/);

  // A resize: taller then back to 80×24, narrower; no line of the earlier frames is left behind.
  await small.resize(120, 40);
  // Redrawn: at 120 columns the summary fits on its first line; once it does, the head holds.
  const redrawn = (width: number, height: number, done: (screen: string) => boolean) =>
    waitFor(
      `the dashboard redrawn at ${width}×${height}`,
      async () => {
        const screen = await small.visible();
        return done(screen) ? screen : undefined;
      },
      20_000,
    );
  expectHead(await redrawn(120, 40, (screen) => /^. knocker status .*HAProxy up/.test(screen)), 120, 40);
  await small.resize(80, 24);
  // Back at 80×24 (a frame for the old size may show for a moment): one whole frame, the head on top.
  const back = await redrawn(80, 24, (screen) => {
    try {
      expectHead(screen, 80, 24);
      return /q quit/.test(screen);
    } catch {
      return false;
    }
  });
  expect(back.match(/^Database$/gm)).toHaveLength(1);

  for (const name of ['web-1', 'web-2', 'web-3']) await setServerState(socket, BACKEND, name, 'ready');
  await small.waitFor('3 of 3 servers healthy', 30_000);
}, 240_000);

/** With CONSOLE_CAPTURES=DIR, the screens README's "Console" section shows are written there. */
async function capture(name: string, screen: string): Promise<void> {
  const dir = process.env.CONSOLE_CAPTURES;
  if (dir) await fs.writeFile(path.join(dir, `${name}.txt`), screen);
}

test('Enter opens the selected server, l its log (followed), Esc goes back, D the database, s cycles the sort', async () => {
  const t = await dashboard(80, 24);
  await capture('main', await t.visible());
  // Sorted by name, web-1 (this host's node) is the first row.
  await t.keys('s');
  await t.waitFor(/SERVER↓/);
  await t.keys('Enter');
  const detail = await t.waitFor(/Registry \(servers table/);
  expect(detail).toMatch(/✔ web-1: ok \(this host's node\)/);
  expect(detail).toContain(`address ${NODES[0]}:`);
  expect(detail).toMatch(/state running, online, listen 127\.0\.0\.222:\d+/);
  expect(detail).toMatch(/\/_status \(GET http:\/\/127\.0\.0\.222:\d+\/_status/);
  expect(detail).toMatch(/HTTP 200 in [\d.]+ ms/);
  const detailScreen = await t.visible();
  // The detail takes the table's place under the summary and the sources.
  expectHead(detailScreen, 80, 24, { rows: false });
  await capture('detail', detailScreen);
  // Esc: back to the servers, the sort kept.
  await t.keys('Escape');
  await t.waitFor(/SERVER↓/);
  expect(await t.visible()).not.toContain('Registry (servers table');

  // l: the node's log, followed: a line written to it now appears.
  const log = cluster.root.path(PATHS.serverLog);
  await fs.mkdir(path.dirname(log), { recursive: true });
  await fs.appendFile(log, 'an earlier line of the node\n');
  await t.keys('l');
  await t.waitFor("Log of web-1 (this host's node), followed");
  await t.waitFor('an earlier line of the node');
  await fs.appendFile(log, 'a line written while the view is open\n');
  await t.waitFor('a line written while the view is open');
  await t.keys('Escape');
  await t.waitFor(/SERVER↓/);

  // Another server: Enter shows its detail; l says its log is on its own host.
  await t.keys('Down');
  await t.keys('Enter');
  await t.waitFor(/✔ web-2: ok\n/);
  await t.keys('l');
  await t.waitFor("web-2 is not this host's node");
  await t.keys('Escape');

  await t.keys('D');
  const db = await t.waitFor('Hosts of DatabaseURL');
  expect(db).toContain(`host ${hosts.P}: primary (accepts writes)`);
  expect(db).toContain(`host ${hosts.S}: standby`);
  await capture('database', await t.waitFor(/Standbys \(1\)/));
  await t.keys('Escape');

  // The help overlay fits in 24 lines under the head too.
  await t.keys('?');
  expectHead(await t.waitFor(/\bKeys\b/), 80, 24, { rows: false });
  await t.keys('Escape');

  // The sort cycles name → version → seen → health, each marked in the header.
  for (const column of ['VERSION↓', 'SEEN↓', 'HEALTH↓', 'SERVER↓']) {
    await t.keys('s');
    await t.waitFor(column);
  }
  await t.keys('q');
  // Quitting stops the monitor and the log follower: on a machine busy with other suites that took over 20 s once.
  await t.waitFor('EXIT=0', 90_000);
}, 180_000);

test('80×24 with --admin: every key of the table is on the help overlay, in a key column as wide as the widest, the rest scrolled to', async () => {
  const t = await dashboard(80, 24, {}, ['--admin']);
  await t.keys('?');
  const column = dashboardKeyWidth();
  const seen = new Set<string>();
  const note = (screen: string) => {
    for (const line of screen.split('\n')) {
      const row = DASHBOARD_KEYS.find((r) => line.startsWith(`${r.keys.padEnd(column)} `) && line.length > column + 1);
      if (row) seen.add(row.keys);
    }
  };
  // At its top: the keys title pinned under the head, a line saying how much more is below.
  const top = await visibleWhen(t, 'the help at its top', (s) => /^Keys$/m.test(s) && /↓ \d+ more lines? below/.test(s));
  expectHead(top, 80, 24, { rows: false });
  await capture('help-admin', top);
  note(top);
  // j a line at a time to the bottom, each screen's key rows noted; the overlay stays open.
  let screen = top;
  const above = (shown: string) => Number(/↑ (\d+) more lines? above/.exec(shown)?.[1] ?? 0);
  for (let step = 1; /more lines? below/.test(screen); step++) {
    expect(step, screen).toBeLessThan(60);
    await t.keys('j');
    screen = await visibleWhen(t, `${step} lines down`, (s) => /^Keys$/m.test(s) && above(s) === step);
    expectHead(screen, 80, 24, { rows: false });
    note(screen);
  }
  expect([...seen].sort()).toEqual(DASHBOARD_KEYS.map((r) => r.keys).sort());
  expect(screen).toMatch(/↑ \d+ more lines? above/);
  await capture('help-admin-bottom', screen);
  // g: back to its top; any other key closes it.
  await t.keys('g');
  await visibleWhen(t, 'the help at its top again', (s) => /^Keys$/m.test(s) && !/more lines? above/.test(s));
  await t.keys('x');
  await visibleWhen(t, 'the servers again', (s) => !/^Keys$/m.test(s) && /SERVER/.test(s));
  await t.keys('q');
  await t.waitFor('EXIT=0', 90_000);
}, 180_000);

/** Until the visible screen (not the scrollback) satisfies `done`; returns it. */
function visibleWhen(t: Terminal, what: string, done: (screen: string) => boolean): Promise<string> {
  return waitFor(
    what,
    async () => {
      const screen = await t.visible();
      return done(screen) ? screen : undefined;
    },
    20_000,
  );
}

test('80×24: a detail and a log taller than the screen scroll (j/k, PgUp/PgDn, g/G) to their last line, the head staying on top', async () => {
  // Forty numbered lines in web-1's log: its detail (the detail, then its last log lines) is taller than 24 lines.
  const log = cluster.root.path(PATHS.serverLog);
  await fs.mkdir(path.dirname(log), { recursive: true });
  await fs.appendFile(log, Array.from({ length: 40 }, (_, i) => `scroll line ${String(i + 1).padStart(2, '0')}\n`).join(''));
  const t = await dashboard(80, 24);
  await t.keys('s');
  await t.waitFor(/SERVER↓/);
  await t.keys('Enter');
  // At its top: the detail's first lines, a line saying how much is below, the scroll keys in the footer.
  const top = await visibleWhen(
    t,
    'the top of the detail',
    (s) => /✔ web-1: ok \(this host's node\)/.test(s) && /↓ \d+ more lines below \(j, PgDn, G\)/.test(s),
  );
  expectHead(top, 80, 24, { rows: false });
  expect(top).not.toContain('scroll line 40');
  expect(top).not.toMatch(/more lines? above/);
  expect(top.replace(/\s+/g, ' ')).toContain('↑/↓ PgUp/PgDn g/G scroll');
  const below = Number(/↓ (\d+) more lines below/.exec(top)![1]);

  // G: its last line (the log's newest), nothing more below; the head still on top.
  await t.keys('G');
  const bottom = await visibleWhen(t, 'the bottom of the detail', (s) => s.includes('scroll line 40') && /↑ \d+ more lines? above/.test(s));
  expectHead(bottom, 80, 24, { rows: false });
  expect(bottom).not.toMatch(/more lines? below/);
  expect(bottom).not.toContain("web-1: ok (this host's node)");
  expect(Number(/↑ (\d+) more lines? above/.exec(bottom)![1])).toBe(below);
  await capture('detail-bottom', bottom);

  // g: back to the top; j: one line down; PgDn: a page further; k: one back.
  await t.keys('g');
  await visibleWhen(t, 'the top again', (s) => /✔ web-1: ok/.test(s) && !/more lines? above/.test(s));
  await t.keys('j');
  await visibleWhen(t, 'one line down', (s) => /↑ 1 more line above/.test(s));
  await t.keys('PageDown');
  const paged = await visibleWhen(t, 'a page down', (s) => /↑ (\d+) more lines above/.test(s) && !/↑ 1 more line above/.test(s));
  const afterPage = Number(/↑ (\d+) more lines above/.exec(paged)![1]);
  expect(afterPage).toBeGreaterThan(1);
  await t.keys('k');
  await visibleWhen(t, 'a line back up', (s) => new RegExp(`↑ ${afterPage - 1} more lines? above`).test(s));
  expectHead(await t.visible(), 80, 24, { rows: false });

  // The log view opens at its end (followed), its title pinned; g goes to its first lines, G back, and a new line shows at the end.
  await t.keys('l');
  const logEnd = await visibleWhen(t, 'the log at its end', (s) => s.includes("Log of web-1 (this host's node), followed") && s.includes('scroll line 40'));
  expectHead(logEnd, 80, 24, { rows: false });
  expect(logEnd).toMatch(/↑ \d+ more lines above/);
  await t.keys('g');
  const logTop = await visibleWhen(t, 'the log at its top', (s) => /↓ \d+ more lines below/.test(s) && !/more lines? above/.test(s));
  expect(logTop).toContain("Log of web-1 (this host's node), followed");
  expect(logTop).not.toContain('scroll line 40');
  await t.keys('G');
  await visibleWhen(t, 'the log at its end again', (s) => s.includes('scroll line 40'));
  await fs.appendFile(log, 'scroll line 41\n');
  const followed = await visibleWhen(t, 'the new line at the end', (s) => s.includes('scroll line 41'));
  expectHead(followed, 80, 24, { rows: false });
  await t.keys('Escape');
  await t.waitFor(/SERVER↓/);
  await t.keys('q');
  await t.waitFor('EXIT=0', 90_000);
}, 180_000);

/** An SGR sequence that sets a colour (foreground or background, 8, 16, 256 or true colour). */
const COLOUR = /\u001B\[(?:[0-9;]*;)?(?:3[0-8]|4[0-8]|9[0-7]|10[0-7])(?:;[0-9;]*)?m/;

test('NO_COLOR=1 and --no-color: the screen holds no colour sequence; without them it does', async () => {
  const coloured = await dashboard(100, 30);
  expect(await coloured.visible({ escapes: true })).toMatch(COLOUR);
  for (const [env, args] of [
    [{ NO_COLOR: '1' }, []],
    [{}, ['--no-color']],
  ] as const) {
    const t = await dashboard(100, 30, env, [...args]);
    await t.keys('Enter');
    await t.waitFor('Registry (servers table');
    const screen = await t.visible({ escapes: true });
    expect(screen).not.toMatch(COLOUR);
    // Health is still told: a word and a symbol.
    await t.keys('Escape');
    expect(await t.waitFor(/✔ web-1\s+ok/)).toContain('3 of 3 servers healthy');
  }
}, 120_000);

test('knocknoc.conf re-pointed at the two-host DatabaseURL is followed without a restart', async () => {
  // This host's node first on the primary alone, as before `knocker standby init`.
  const conf = await fs.readFile(cluster.root.path(PATHS.conf), 'utf8');
  const twoHosts = /^DatabaseURL\s*=\s*(.+)$/m.exec(conf)![1]!.trim();
  const parsed = parseDatabaseUrl(twoHosts);
  if (!parsed.ok) throw new Error(parsed.error);
  const { user, password, database } = parsed.value;
  const primaryOnly = buildDatabaseUrl({ host: PRIMARY, port: primary!.port, user, password, database });
  const root = await makeRoot();
  try {
    await fs.mkdir(path.dirname(root.path(PATHS.conf)), { recursive: true });
    await fs.writeFile(root.path(PATHS.conf), conf.replace(twoHosts, primaryOnly), { mode: 0o600 });
    const t = await dashboard(100, 40, {}, [], root);
    const before = await t.visible();
    expect(before).not.toContain(`host ${hosts.S}: standby`);
    // Re-pointed as `knocker standby init` leaves a node: the file replaced atomically.
    await fs.writeFile(`${root.path(PATHS.conf)}.new`, conf, { mode: 0o600 });
    await fs.rename(`${root.path(PATHS.conf)}.new`, root.path(PATHS.conf));
    const after = await t.waitFor(`host ${hosts.S}: standby`);
    expect(after).toContain(`host ${hosts.P}: primary (accepts writes)`);
    expect(after.replace(/\s+/g, ' ')).toMatch(/knocknoc\.conf changed: watching \S+ as knocknoc now/);
    expect(after).toContain('3 of 3 servers healthy');
  } finally {
    await destroyRoot(root);
  }
}, 60_000);
