// `knocker status` kept open over a cluster whose history holds 10,000 events: is its memory flat?
// A private PostgreSQL 15, three real knocknoc-server nodes (the first migrates: the history table
// comes with the schema), a sandbox root with web-1's knocknoc.conf, and --events rows in the
// history table. Measured:
//   1. `knocker history --limit 10000 --json` as a whole process (wall time, events returned);
//   2. the live dashboard at --interval 0.5 in a real terminal (tmux 120x50), which loads the
//      latest part of the history when it starts: its RSS from /proc/PID/status every
//      --sample-seconds over --minutes, while one node is stopped and continued (SIGSTOP/SIGCONT)
//      every 20 s so that state changes keep arriving and are folded into the events pane, and
//      another event is written to the history every second. At the start and at the end of every
//      minute it also collects garbage and reads process.memoryUsage() inside the dashboard
//      (bench/memory-probe.mjs, on SIGUSR2): the heap it keeps, apart from RSS.
// Results go to the "knocker status: memory with a long history" section of bench/RESULTS.md.
//
//   npm run bench:history [-- --minutes 10 --events 10000]
import { execa } from 'execa';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../src/system/package.js';
import { PATHS, Root } from '../src/system/root.js';
import { startTestCluster } from '../test/helpers/pg.js';
import { allowHosts, startServer, stopServers, waitFor } from '../test/helpers/server.js';
import { makeTempDir } from '../test/helpers/temp.js';
import { writeSection } from './results.js';

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    events: { type: 'string', default: '10000' },
    'sample-seconds': { type: 'string', default: '10' },
  },
});
const MINUTES = Number(args.minutes);
const EVENTS = Number(args.events);
const SAMPLE_SECONDS = Number(args['sample-seconds']);
const DB_HOST = '127.0.0.235';
const NODE_HOSTS = ['127.0.0.236', '127.0.0.237', '127.0.0.238'];
const INTERVAL_SECONDS = 0.5;
const REPO = packageRoot();
const KNOCKER = path.join(REPO, 'bin', 'knocker');
const SERVER = path.join(REPO, 'bin', 'knocknoc-server');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

const cleanups: Array<() => Promise<unknown>> = [];
async function cleanUp(): Promise<void> {
  for (const undo of cleanups.splice(0).reverse()) await undo().catch((error: Error) => console.error(`cleanup: ${error.message}`));
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void cleanUp().finally(() => process.exit(130));
  });
}

interface Usage {
  at: number;
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  spaces?: Record<string, { size: number; used: number }>;
}

/** Has the dashboard (loaded with bench/memory-probe.mjs) collect garbage and append its memory usage to `file`. */
async function probeUsage(pid: number, file: string): Promise<Usage> {
  const lines = async () => (await fs.readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  const before = (await lines()).length;
  process.kill(pid, 'SIGUSR2');
  return waitFor(
    'the memory probe',
    async () => {
      const now = await lines();
      return now.length > before ? (JSON.parse(now[now.length - 1]!) as Usage) : undefined;
    },
    30_000,
  );
}

async function rssKb(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
}

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const num = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const den = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

async function main(): Promise<void> {
  const pg = await startTestCluster({ host: DB_HOST });
  cleanups.push(() => pg.destroy());
  await allowHosts(pg, NODE_HOSTS);
  const url = await pg.createDatabase({ role: 'knocknoc', database: 'knocknoc' });
  cleanups.push(() => stopServers());
  const first = await startServer({ host: NODE_HOSTS[0]!, databaseUrl: url, name: 'web-1', trustedForwarders: '127.0.0.0/8', bin: SERVER });
  const others = await Promise.all(
    NODE_HOSTS.slice(1).map((host, i) => startServer({ host, databaseUrl: url, name: `web-${i + 2}`, trustedForwarders: '127.0.0.0/8', bin: SERVER })),
  );
  const root = new Root(await makeTempDir('knocker-bench-history-'));
  cleanups.push(() => fs.rm(root.dir, { recursive: true, force: true }));
  await fs.mkdir(path.dirname(root.path(PATHS.conf)), { recursive: true });
  await fs.copyFile(first.confFile!, root.path(PATHS.conf));

  // The history: EVENTS rows over the last EVENTS minutes, the outcomes mixed.
  await pg.admin(
    `INSERT INTO history (id, started_at, finished_at, host, server, command, action, outcome, detail)
     SELECT gen_random_uuid(), now() - make_interval(mins => $1 - i) - interval '2 seconds', now() - make_interval(mins => $1 - i),
            'bench-host-' || (i % 5), 'web-' || (i % 3 + 1), 'knocker haproxy drain web-' || (i % 3 + 1), 'knocker haproxy drain web-' || (i % 3 + 1),
            (ARRAY['ok', 'ok', 'ok', 'failed', 'rolled-back'])[i % 5 + 1], CASE WHEN i % 5 >= 3 THEN 'a failure of run ' || i END
       FROM generate_series(1, $1) AS i`,
    [EVENTS],
    'knocknoc',
  );

  // 1. The whole list as a command.
  const listStarted = performance.now();
  const listed = await execa(process.execPath, [KNOCKER, 'history', '--limit', String(Math.min(EVENTS, 10_000)), '--json', '--root', root.dir]);
  const listMs = performance.now() - listStarted;
  const listedCount = (JSON.parse(String(listed.stdout)) as { events: unknown[] }).events.length;
  console.log(`knocker history --limit ${Math.min(EVENTS, 10_000)} --json: ${Math.round(listMs)} ms, ${listedCount} events`);

  // 2. The dashboard in a real terminal.
  const socket = `knocker-bench-${crypto.randomBytes(4).toString('hex')}`;
  const tmux = (...words: string[]) => execa('tmux', ['-L', socket, ...words]);
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm-256color' };
  delete env.CI;
  const probeFile = path.join(root.dir, 'memory-probe.jsonl');
  const probe = path.join(REPO, 'bench', 'memory-probe.mjs');
  await execa(
    'tmux',
    [
      '-L',
      socket,
      '-f',
      '/dev/null',
      'new-session',
      '-d',
      '-x',
      '120',
      '-y',
      '50',
      `exec env KNOCKER_MEMORY_PROBE='${probeFile}' '${process.execPath}' --expose-gc --import '${probe}' '${KNOCKER}' status --root '${root.dir}' --interval ${INTERVAL_SECONDS}`,
    ],
    { env },
  );
  cleanups.push(() => tmux('kill-server').catch(() => {}));
  const pid = Number((await tmux('display-message', '-p', '#{pane_pid}')).stdout.trim());
  await waitFor(
    'the dashboard showing the history and every server',
    async () => {
      const screen = String((await tmux('capture-pane', '-p')).stdout);
      return screen.includes('3 of 3 servers healthy') && screen.includes('knocker haproxy drain') ? true : undefined;
    },
    60_000,
  );

  const flapping = others[1]!;
  let stopped = false;
  const flap = setInterval(() => {
    stopped = !stopped;
    flapping.child.kill(stopped ? 'SIGSTOP' : 'SIGCONT');
  }, 20_000);
  let written = 0;
  const writer = setInterval(() => {
    written += 1;
    void pg
      .admin(
        `INSERT INTO history (id, started_at, finished_at, host, server, command, action, outcome) VALUES (gen_random_uuid(), now(), now(), 'bench-writer', 'web-1', 'knocker haproxy ready web-2', 'knocker haproxy ready web-2', 'ok')`,
        [],
        'knocknoc',
      )
      .catch(() => {});
  }, 1_000);
  cleanups.push(async () => {
    clearInterval(flap);
    clearInterval(writer);
    flapping.child.kill('SIGCONT');
  });

  const started = Date.now();
  const samples: Array<[number, number]> = [];
  const usages: Array<[number, Usage]> = [];
  const readUsage = async () => {
    const usage = await probeUsage(pid, probeFile);
    const minute = (usage.at - started) / 60_000;
    usages.push([minute, usage]);
    console.log(
      `${minute.toFixed(2)} min: after a collection, heap used ${mib(usage.heapUsed)}, heap ${mib(usage.heapTotal)}, external ${mib(usage.external)}, RSS ${mib(usage.rss)}`,
    );
  };
  await readUsage();
  let probedMinutes = 0;
  while (Date.now() - started < MINUTES * 60_000) {
    const minute = (Date.now() - started) / 60_000;
    const kb = await rssKb(pid);
    samples.push([minute, kb]);
    console.log(`${minute.toFixed(2)} min: RSS ${(kb / 1024).toFixed(1)} MB`);
    await sleep(SAMPLE_SECONDS * 1000);
    if (Math.floor((Date.now() - started) / 60_000) > probedMinutes) {
      probedMinutes = Math.floor((Date.now() - started) / 60_000);
      await readUsage();
    }
  }
  if (Date.now() - usages[usages.length - 1]![1].at > 30_000) await readUsage();
  const load = os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const screen = String((await tmux('capture-pane', '-p')).stdout);
  const folded = screen.split('\n').filter((line) => /web-3: \S+ → /.test(line)).length;
  await cleanUp();

  // Warm-up: JIT, caches, and V8 sizing its heap to the allocation rate (new space grows to its
  // maximum in the first minutes: the per-space figures show when). Slopes after 1 and after 2 minutes.
  const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MB`;
  const after = (from: number) => samples.filter(([minute]) => minute >= from);
  const rssSlope = (from: number) => (after(from).length > 1 ? slope(after(from)) / 1024 : 0);
  const signed = (v: number) => `${v >= 0 ? '+' : ''}${v.toFixed(2)} MB a minute`;
  const last = samples[samples.length - 1]![1];
  const max = Math.max(...samples.map(([, kb]) => kb));
  const atMinute = (from: number) => after(from)[0]?.[1] ?? last;
  const heapAfter = (from: number) =>
    usages.filter(([minute]) => minute >= from - 0.05).map(([minute, u]): [number, number] => [minute, u.heapUsed / 1024 / 1024]);
  const heapSlope = (from: number) => (heapAfter(from).length > 1 ? slope(heapAfter(from)) : 0);
  const space = (u: Usage, name: string) => mib(u.spaces?.[name]?.size ?? 0);
  const rssAt = (minute: number) => samples.reduce((best, s) => (Math.abs(s[0] - minute) < Math.abs(best[0] - minute) ? s : best))[1];
  const table = usages.map(
    ([minute, u]) =>
      `| ${minute.toFixed(1)} | ${mb(rssAt(minute))} | ${mib(u.heapUsed)} | ${mib(u.heapTotal)} | ${space(u, 'new_space')} | ${space(u, 'old_space')} | ${mib(u.external)} |`,
  );
  const [firstUsage, lastUsage] = [usages[0]![1], usages[usages.length - 1]![1]];
  await writeSection(
    [
      '## knocker status: memory with a long history',
      '',
      `\`npm run bench:history -- --minutes ${MINUTES}\` (bench/history-memory.ts), ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores, Node ${process.version}:`,
      `a private PostgreSQL whose \`history\` table holds ${EVENTS.toLocaleString('en')} events (plus one written every second during the run, ${written} in all),`,
      `three real knocknoc-server nodes, the dashboard (\`knocker status --interval ${INTERVAL_SECONDS}\`, tmux 120x50) on web-1's host. It loads the latest 50`,
      'events of the history when it starts; web-3 is stopped and continued (SIGSTOP/SIGCONT) every 20 s, so its state changes keep arriving',
      `and are folded into the events pane (${folded} of its lines on the last screen). RSS of the dashboard's process every ${SAMPLE_SECONDS} s`,
      '(/proc/PID/status VmRSS); at the start and at the end of every minute, inside the dashboard (`--expose-gc --import',
      'bench/memory-probe.mjs`, on SIGUSR2): a full collection, then `process.memoryUsage()` and V8\'s heap spaces, so "heap used" is',
      `memory the dashboard keeps, "heap" what V8 has reserved for it. Load average at the end: ${load}.`,
      '',
      '| minute | RSS | heap used (after a full collection) | heap (reserved) | of it new space | old space | external |',
      '| ------ | --- | ----------------------------------- | --------------- | --------------- | --------- | -------- |',
      ...table,
      '',
      `RSS at the start ${mb(samples[0]![1])}, after 1 minute ${mb(atMinute(1))}, after 2 minutes ${mb(atMinute(2))}, at the end ${mb(last)}, highest ${mb(max)}.`,
      `RSS trend (least squares over the ${SAMPLE_SECONDS} s samples): after the first minute ${signed(rssSlope(1))}; after the first two **${signed(rssSlope(2))}** (${after(2).length} samples).`,
      `Heap used after a full collection: ${mib(firstUsage.heapUsed)} at the start, ${mib(lastUsage.heapUsed)} at the end; trend after the first minute ${signed(heapSlope(1))}, after the first two ${signed(heapSlope(2))}.`,
      `\`knocker history --limit ${Math.min(EVENTS, 10_000)} --json\` as a whole process: ${Math.round(listMs)} ms for ${listedCount} events.`,
      '',
    ].join('\n'),
  );
}

main().catch(async (error: unknown) => {
  console.error(error);
  await cleanUp();
  process.exit(1);
});
