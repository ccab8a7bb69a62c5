// Web nodes following a promoted standby: a primary and a real streaming standby
// (pg_basebackup -R, test/helpers/replica.ts), two knocknoc-server nodes with the two-host
// DatabaseURL (target_session_attrs=read-write). Each run: the nodes answer 200 on the primary,
// the standby has replayed it, the primary is stopped (pg_ctl stop -m fast: the primary lost),
// the nodes answer 503, the primary stays away for a while (the gap), then `pg_ctl promote` on the
// standby. Measured: from the start of `pg_ctl promote` until each node's /_status answers 200
// naming the new host (polled every 20 ms on fresh connections), and the promote command itself.
// Results go to the "Following a promoted standby" section of bench/RESULTS.md.
//
//   npm run bench:follow [-- --runs 5 --gaps 0,10,40]
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { findPgBinaries } from '../src/postgres/cluster.js';
import { buildDatabaseUrl, parseDatabaseUrl } from '../src/postgres/url.js';
import { packageRoot } from '../src/system/package.js';
import { startTestCluster } from '../test/helpers/pg.js';
import { allowLogins, startTestStandby } from '../test/helpers/replica.js';
import { request, startServer, stopServers, type ServerNode } from '../test/helpers/server.js';
import { writeSection } from './results.js';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '5' }, gaps: { type: 'string', default: '0,10,40' } } });
const RUNS = Number(args.runs);
const GAPS = args.gaps.split(',').map(Number);
const PRIMARY = '127.0.0.121';
const STANDBY = '127.0.0.122';
const NODES = ['127.0.0.123', '127.0.0.124'];
const SERVER = path.join(packageRoot(), 'bin', 'knocknoc-server');

interface Run {
  gapS: number;
  promoteMs: number;
  /** Per node: from the start of pg_ctl promote to its first 200 naming the new host. */
  nodeMs: number[];
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function statusOf(node: ServerNode): Promise<{ http: number; host: string | null } | undefined> {
  try {
    const reply = await request(node.url('/_status'), { timeoutMs: 5_000 });
    const body = JSON.parse(reply.body) as { databaseHost?: string | null };
    return { http: reply.status, host: body.databaseHost ?? null };
  } catch {
    return undefined;
  }
}

async function until(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return performance.now();
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function oneRun(gapS: number): Promise<Run> {
  const primary = await startTestCluster({ host: PRIMARY });
  let standby: Awaited<ReturnType<typeof startTestStandby>> | undefined;
  try {
    await allowLogins(primary, NODES);
    const single = parseDatabaseUrl(await primary.createDatabase({ role: 'knocknoc', database: 'knocknoc' }));
    if (!single.ok) throw new Error(single.error);
    standby = await startTestStandby(primary, { host: STANDBY, allow: NODES });
    const url = buildDatabaseUrl({
      host: '',
      port: 0,
      hosts: [
        { host: PRIMARY, port: primary.port },
        { host: STANDBY, port: standby.cluster.port },
      ],
      user: 'knocknoc',
      password: single.value.password,
      database: 'knocknoc',
      params: { target_session_attrs: 'read-write' },
    });
    const newHost = `${STANDBY}:${standby.cluster.port}`;
    const nodes: ServerNode[] = [];
    for (const [i, host] of NODES.entries()) nodes.push(await startServer({ host, databaseUrl: url, name: `web-${i + 1}`, bin: SERVER }));
    for (const node of nodes) await until(`${node.name} 200`, async () => (await statusOf(node))?.http === 200, 30_000);
    await standby.caughtUp();
    await primary.stop();
    for (const node of nodes) await until(`${node.name} 503`, async () => (await statusOf(node))?.http === 503, 30_000);
    if (gapS > 0) await new Promise((r) => setTimeout(r, gapS * 1000));
    const started = performance.now();
    const answered = nodes.map((node) =>
      until(
        `${node.name} 200 on ${newHost}`,
        async () => {
          const s = await statusOf(node);
          return s?.http === 200 && s.host === newHost;
        },
        120_000,
      ),
    );
    await standby.promote();
    const promoteMs = performance.now() - started;
    const nodeMs = (await Promise.all(answered)).map((t) => t - started);
    return { gapS, promoteMs, nodeMs };
  } finally {
    await stopServers();
    await standby?.destroy();
    await primary.destroy();
  }
}

async function main(): Promise<void> {
  const runs: Run[] = [];
  for (const gapS of GAPS) {
    for (let i = 0; i < RUNS; i += 1) {
      const run = await oneRun(gapS);
      runs.push(run);
      console.log(`gap ${gapS} s, run ${i + 1}: promote ${seconds(run.promoteMs)}, nodes ${run.nodeMs.map(seconds).join(', ')}`);
    }
  }
  const bin = await findPgBinaries();
  const rows = runs.map(
    (r, i) => `| ${r.gapS} s | ${(i % RUNS) + 1} | ${seconds(r.promoteMs)} | ${r.nodeMs.map(seconds).join(', ')} | ${seconds(Math.max(...r.nodeMs))} |`,
  );
  const medians = GAPS.map((gapS) => {
    const of = runs.filter((r) => r.gapS === gapS);
    return `| ${gapS} s | ${of.length} | ${seconds(median(of.map((r) => r.promoteMs)))} | ${seconds(median(of.map((r) => Math.max(...r.nodeMs))))} | ${seconds(Math.max(...of.map((r) => Math.max(...r.nodeMs))))} |`;
  });
  const section = [
    '## Following a promoted standby',
    '',
    `\`npm run bench:follow\` (bench/follow.ts), ${new Date().toISOString().slice(0, 10)}: PostgreSQL ${bin?.version ?? '?'} primary on ${PRIMARY} and a streaming`,
    `standby on ${STANDBY} (pg_basebackup -R -X stream with a slot), two knocknoc-server nodes (${NODES.join(', ')}) with`,
    '`DatabaseURL = postgres://…@PRIMARY,STANDBY/knocknoc?target_session_attrs=read-write`. Each run: both nodes 200 on the',
    'primary, the standby caught up, the primary stopped (`pg_ctl stop -m fast`), both nodes 503, the primary left away for',
    "the gap, then `pg_ctl promote -w` on the standby. Time from the start of `pg_ctl promote` until each node's /_status",
    `answers 200 naming the standby's host (polled every 20 ms). Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown CPU'}.`,
    '',
    '| gap | runs | pg_ctl promote (median) | every node 200 (median) | worst run |',
    '|---|---|---|---|---|',
    ...medians,
    '',
    'Each run:',
    '',
    '| gap | run | pg_ctl promote | each node 200 | every node 200 |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    'Aim: every node 200 ≤ 5 s after the promotion starts. While a server of the list answers as a standby and none as',
    'the primary, a node tries the list again every 250 ms for the first 30 s, then at most every second (its backoff',
    'doubling from 250 ms, capped at 1 s, ±20 % jitter); with no server answering at all the backoff goes up to 5 s.',
    'So a node follows within about 0.25 s of the promotion finishing in the first 30 s of an outage, within about 1.2 s later.',
    '',
  ].join('\n');
  await writeSection(section);
}

await main();
