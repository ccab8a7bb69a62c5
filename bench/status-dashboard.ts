// `knocker status` with 200 registered servers. Three real knocknoc-server nodes (web-1..3) and 197
// stand-ins (web-4..200: ONE helper process, bench/status-endpoints.ts, serving a /_status per port
// with the product's own handler, registered with the product's own register()) share a private
// PostgreSQL 15; all 200 sit behind `knocker haproxy setup` on a sandbox root whose knocknoc.conf
// is web-1's. Measured:
//   1. one refresh: `knocker status --once` as a whole process, and StatusMonitor.refreshFully() /
//      refresh() in this process;
//   2. CPU and 3. memory of the live dashboard at --interval 1 in a real terminal (tmux 120x50),
//      from /proc/PID/stat and /proc/PID/status, over --memory-minutes (CPU in 60 s windows);
//   4. death to screen: a real node SIGKILLed while the dashboard runs (at --interval 1 and 2),
//      until the screen shows it failing, and until HAProxy says DOWN.
// Results go to the "knocker status: the dashboard" section of bench/RESULTS.md.
//
//   npm run bench:dashboard [-- --memory-minutes 10 --once-runs 9 --rounds 15 --kills 5]
//   npm run bench:dashboard -- --console [--console-minutes 3]: the refresh, then the live screen's
//   CPU on the servers list and with a server's detail open (Enter), each over --console-minutes of
//   60 s windows; to the "knocker status: the console" section.
//   Before and after, back to back on one machine: first
//     npm run bench:dashboard -- --console --product /tmp/OLD --list-only --record /tmp/old.json
//   (OLD: a built checkout of the earlier commit, its bench compiled: its bin/knocker,
//   bin/knocknoc-server and stand-ins are measured; the in-process rounds, this checkout's code,
//   are left out), then `-- --console --before /tmp/old.json`, which writes both to RESULTS.md.
//   `-- --ab-once /tmp/OLD [--prof-dir DIR]`: on this checkout's cluster, `knocker status --once` of
//   OLD and of this checkout in turn (--once-runs pairs, after one of each uncounted), so that both
//   meet the same machine load; with --prof-dir, one more run of each under --cpu-prof.
import { execa } from 'execa';
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import { showStat } from '../src/haproxy/runtime.js';
import { openMonitor } from '../src/status/index.js';
import { freePort } from '../src/system/host.js';
import { packageRoot } from '../src/system/package.js';
import { PATHS, Root } from '../src/system/root.js';
import { startTestCluster, type TestCluster } from '../test/helpers/pg.js';
import { allowHosts, launchServer, startServer, stopServers, untilListening, waitFor, type ServerNode } from '../test/helpers/server.js';
import { makeTempDir } from '../test/helpers/temp.js';
import { writeSection } from './results.js';

const { values: args } = parseArgs({
  options: {
    'memory-minutes': { type: 'string', default: '10' },
    'once-runs': { type: 'string', default: '9' },
    rounds: { type: 'string', default: '15' },
    kills: { type: 'string', default: '5' },
    servers: { type: 'string', default: '200' },
    'cpu-seconds': { type: 'string', default: '60' },
    console: { type: 'boolean', default: false },
    'console-minutes': { type: 'string', default: '3' },
    product: { type: 'string' },
    'list-only': { type: 'boolean', default: false },
    record: { type: 'string' },
    before: { type: 'string' },
    'ab-once': { type: 'string' },
    'prof-dir': { type: 'string' },
  },
});
const MEMORY_MINUTES = Number(args['memory-minutes']);
const ONCE_RUNS = Number(args['once-runs']);
const ROUNDS = Number(args.rounds);
const KILLS = Number(args.kills);
const SERVERS = Number(args.servers);
const CPU_SECONDS = Number(args['cpu-seconds']);
const CONSOLE_MINUTES = Number(args['console-minutes']);
const REAL_NODES = 3;
const DB_HOST = '127.0.0.160';
const NODE_HOSTS = ['127.0.0.161', '127.0.0.162', '127.0.0.163'];
/** The stand-ins listen on many ports of these few addresses. */
const ENDPOINT_HOSTS = ['127.0.0.170', '127.0.0.171', '127.0.0.172', '127.0.0.173'];
const HAPROXY_HOST = '127.0.0.160';
const TERMINAL = { width: 120, height: 50 };
const REPO = packageRoot();
/** The checkout measured: this one, or --product's (an earlier commit, built, its bench compiled). */
const PRODUCT = args.product ? path.resolve(args.product) : REPO;
const KNOCKER = path.join(PRODUCT, 'bin', 'knocker');
// The product's node (the test helpers would look for it beside bench/out/).
const SERVER = path.join(PRODUCT, 'bin', 'knocknoc-server');
const ENDPOINTS = path.join(PRODUCT, 'bench', 'out', 'bench', 'status-endpoints.js');
const CLOCK_TICKS = Number((await execa('getconf', ['CLK_TCK'])).stdout.trim());

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const ms = (value: number) => `${Math.round(value)} ms`;
const seconds = (value: number) => `${(value / 1000).toFixed(2)} s`;

// ---------------------------------------------------------------------------------------------
// The cluster

interface Cluster {
  pg: TestCluster;
  root: Root;
  nodes: ServerNode[];
  endpoints: ChildProcess;
  bind: string;
}

/** What to undo, newest first, whatever happens (and on Ctrl+C). */
const cleanups: Array<() => Promise<unknown>> = [];
async function cleanUp(): Promise<void> {
  for (const undo of cleanups.splice(0).reverse()) await undo().catch((error: Error) => console.error(`cleanup: ${error.message}`));
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`${signal}: cleaning up`);
    void cleanUp().finally(() => process.exit(130));
  });
}

/** The helper process's endpoints, once every one listens and is registered. */
function startEndpoints(
  url: string,
  count: number,
  first: number,
): Promise<{ child: ChildProcess; endpoints: Array<{ name: string; host: string; port: number }> }> {
  const child = spawn(
    process.execPath,
    [ENDPOINTS, '--url', url, '--source', ENDPOINT_HOSTS[0]!, '--hosts', ENDPOINT_HOSTS.join(','), '--count', String(count), '--first', String(first)],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  cleanups.push(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const closed = new Promise((resolve) => child.once('close', resolve));
    child.kill('SIGKILL');
    await closed;
  });
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout! });
    lines.once('line', (line) => resolve({ child, ...(JSON.parse(line) as { endpoints: Array<{ name: string; host: string; port: number }> }) }));
    child.once('exit', (code) => reject(new Error(`status-endpoints exited (${code}) before it was ready`)));
  });
}

async function startCluster(): Promise<Cluster> {
  const pg = await startTestCluster({ host: DB_HOST });
  cleanups.push(() => pg.destroy());
  const root = new Root(await makeTempDir('knocker-bench-dashboard-'));
  cleanups.push(async () => {
    // HAProxy's master: its workers exit with it.
    const pid = Number((await fs.readFile(root.path(PATHS.haproxyPid), 'utf8').catch(() => '')).trim());
    try {
      if (pid > 1) process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await fs.rm(root.dir, { recursive: true, force: true });
  });
  cleanups.push(() => stopServers());
  await allowHosts(pg, [...NODE_HOSTS, ENDPOINT_HOSTS[0]!]);
  const url = await pg.createDatabase({ role: 'knocknoc', database: 'knocknoc' });
  // One node first: it creates the schema; the others find it in place.
  const first = await startServer({ host: NODE_HOSTS[0]!, databaseUrl: url, name: 'web-1', trustedForwarders: '127.0.0.0/8', bin: SERVER });
  const others = await Promise.all(
    NODE_HOSTS.slice(1).map((host, i) => startServer({ host, databaseUrl: url, name: `web-${i + 2}`, trustedForwarders: '127.0.0.0/8', bin: SERVER })),
  );
  const nodes = [first, ...others];
  const { child: endpoints, endpoints: standIns } = await startEndpoints(url, SERVERS - REAL_NODES, REAL_NODES + 1);
  // The dashboard's host is web-1's: its knocknoc.conf.
  await fs.mkdir(path.dirname(root.path(PATHS.conf)), { recursive: true });
  await fs.copyFile(first.confFile!, root.path(PATHS.conf));
  const bind = `${HAPROXY_HOST}:${await freePort(HAPROXY_HOST)}`;
  const specs = [...nodes.map((n) => `${n.name}=${n.host}:${n.port}`), ...standIns.map((e) => `${e.name}=${e.host}:${e.port}`)];
  await execa(process.execPath, [KNOCKER, 'haproxy', 'setup', '--root', root.dir, '--bind', bind, ...specs]);
  const socket = root.path(PATHS.haproxyAdminSocket);
  await waitFor(
    `all ${SERVERS} servers UP in HAProxy`,
    async () => {
      const stat = await showStat(socket);
      return stat.servers.length === SERVERS && stat.servers.every((s) => s.status.text === 'UP') ? true : undefined;
    },
    60_000,
  );
  return { pg, root, nodes, endpoints, bind };
}

// ---------------------------------------------------------------------------------------------
// Processes: CPU and memory from /proc

async function cpuTicks(pid: number): Promise<number> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
  // The fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

async function rssKb(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
}

// ---------------------------------------------------------------------------------------------
// A real terminal: a private tmux server running the dashboard as the pane's own process

interface Dashboard {
  /** tmux -L SOCKET */
  socket: string;
  pid: number;
  tmuxPid: number;
  screen(): Promise<string>;
  close(): Promise<void>;
}

async function openDashboard(root: Root, intervalSeconds: number, options: { nodeArgs?: string[]; cwd?: string } = {}): Promise<Dashboard> {
  const socket = `knocker-bench-${crypto.randomBytes(4).toString('hex')}`;
  const tmux = (...words: string[]) => execa('tmux', ['-L', socket, ...words]);
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm-256color' };
  delete env.CI;
  const node = [process.execPath, ...(options.nodeArgs ?? []), KNOCKER].map((word) => `'${word}'`).join(' ');
  const command = `exec ${node} status --root '${root.dir}' --interval ${intervalSeconds}`;
  const where = options.cwd ? ['-c', options.cwd] : [];
  await execa('tmux', ['-L', socket, '-f', '/dev/null', 'new-session', '-d', ...where, '-x', String(TERMINAL.width), '-y', String(TERMINAL.height), command], {
    env,
  });
  const close = async () => {
    await tmux('kill-server').catch(() => {});
  };
  cleanups.push(close);
  const pid = Number((await tmux('display-message', '-p', '#{pane_pid}')).stdout.trim());
  const tmuxPid = Number((await tmux('display-message', '-p', '#{pid}')).stdout.trim());
  const dashboard: Dashboard = {
    socket,
    pid,
    tmuxPid,
    // What the terminal shows now (its visible lines, not the scrollback).
    screen: async () => String((await tmux('capture-pane', '-p')).stdout),
    close,
  };
  return dashboard;
}

/** A new line on the screen saying `name` is failing: its row, or an event (the events pane shows state changes). */
function failingLine(lines: string[], name: string): { how: 'row' | 'event'; line: string } | undefined {
  const row = lines.find((line) => new RegExp(`^[❯ ] ✗ ${name} `).test(line));
  if (row) return { how: 'row', line: row };
  const event = lines.find((line) => new RegExp(`^\\s+\\d\\d:\\d\\d:\\d\\d ✗ ${name}: `).test(line));
  return event ? { how: 'event', line: event } : undefined;
}

/** Until the dashboard says every server is healthy (its summary line). */
async function untilShowingAll(dashboard: Dashboard): Promise<void> {
  const all = `${SERVERS} of ${SERVERS} servers healthy`;
  await waitFor(`the dashboard to say "${all}"`, async () => ((await dashboard.screen()).includes(all) ? true : undefined), 60_000);
}

// ---------------------------------------------------------------------------------------------
// 1. One refresh

interface Timing {
  wallMs: number;
  cpuMs: number;
}

function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

interface OneRefresh {
  once: number[];
  onceExit: number[];
  baseline: number[];
  cold: Timing;
  rounds: Record<string, Timing[]>;
  /** What the /_STATUS column showed after the last round: each server's probe latency, ms. */
  latencies: number[];
}

async function measureRefresh(root: Root): Promise<OneRefresh> {
  const run = async (argv: string[]) => {
    const started = performance.now();
    const result = await execa(process.execPath, argv, { reject: false });
    return { ms: performance.now() - started, exitCode: result.exitCode ?? -1, stdout: String(result.stdout) };
  };
  const onceArgs = [KNOCKER, 'status', '--once', '--root', root.dir];
  // One of each first, not counted: the file cache is warm for every counted run.
  const first = await run(onceArgs);
  if (!first.stdout.includes(`web-${SERVERS}`)) throw new Error(`knocker status --once did not list web-${SERVERS}:\n${first.stdout}`);
  await run(['-e', '0']);
  const once: number[] = [];
  const onceExit: number[] = [];
  const baseline: number[] = [];
  for (let i = 0; i < ONCE_RUNS; i += 1) {
    baseline.push((await run(['-e', '0'])).ms);
    const result = await run(onceArgs);
    once.push(result.ms);
    onceExit.push(result.exitCode);
    console.log(`knocker status --once: ${ms(result.ms)} (exit ${result.exitCode})`);
  }

  // The in-process rounds run this checkout's code: of another product they would say nothing.
  if (PRODUCT !== REPO) return { once, onceExit, baseline, cold: { wallMs: NaN, cpuMs: NaN }, rounds: {}, latencies: [] };
  const monitor = await openMonitor(root, { intervalMs: 1_000 });
  try {
    const timed = async (work: () => Promise<unknown>): Promise<Timing> => {
      const cpu = process.cpuUsage();
      const started = performance.now();
      await work();
      const wallMs = performance.now() - started;
      const used = process.cpuUsage(cpu);
      return { wallMs, cpuMs: (used.user + used.system) / 1000 };
    };
    const cold = await timed(() => monitor.refreshFully());
    const { summary } = monitor.current();
    if (summary.total !== SERVERS || summary.healthy !== SERVERS)
      throw new Error(`the monitor sees ${summary.healthy} healthy of ${summary.total} servers, not ${SERVERS} of ${SERVERS}`);
    const kinds: Record<string, () => Promise<unknown>> = {
      'refreshFully()': () => monitor.refreshFully(),
      'refresh()': () => monitor.refresh(),
      [`probes alone (${SERVERS} × GET /_status)`]: () => monitor.probes.poll(),
      'registry alone': () => monitor.registry.poll(),
      'HAProxy alone': () => monitor.haproxy.poll(),
      'database panel alone': () => monitor.database.poll(),
    };
    const rounds: Record<string, Timing[]> = {};
    for (const [kind, work] of Object.entries(kinds)) {
      rounds[kind] = [];
      for (let i = 0; i < ROUNDS; i += 1) {
        // A pause between rounds, as the dashboard leaves between its refreshes.
        await sleep(300);
        rounds[kind].push(await timed(work));
      }
      console.log(`${kind}: median ${ms(median(rounds[kind].map((t) => t.wallMs)))}, CPU ${ms(median(rounds[kind].map((t) => t.cpuMs)))}`);
    }
    const probes = monitor.current().sources.probes.data ?? new Map();
    const latencies = [...probes.values()].map((p) => p.latencyMs).filter((l): l is number => l !== undefined);
    return { once, onceExit, baseline, cold, rounds, latencies };
  } finally {
    await monitor.stop();
  }
}

/** `knocker status --once` of another checkout and of this one in turn, on the same cluster: their medians. */
async function abOnce(root: Root, other: string): Promise<void> {
  const knockers = { before: path.join(other, 'bin', 'knocker'), now: KNOCKER };
  const run = async (knocker: string, nodeArgs: string[] = []) => {
    const started = performance.now();
    const result = await execa(process.execPath, [...nodeArgs, knocker, 'status', '--once', '--root', root.dir], { reject: false });
    if (!String(result.stdout).includes(`web-${SERVERS}`)) throw new Error(`${knocker} status --once did not list web-${SERVERS}`);
    return { ms: performance.now() - started, exitCode: result.exitCode };
  };
  await run(knockers.before);
  await run(knockers.now);
  const times: Record<'before' | 'now', number[]> = { before: [], now: [] };
  const exits = new Set<number | undefined>();
  for (let i = 0; i < ONCE_RUNS; i += 1) {
    for (const side of i % 2 === 0 ? (['before', 'now'] as const) : (['now', 'before'] as const)) {
      const result = await run(knockers[side]);
      times[side].push(result.ms);
      exits.add(result.exitCode);
    }
  }
  for (const side of ['before', 'now'] as const)
    console.log(`${side} (${await commitOf(side === 'now' ? REPO : other)}): median ${ms(median(times[side]))} (${range(times[side], ms)})`);
  console.log(
    `exit codes ${[...exits].join(', ')}; load ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  if (args['prof-dir']) {
    for (const side of ['before', 'now'] as const) await run(knockers[side], ['--cpu-prof', `--cpu-prof-dir=${path.join(args['prof-dir'], side)}`]);
    console.log(`profiles in ${args['prof-dir']}/before and /now`);
  }
}

// ---------------------------------------------------------------------------------------------
// 2 and 3. The live dashboard's CPU and memory

interface LiveRun {
  label: string;
  intervalSeconds: number;
  seconds: number;
  /** % of one core over the whole run, and over each 60 s window of it. */
  cpu: number;
  windows: number[];
  tmuxCpu: number;
  /** What it wrote to the terminal in the first window (up to 60 s), per second. */
  terminal: { frames: number; repaints: number; bytes: number };
  /** [seconds since the start, kB] */
  rss: Array<[number, number]>;
  /** The live heap (after the full collection a heap snapshot makes) at the start and at the end, when asked for. */
  heap?: { start: HeapFigures; end: HeapFigures };
  load: string;
}

interface HeapFigures {
  mb: number;
  strings: number;
}

/** Has the dashboard (started with --heapsnapshot-signal=SIGUSR2 in `dir`) write a heap snapshot; its live size and strings. */
async function heapSnapshot(pid: number, dir: string): Promise<HeapFigures> {
  const before = new Set(await fs.readdir(dir));
  process.kill(pid, 'SIGUSR2');
  return waitFor(
    'a heap snapshot',
    async () => {
      const file = (await fs.readdir(dir)).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
      if (!file) return undefined;
      // Written in one go by the process; until it is complete it does not parse.
      const snapshot = JSON.parse(await fs.readFile(path.join(dir, file), 'utf8')) as {
        snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
        nodes: number[];
      };
      const { node_fields: fields, node_types: types } = snapshot.snapshot.meta;
      const [type, size] = [fields.indexOf('type'), fields.indexOf('self_size')];
      const stringType = types[0].indexOf('string');
      let bytes = 0;
      let strings = 0;
      for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
        bytes += snapshot.nodes[i + size]!;
        if (snapshot.nodes[i + type] === stringType) strings += 1;
      }
      await fs.rm(path.join(dir, file));
      return { mb: bytes / 1024 / 1024, strings };
    },
    120_000,
  );
}

async function liveRun(
  root: Root,
  options: { label: string; intervalSeconds: number; seconds: number; sampleSeconds: number; heap?: boolean; detail?: boolean },
): Promise<LiveRun> {
  // The run's own folder: the terminal's output and heap snapshots.
  const work = await makeTempDir('knocker-bench-live-');
  cleanups.push(() => fs.rm(work, { recursive: true, force: true }));
  const dashboard = await openDashboard(root, options.intervalSeconds, options.heap ? { nodeArgs: ['--heapsnapshot-signal=SIGUSR2'], cwd: work } : {});
  try {
    await untilShowingAll(dashboard);
    if (options.detail) {
      // The selected server's detail, as Enter opens it; it stays open for the whole run.
      await execa('tmux', ['-L', dashboard.socket, 'send-keys', 'Enter']);
      await waitFor('the detail view', async () => ((await dashboard.screen()).includes('Registry (servers table') ? true : undefined), 30_000);
    }
    // Past the start-up (modules loaded, pool open, first frames).
    await sleep(5_000);
    const heapStart = options.heap ? await heapSnapshot(dashboard.pid, work) : undefined;
    // Writing a snapshot takes memory of its own for a moment: let RSS settle.
    if (heapStart) await sleep(30_000);
    const ticks = (pid: number) => cpuTicks(pid);
    const started = performance.now();
    const start = { dashboard: await ticks(dashboard.pid), tmux: await ticks(dashboard.tmuxPid) };
    const rss: Array<[number, number]> = [[0, await rssKb(dashboard.pid)]];
    const windows: number[] = [];
    // Everything the dashboard writes to its terminal in the first window: frames and their size.
    const captureFile = path.join(work, 'pane.out');
    await execa('tmux', ['-L', dashboard.socket, 'pipe-pane', `cat > '${captureFile}'`]);
    let terminal: LiveRun['terminal'] | undefined;
    const endCapture = async () => {
      const captured = performance.now() - started;
      await execa('tmux', ['-L', dashboard.socket, 'pipe-pane']);
      const text = await fs.readFile(captureFile, 'latin1');
      const count = (what: string) => text.split(what).length - 1;
      const rate = (n: number) => (n * 1000) / captured;
      // One synchronized update (ESC[?2026h … l) per frame; ESC[2J is a full clear-and-repaint.
      terminal = { frames: rate(count('\x1b[?2026h')), repaints: rate(count('\x1b[2J')), bytes: rate(text.length) };
      await fs.rm(captureFile);
    };
    let windowStart = { at: started, ticks: start.dashboard };
    const end = started + options.seconds * 1000;
    const perWindow = Math.round(60 / options.sampleSeconds);
    for (let sample = 1, next = started + options.sampleSeconds * 1000; next <= end + 1; sample += 1, next += options.sampleSeconds * 1000) {
      await sleep(Math.max(0, next - performance.now()));
      const now = performance.now();
      rss.push([Math.round((now - started) / 1000), await rssKb(dashboard.pid)]);
      if (sample % perWindow === 0) {
        const t = await ticks(dashboard.pid);
        windows.push(percentOfCore(t - windowStart.ticks, now - windowStart.at));
        windowStart = { at: now, ticks: t };
        if (!terminal) await endCapture();
      }
    }
    if (!terminal) await endCapture();
    const elapsed = performance.now() - started;
    const cpu = percentOfCore((await ticks(dashboard.pid)) - start.dashboard, elapsed);
    const tmuxCpu = percentOfCore((await ticks(dashboard.tmuxPid)) - start.tmux, elapsed);
    const load = os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
    const heap = heapStart ? { start: heapStart, end: await heapSnapshot(dashboard.pid, work) } : undefined;
    // Still saying every server is healthy: nothing went wrong meanwhile.
    await untilShowingAll(dashboard);
    const run: LiveRun = {
      label: options.label,
      intervalSeconds: options.intervalSeconds,
      seconds: options.seconds,
      cpu,
      windows,
      tmuxCpu,
      terminal: terminal!,
      rss,
      ...(heap ? { heap } : {}),
      load,
    };
    console.log(
      `${options.label}: CPU ${cpu.toFixed(1)} % of a core (windows ${windows.map((w) => w.toFixed(1)).join(', ')}), tmux ${tmuxCpu.toFixed(1)} %, RSS ${rss.map(([, kb]) => Math.round(kb / 1024)).join(' ')} MB; ${terminalText(run.terminal)}${heap ? `; live heap ${heap.start.mb.toFixed(1)} → ${heap.end.mb.toFixed(1)} MB, strings ${heap.start.strings} → ${heap.end.strings}` : ''}`,
    );
    return run;
  } finally {
    await dashboard.close();
    await fs.rm(work, { recursive: true, force: true });
  }
}

function terminalText(t: LiveRun['terminal']): string {
  return `${t.frames.toFixed(1)} frames/s (${t.repaints.toFixed(1)} full repaints/s), ${(t.bytes / 1000).toFixed(0)} kB/s`;
}

function percentOfCore(ticks: number, elapsedMs: number): number {
  return ((ticks / CLOCK_TICKS) * 100_000) / elapsedMs;
}

/** Least-squares slope of RSS in MB per minute. */
function slopeMbPerMinute(rss: Array<[number, number]>): number {
  const xs = rss.map(([s]) => s / 60);
  const ys = rss.map(([, kb]) => kb / 1024);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  const num = xs.reduce((sum, x, i) => sum + (x - mx) * (ys[i]! - my), 0);
  const den = xs.reduce((sum, x) => sum + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

// ---------------------------------------------------------------------------------------------
// 4. Death to screen

/** SIGKILL: the port refuses at once. SIGSTOP: a hung node, whose kernel still accepts connections that nothing answers. */
type Failure = 'SIGKILL' | 'SIGSTOP';

interface Death {
  failure: Failure;
  intervalSeconds: number;
  node: string;
  shownMs: number;
  how: 'row' | 'event';
  haproxyDownMs: number;
}

async function measureDeaths(cluster: Cluster, intervalSeconds: number, failure: Failure): Promise<Death[]> {
  const socket = cluster.root.path(PATHS.haproxyAdminSocket);
  const haproxyState = async (name: string) => (await showStat(socket)).servers.find((s) => s.name === name)?.status.text;
  const dashboard = await openDashboard(cluster.root, intervalSeconds);
  const deaths: Death[] = [];
  try {
    await untilShowingAll(dashboard);
    for (let i = 0; i < KILLS; i += 1) {
      const index = i % REAL_NODES;
      const victim = cluster.nodes[index]!;
      // Kills land anywhere in the refresh cycle.
      await sleep(1_000 + Math.random() * 2_000);
      const before = new Set((await dashboard.screen()).split('\n'));
      const killedAt = performance.now();
      victim.child.kill(failure);
      const haproxyDown = (async () => {
        for (;;) {
          if ((await haproxyState(victim.name)) === 'DOWN') return performance.now() - killedAt;
          if (performance.now() - killedAt > 30_000) throw new Error(`${victim.name} not DOWN in HAProxy 30 s after it was killed`);
          await sleep(50);
        }
      })();
      let shown: { how: 'row' | 'event'; line: string } | undefined;
      let shownMs = 0;
      while (!shown) {
        const lines = (await dashboard.screen()).split('\n').filter((line) => !before.has(line));
        shownMs = performance.now() - killedAt;
        shown = failingLine(lines, victim.name);
        if (shown) break;
        if (shownMs > 30_000) throw new Error(`${victim.name} not shown failing 30 s after it was killed:\n${await dashboard.screen()}`);
        await sleep(50);
      }
      const death: Death = { failure, intervalSeconds, node: victim.name, shownMs, how: shown.how, haproxyDownMs: await haproxyDown };
      deaths.push(death);
      console.log(
        `--interval ${intervalSeconds}, ${failure} ${i + 1}: ${victim.name} on screen after ${ms(shownMs)} (${shown.how}: ${shown.line.trim()}); HAProxy DOWN after ${ms(death.haproxyDownMs)}`,
      );
      // Back for the next round (resumed, or started again on the same address and port), until HAProxy and the screen have it ok again.
      const beforeRestart = new Set((await dashboard.screen()).split('\n'));
      if (failure === 'SIGSTOP') {
        victim.child.kill('SIGCONT');
      } else {
        const again = launchServer({ confFile: victim.confFile, bin: SERVER, name: victim.name, host: victim.host, port: victim.port });
        await untilListening(again);
        cluster.nodes[index] = again;
      }
      await waitFor(`${victim.name} UP in HAProxy`, async () => ((await haproxyState(victim.name)) === 'UP' ? true : undefined), 60_000);
      const back = new RegExp(`(^[❯ ] ✔ ${victim.name} )|(^\\s+\\d\\d:\\d\\d:\\d\\d ✔ ${victim.name}: .*→ ok)`);
      await waitFor(
        `${victim.name} ok on the screen`,
        async () => ((await dashboard.screen()).split('\n').some((line) => !beforeRestart.has(line) && back.test(line)) ? true : undefined),
        30_000,
      );
    }
    return deaths;
  } finally {
    await dashboard.close();
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  try {
    const cluster = await startCluster();
    console.log(`${SERVERS} servers registered, UP in HAProxy on ${cluster.bind}; root ${cluster.root.dir}`);
    if (args['ab-once']) return await abOnce(cluster.root, path.resolve(args['ab-once']));
    const refresh = await measureRefresh(cluster.root);
    if (args.console) {
      const seconds = CONSOLE_MINUTES * 60;
      const list = await liveRun(cluster.root, { label: '--interval 1, the servers list', intervalSeconds: 1, seconds, sampleSeconds: 10 });
      const runs = [list];
      if (!args['list-only']) {
        runs.push(
          await liveRun(cluster.root, {
            label: "--interval 1, a server's detail open",
            intervalSeconds: 1,
            seconds,
            sampleSeconds: 10,
            detail: true,
          }),
        );
      }
      const measured: ConsoleFigures = { product: PRODUCT, commit: await commitOf(PRODUCT), refresh, runs };
      if (args.record) await fs.writeFile(args.record, JSON.stringify(measured));
      if (args.before) await writeConsoleComparison(JSON.parse(await fs.readFile(args.before, 'utf8')) as ConsoleFigures, measured);
      else if (!args.record) await writeConsoleResults(refresh, runs);
      return;
    }
    const memory = await liveRun(cluster.root, {
      label: `--interval 1, ${MEMORY_MINUTES} min`,
      intervalSeconds: 1,
      seconds: MEMORY_MINUTES * 60,
      sampleSeconds: 10,
      heap: true,
    });
    const atTwo = await liveRun(cluster.root, { label: '--interval 2 (the default)', intervalSeconds: 2, seconds: CPU_SECONDS, sampleSeconds: 10 });
    const deaths: Death[] = [];
    for (const failure of ['SIGKILL', 'SIGSTOP'] as const) for (const interval of [1, 2]) deaths.push(...(await measureDeaths(cluster, interval, failure)));
    await writeResults({ refresh, memory, others: [atTwo], deaths });
  } finally {
    await cleanUp();
  }
}

// ---------------------------------------------------------------------------------------------
// bench/RESULTS.md

/** What a --console run measured, of which checkout. */
interface ConsoleFigures {
  product: string;
  commit: string;
  refresh: OneRefresh;
  runs: LiveRun[];
}

async function commitOf(dir: string): Promise<string> {
  return String((await execa('git', ['-C', dir, 'log', '-1', '--format=%h'])).stdout).trim();
}

/** The console before and after issue 25, measured back to back on this machine. */
async function writeConsoleComparison(before: ConsoleFigures, now: ConsoleFigures): Promise<void> {
  const [cpuModel] = os.cpus().map((c) => c.model);
  const once = (f: ConsoleFigures) =>
    `${ms(median(f.refresh.once))} (${range(f.refresh.once, ms)}; \`node -e 0\` ${ms(median(f.refresh.baseline))}; exit ${[...new Set(f.refresh.onceExit)].join(', ')})`;
  const live = (run: LiveRun | undefined) =>
    run
      ? `${pct(median(run.windows))} (${range(run.windows, pct)}, ${run.windows.length} windows); ${terminalText(run.terminal)}; load at the end ${run.load}`
      : 'no such view then';
  const label = (f: ConsoleFigures, name: string) => f.runs.find((r) => r.label === name);
  const labels = [...new Set([...before.runs, ...now.runs].map((r) => r.label))];
  const lines = [
    '## knocker status: the console',
    '',
    `\`npm run bench:dashboard -- --console --console-minutes ${CONSOLE_MINUTES}\` (bench/status-dashboard.ts), ${new Date().toISOString().slice(0, 10)}: the same cluster of ${SERVERS}`,
    'servers as "knocker status: the dashboard" below, the same terminal (tmux 120x50) and the same measures, run back to back on one machine',
    `(Node ${process.version}, ${os.cpus().length} × ${cpuModel}), each run holding the test lock so no other test ran beside it:`,
    `before = \`${before.commit}\` (the commit before issue 25's console and history work, built in a worktree of its own, its`,
    `bin/knocker, bin/knocknoc-server and stand-ins), now = \`${now.commit}\`. Medians of ${now.refresh.once.length} whole-process runs,`,
    'CPU in 60 s windows of the dashboard process (utime+stime from /proc/PID/stat).',
    '',
    '| measure | before | now |',
    '|---|---|---|',
    `| \`knocker status --once\`, whole process | ${once(before)} | ${once(now)} |`,
    ...labels.map((name) => `| CPU, ${name}: median (min–max) | ${live(label(before, name))} | ${live(label(now, name))} |`),
    '',
    "The dashboard section's 305 ms and 8.6 % were measured on another machine (Node 20, Intel Xeon, `node -e 0` 60 ms): the",
    'comparison that counts is the one above, both sides on this machine.',
    '',
  ];
  await writeSection(lines.join('\n'));
}

/** The console's figures (issue 25: pinned layout, detail views), beside the dashboard's of before (305 ms, 8.6 %). */
async function writeConsoleResults(refresh: OneRefresh, runs: LiveRun[]): Promise<void> {
  const [cpuModel] = os.cpus().map((c) => c.model);
  const lines = [
    '## knocker status: the console',
    '',
    `\`npm run bench:dashboard -- --console --console-minutes ${CONSOLE_MINUTES}\` (bench/status-dashboard.ts), ${new Date().toISOString().slice(0, 10)}: the same cluster of ${SERVERS}`,
    'servers as "knocker status: the dashboard" below, the same terminal (tmux 120x50) and the same measures, after the console',
    "work of issue 25 (head pinned and the lower part measured from what is drawn, every line cut to the width; a server's",
    `detail view with Enter). Node ${process.version}, ${os.cpus().length} × ${cpuModel}; the machine is shared with other sessions' tests.`,
    '',
    '| measure | before (the dashboard section, 2026-11-28) | now |',
    '|---|---|---|',
    `| \`knocker status --once\`, whole process, median of ${refresh.once.length} runs | 305 ms | ${ms(median(refresh.once))} (${range(refresh.once, ms)}); \`node -e 0\` ${ms(median(refresh.baseline))} |`,
    ...runs.map(
      (run) =>
        `| CPU, ${run.label}: 60 s windows, median (min–max) | 8.6 % (the servers list) | ${pct(median(run.windows))} (${range(run.windows, pct)}, ${run.windows.length} windows); ${terminalText(run.terminal)}; load ${run.load} |`,
    ),
    '',
    '',
    `The two columns are not from the same machine or load: \`node -e 0\` took ${ms(median(refresh.baseline))} here against 60 ms then (Node 20, Intel Xeon), and`,
    'other sessions ran meanwhile (the load averages). A fair comparison runs `-- --console` on main and on the branch back to back.',
    '',
  ];
  await writeSection(lines.join('\n'));
}

interface Results {
  refresh: OneRefresh;
  memory: LiveRun;
  others: LiveRun[];
  deaths: Death[];
}

const range = (values: number[], format: (v: number) => string) => `${format(Math.min(...values))}–${format(Math.max(...values))}`;
const pct = (v: number) => `${v.toFixed(1)} %`;
const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MB`;
const points = (v: number) => `${v.toFixed(1)} points`;
const verdict = (value: number, aim: number, unit: (v: number) => string, excess = unit) =>
  value <= aim ? `met (${unit(value)})` : `**missed** by ${excess(value - aim)} (${unit(value)}, ${(value / aim).toFixed(1)} × the aim)`;

/**
 * How the product's changes of the day moved the figures, and what is left: from earlier runs of this
 * script, heap snapshots and CPU profiles of the dashboard (not re-taken here). Update it when the
 * product changes.
 */
const DIAGNOSIS = [
  '### How the figures came about (2026-11-27)',
  '',
  'Earlier runs of this script, 10 min at --interval 1 with the same 200 servers, on the product as it was:',
  '',
  '| main at | CPU at --interval 1 (60 s windows) | written to the terminal | memory over 10 min |',
  '|---|---|---|---|',
  '| f8ea87b, first dashboard | 40.8 % (39.0–44.7 %) | 4.8 frames/s, every one a full repaint, 101 kB/s | RSS 157 → 344 MB, 17 MB/min |',
  '| 14063a3, the table scrolls | 13.6 % (13.1–15.1 %), and 15.8 % (14.0–17.5 %) in a busier hour | 2.8 frames/s, 9 kB/s | live heap 31.2 → 44.2 MB, +1.24 MB/min |',
  '| e8fd816, one frame a round, Ink caches bounded | the figures above | | |',
  '',
  '- Every row drawn (f8ea87b): 200 rows, about 220 lines, into a 50-line terminal. Ink then cleared the terminal and',
  '  its scrollback and wrote everything again on every frame, and the summary line and the failing rows (sorted first)',
  "  were scrolled off the screen: a dead node showed only as an event. A CPU profile put about 70 % of the dashboard's",
  '  busy time in React and Ink drawing.',
  '- Memory (until e8fd816): the live heap grew with RSS, so it was memory kept, not a lazy collector. Following the',
  "  retainers of the strings that piled up in a heap snapshot leads to Ink 6.8's module-level caches,",
  '  node_modules/ink/build/measure-text.js `const cache = new Map()` (and wrap-text.js `const cache = {}`), keyed by',
  '  every distinct text laid out and never emptied (vadimdemedes/ink#986; Ink 7 and 8 bound them but need Node ≥ 22).',
  '  The table changes at every refresh (probe latency, the FOR and SEEN ages), so every frame added keys: at 1.24 MB a',
  '  minute the 4 GB heap limit is about 2.3 days away. A copy of the bundle with that Map capped at 4096 entries, run',
  '  beside the unchanged dashboard for 4 min 51 s, grew its live heap by 1.2 MB (JIT code, the cache filling to its cap)',
  '  against 7.0 MB. scripts/bundle.mjs now caps both caches at 4096 entries.',
  '- Frames (until acfe058): the monitor told the screen once per source that answered (every `Source` calls',
  '  `rebuild()`, and `queueNotify()` coalesced only within one turn of the event loop), so a refresh was up to four',
  "  renders, plus one for the screen's own 1 s clock. Now one frame a round, and the clock only for intervals over 1 s.",
  '',
  "Found by this bench and fixed (cf6a40a): the /_STATUS column showed 40–60 ms for every server while HAProxy's checks",
  'of the same servers took 0–4 ms. The 200 probes started at once (src/status/sources.ts `Prober.probeAll`), each timed',
  "from before its connection opened, so the figure was mostly the dashboard's own queue of connections. At most 32",
  'probes are now in flight (test/status/status-probes.test.ts counts them at a real server); the figures above are with the',
  'cap (see "the /_STATUS column" under the round table).',
  'The CPU figure moves by a point or two with what else this shared machine does (see the 14063a3 runs).',
  '',
];

async function writeResults({ refresh, memory, others, deaths }: Results): Promise<void> {
  const { stdout: haproxyVersion } = await execa('haproxy', ['-v']);
  const { stdout: tmuxVersion } = await execa('tmux', ['-V']);
  const date = new Date().toISOString().slice(0, 10);
  const onceMedian = median(refresh.once);
  const rows = Object.entries(refresh.rounds).map(([kind, timings]) => {
    const wall = timings.map((t) => t.wallMs);
    return `| ${kind} | ${ms(median(wall))} | ${ms(Math.max(...wall))} | ${range(wall, ms)} | ${ms(median(timings.map((t) => t.cpuMs)))} | ${timings.length} |`;
  });
  const dataCpu = median(refresh.rounds['refresh()']!.map((t) => t.cpuMs)) / 10; // ms of CPU per 1 s interval, as % of a core
  const liveCpu = median(memory.windows.length > 0 ? memory.windows : [memory.cpu]);
  const live = [memory, ...others].map((run) => {
    const windows = run.windows.length > 0 ? `${pct(median(run.windows))} (${range(run.windows, pct)}, ${run.windows.length} windows)` : '–';
    return `| ${run.label} | ${windows} | ${pct(run.cpu)} over ${run.seconds} s | ${terminalText(run.terminal)} | ${pct(run.tmuxCpu)} | ${run.load} |`;
  });
  const kbs = memory.rss.map(([, kb]) => kb);
  const firstEnd = memory.rss.filter(([s]) => s <= 120).map(([, kb]) => kb);
  const lastStart = memory.rss.filter(([s]) => s >= memory.seconds - 120).map(([, kb]) => kb);
  const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
  const slope = slopeMbPerMinute(memory.rss);
  const perMinute = memory.rss
    .filter(([s]) => s % 60 === 0)
    .map(([, kb]) => (kb / 1024).toFixed(0))
    .join(', ');
  const cases = [...new Map(deaths.map((d) => [`${d.failure} ${d.intervalSeconds}`, d])).values()];
  const deathRows = cases.map(({ failure, intervalSeconds: interval }) => {
    const of = deaths.filter((d) => d.failure === failure && d.intervalSeconds === interval);
    const aim = interval * 1000 + Math.min(1_500, Math.max(400, interval * 1000));
    const hows = [...new Set(of.map((d) => d.how))].join(', ');
    const shown = of.map((d) => d.shownMs);
    return {
      aim,
      median: median(shown),
      max: Math.max(...shown),
      row: `| ${failure} | ${interval} s | ${seconds(aim)} | ${seconds(median(shown))} | ${shown.map(seconds).join(', ')} | ${hows} | ${seconds(median(of.map((d) => d.haproxyDownMs)))} (${of.map((d) => seconds(d.haproxyDownMs)).join(', ')}) |`,
      interval,
      failure,
    };
  });
  const growth = mean(lastStart) - mean(firstEnd);
  const heap = memory.heap;
  const heapGrowth = heap ? ((heap.end.mb - heap.start.mb) / heap.start.mb) * 100 : 0;
  // The start snapshot is taken 30 s before the first sample.
  const heapRate = heap ? (heap.end.mb - heap.start.mb) / (MEMORY_MINUTES + 0.5) : 0;
  // The dashboard runs with the same node and defaults as this process.
  const heapLimitMb = v8.getHeapStatistics().heap_size_limit / 1024 / 1024;
  const flat = slope <= 1 && heapGrowth <= 10;
  const section = [
    '## knocker status: the dashboard',
    '',
    `\`npm run bench:dashboard\` (bench/status-dashboard.ts; \`-- --memory-minutes ${MEMORY_MINUTES}\`), ${date}. ${SERVERS} registered servers sharing one`,
    `database: ${REAL_NODES} real knocknoc-server nodes (web-1..${REAL_NODES} on ${NODE_HOSTS.join(', ')}) and ${SERVERS - REAL_NODES} stand-ins (web-${REAL_NODES + 1}..${SERVERS})`,
    `served by ONE helper process (bench/status-endpoints.ts) on ${SERVERS - REAL_NODES} ports of ${ENDPOINT_HOSTS[0]}–${ENDPOINT_HOSTS.at(-1)!.split('.')[3]}. Each stand-in`,
    "answers GET /_status through the product's own request handler and statusBody() (src/server/http.ts) over a real",
    "database check (reused for 1 s, as a node does), is registered with the product's register() and heartbeated every",
    '5 s; request lines are discarded. Running 200 real nodes would need about 10 GB and both cores; the helper is a',
    "separate process, so its CPU is not counted in the dashboard's. All 200 are behind `knocker haproxy setup`",
    `(${haproxyVersion.split('\n')[0]!.replace(/ - https.*/, '')}, health checks every 2 s) on a sandbox root whose knocknoc.conf is web-1's;`,
    `PostgreSQL 15 on ${DB_HOST}. The live dashboard is \`bin/knocker status --root R --interval S\` as the only process`,
    `of a detached ${tmuxVersion} pane, ${TERMINAL.width}x${TERMINAL.height}, TERM=xterm-256color. CPU is utime+stime of that node process`,
    `(/proc/PID/stat) over the run, memory its VmRSS (/proc/PID/status). Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown CPU'};`,
    'the machine is shared (other sessions ran tests meanwhile: see the load averages).',
    '',
    `### One refresh with ${SERVERS} servers (aim ≤ 1 s)`,
    '',
    `\`bin/knocker status --once --root R\` as a whole process (spawn to exit, after one uncounted run), ${ONCE_RUNS} runs:`,
    `median **${ms(onceMedian)}** (${range(refresh.once, ms)}), exit codes ${[...new Set(refresh.onceExit)].join(', ')}; \`node -e 0\` spawned the same way:`,
    `${ms(median(refresh.baseline))}. In-process (bench process, \`openMonitor()\` of src/status/index.ts on the same root, interval 1 s),`,
    `the first refreshFully() (opens the pool) took ${ms(refresh.cold.wallMs)}; then ${ROUNDS} rounds each, 300 ms apart:`,
    '',
    '| round | median | max | min–max | CPU of the round (median) | rounds |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    `The /_STATUS column after the last of those rounds (each probe's own latency, at most 32 in flight): median ${ms(median(refresh.latencies))},`,
    `90th percentile ${ms(percentile(refresh.latencies, 0.9))}, max ${ms(Math.max(...refresh.latencies))} over ${refresh.latencies.length} servers.`,
    '',
    `### CPU of the live dashboard (aim at --interval 1: ≤ 15 % of one core)`,
    '',
    `One long run at --interval 1 (${MEMORY_MINUTES} min, cut into 60 s windows), then a ${CPU_SECONDS} s run at the default interval. Frames: the`,
    "terminal's input through `tmux pipe-pane`, one synchronized update (ESC[?2026h) per frame; ESC[2J is a full clear-and-repaint.",
    '',
    '| run | % of one core: 60 s windows, median (min–max) | whole run | written to the terminal (first 60 s) | tmux server meanwhile | load average at the end |',
    '|---|---|---|---|---|---|',
    ...live,
    '',
    `Collecting the data alone (the in-process refresh() above) costs ${ms(dataCpu * 10)} of CPU a round, ${pct(dataCpu)} of a core at one round a`,
    `second; the rest of the ${pct(liveCpu)} is drawing the screen.`,
    '',
    `### Memory over ${MEMORY_MINUTES} minutes at --interval 1 (aim: flat)`,
    '',
    '| start | min | max | end | slope (least squares) | mean of the last 2 min − first 2 min |',
    '|---|---|---|---|---|---|',
    `| ${mb(kbs[0]!)} | ${mb(Math.min(...kbs))} | ${mb(Math.max(...kbs))} | ${mb(kbs.at(-1)!)} | ${slope.toFixed(2)} MB/min | ${growth >= 0 ? '+' : ''}${mb(growth)} |`,
    '',
    `VmRSS sampled every 10 s (${kbs.length} samples), from ${heap ? 'about 35 s (5 s, a heap snapshot, 30 s)' : '5 s'} after the screen first said every server was healthy; at each`,
    `minute (MB): ${perMinute}.${heap ? ` The live heap (a heap snapshot, \`--heapsnapshot-signal\`, which collects garbage first) went from` : ''}`,
    ...(heap
      ? [
          `${heap.start.mb.toFixed(1)} MB (${heap.start.strings} strings) 30 s before the first sample to ${heap.end.mb.toFixed(1)} MB (${heap.end.strings} strings) after the last:`,
          `${heapRate.toFixed(2)} MB and ${Math.round((heap.end.strings - heap.start.strings) / (MEMORY_MINUTES + 0.5))} strings a minute that no collection frees.` +
            (flat || heapRate <= 0
              ? ''
              : ` At that rate the dashboard reaches Node's heap limit here (${(heapLimitMb / 1024).toFixed(1)} GB) after about ${((heapLimitMb - heap.end.mb) / heapRate / 60 / 24).toFixed(1)} days and dies out of memory.`),
        ]
      : []),
    '',
    '### Death to screen',
    '',
    `A real node (web-1, 2, 3 in turn) fails ${KILLS} times per interval and kind, 1–3 s after the previous one was back (so failures`,
    'land anywhere in the refresh cycle): SIGKILL (its port then refuses at once; started again after) or SIGSTOP (a hung node:',
    'its kernel still accepts connections, nothing answers, so only the probe timeout tells; SIGCONT after). The visible',
    'screen (`tmux capture-pane -p`) is read every 50 ms until a new line shows the node',
    'failing: its row (`✗ web-N`) or, when the row is off screen, the event the dashboard logs for it (`HH:MM:SS ✗ web-N: ok →',
    'no-answer: …`; row and event come from the same snapshot). HAProxy DOWN: `show stat` on the admin socket every 50 ms.',
    'Aim: interval + probe timeout (StatusMonitor.timeoutMs() = min(1.5 s, max(0.4 s, interval))).',
    '',
    '| failure | --interval | aim | on screen (median) | each | shown by | HAProxy DOWN: median (each) |',
    '|---|---|---|---|---|---|---|',
    ...deathRows.map((d) => d.row),
    '',
    '### Against the aims',
    '',
    `- One refresh ≤ 1 s: whole process ${verdict(onceMedian, 1000, ms)}; in-process refreshFully() median ${ms(median(refresh.rounds['refreshFully()']!.map((t) => t.wallMs)))}, max ${ms(Math.max(...refresh.rounds['refreshFully()']!.map((t) => t.wallMs)))}.`,
    `- CPU ≤ 15 % of a core at --interval 1: ${verdict(liveCpu, 15, pct, points)}.`,
    `- Memory flat over ${MEMORY_MINUTES} min (taken here as: RSS slope ≤ 1 MB/min and live heap growth ≤ 10 %): ${flat ? 'met' : '**missed**'}; RSS`,
    `  ${mb(kbs[0]!)} → ${mb(kbs.at(-1)!)}, slope ${slope.toFixed(2)} MB/min${heap ? `, live heap ${heap.start.mb.toFixed(1)} → ${heap.end.mb.toFixed(1)} MB (${heapGrowth >= 0 ? '+' : ''}${heapGrowth.toFixed(0)} %)` : ''}.`,
    ...deathRows.map((d) => `- Death to screen, ${d.failure} at --interval ${d.interval}: ${verdict(d.median, d.aim, seconds)}; slowest ${seconds(d.max)}.`),
    '',
    ...DIAGNOSIS,
  ];
  await writeSection(section.join('\n'));
}

await main();
