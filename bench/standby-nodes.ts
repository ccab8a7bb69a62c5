// Issue 16's figures with real web nodes: a primary (sandbox root A) and its standby (root B, by
// `knocker standby init`), two knocknoc-server nodes run by `knocker service` on their own roots
// with the multi-host DatabaseURL standby init printed, knocker's HAProxy in front. Every command a
// whole process. Each run:
//   1. kill -9 of the primary's postmaster (A), then `knocker standby promote` on B: measured from
//      the start of the command until every node's /_status answers 200 naming B (polled every
//      20 ms on fresh connections), and the command's own time;
//   2. `knocker service start postgres` on A (fenced), `knocker standby rejoin` there;
//   3. `knocker standby switchover` on B under steady load through HAProxy (50 GET /_status a
//      second, fresh connections): requests failed (not 200, or no answer), the slowest request,
//      until every node answers 200 naming A again.
// Results go to the "Standby with web nodes" section of bench/RESULTS.md.
//
//   npm run bench:standby-nodes [-- --runs 5]
import fs from 'node:fs/promises';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { clusterOwner, findPgBinaries, stopCluster } from '../src/postgres/cluster.js';
import { freePort } from '../src/system/host.js';
import { PATHS, Root } from '../src/system/root.js';
import { knocker } from '../test/helpers/knocker.js';
import { request } from '../test/helpers/server.js';
import { makeTempDir } from '../test/helpers/temp.js';
import { startUpgradeCluster, steadyLoad, type UpgradeCluster } from '../test/helpers/upgrade.js';
import { writeSection } from './results.js';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const RUNS = Number(args.runs);
const A = '127.0.0.250';
const B = '127.0.0.251';
const NODES = ['127.0.0.252', '127.0.0.253'];
const HAPROXY = '127.0.0.254';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function must(argv: string[]): Promise<string> {
  const result = await knocker(argv, { timeoutMs: 300_000 });
  if (result.exitCode !== 0) throw new Error(`knocker ${argv.join(' ')} exited ${result.exitCode}:\n${result.stdout}\n${result.stderr}`);
  return result.stdout.trim();
}

async function until(what: string, probe: () => Promise<boolean>, ms = 120_000): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await probe()) return performance.now();
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(20);
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function servesFrom(host: string, nodePort: number, db: string): Promise<boolean> {
  try {
    const reply = await request(`http://${host}:${nodePort}/_status`, { timeoutMs: 5_000 });
    return reply.status === 200 && (JSON.parse(reply.body) as { databaseHost?: string }).databaseHost === db;
  } catch {
    return false;
  }
}

interface Run {
  promoteCommandMs: number;
  promoteToNodesMs: number;
  switchoverRequests: number;
  switchoverFailed: number;
  slowestMs: number;
  switchoverCommandMs: number;
}

async function main(): Promise<void> {
  const rootA = new Root(await makeTempDir('knocker-bench-nodes-a-'));
  const rootB = new Root(await makeTempDir('knocker-bench-nodes-b-'));
  let web: UpgradeCluster | undefined;
  const runs: Run[] = [];
  try {
    await must(['install', '--root', rootA.dir, '--listen', `${A}:${await freePort(A)}`]);
    await must(['service', 'stop', 'server', '--root', rootA.dir]);
    const nodesUrl = await must(['exposedb', '--root', rootA.dir, '--init']);
    const port = Number(new URL(nodesUrl).port);
    for (const host of NODES) await must(['exposedb', '--root', rootA.dir, '--add', `${host}/32`]);
    const bundle = await must(['exposedb', '--root', rootA.dir, '--add-standby', B]);
    const multi = await must(['standby', '--root', rootB.dir, 'init', '--bundle', bundle]);
    // The standby's host as a web node installed with --database-ca: the CA file the string names.
    await fs.mkdir(rootB.path('/opt/knocknoc/etc'), { recursive: true });
    await fs.copyFile(rootA.path(PATHS.clusterCaCert), rootB.path(PATHS.databaseCa));
    // The primary's own stopped node out of the registry (it is not one of the nodes measured).
    const { sql } = await import('../test/helpers/standby.js');
    await sql(rootA, 'DELETE FROM servers');
    web = await startUpgradeCluster({ hosts: NODES, haproxyHost: HAPROXY, databaseUrl: multi });
    const everyNode = (db: string) => Promise.all(web!.nodes.map((n) => until(`${n.name} on ${db}`, () => servesFrom(n.host, n.port, db))));
    await everyNode(`${A}:${port}`);
    for (let i = 0; i < RUNS; i += 1) {
      const pid = Number((await fs.readFile(rootA.path(`${PATHS.pgData}/postmaster.pid`), 'utf8')).split('\n')[0]);
      process.kill(pid, 'SIGKILL');
      await until('the primary gone', async () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      });
      const started = performance.now();
      const answered = everyNode(`${B}:${port}`);
      await must(['standby', '--root', rootB.dir, 'promote']);
      const promoteCommandMs = performance.now() - started;
      const promoteToNodesMs = Math.max(...(await answered)) - started;

      await must(['service', '--root', rootA.dir, 'start', 'postgres']);
      await must(['standby', '--root', rootA.dir, 'rejoin']);
      await until('A streaming from B', async () => {
        const s = JSON.parse((await knocker(['standby', '--root', rootA.dir, 'status', '--json'])).stdout) as { receiver?: { status: string } };
        return s.receiver?.status === 'streaming';
      });
      // Both nodes back in HAProxy's rotation before the load starts.
      for (const node of web.nodes) await until(`${node.name} UP`, async () => (await web!.haproxy.statusOf(node.name)).statusText === 'UP');

      const load = steadyLoad(web.haproxy.url, 50);
      await sleep(1000);
      const switchStarted = performance.now();
      await must(['standby', '--root', rootB.dir, 'switchover']);
      const switchoverCommandMs = performance.now() - switchStarted;
      await everyNode(`${A}:${port}`);
      await sleep(1000);
      const report = await load.stop();
      runs.push({
        promoteCommandMs,
        promoteToNodesMs,
        switchoverRequests: report.total,
        switchoverFailed: report.failed.length,
        slowestMs: report.longestMs,
        switchoverCommandMs,
      });
      const r = runs.at(-1)!;
      console.log(
        `run ${i + 1}: promote ${seconds(r.promoteCommandMs)}, every node 200 on B ${seconds(r.promoteToNodesMs)}; switchover ${seconds(r.switchoverCommandMs)}, ${r.switchoverFailed} of ${r.switchoverRequests} requests failed, slowest ${seconds(r.slowestMs)}${report.failed.length ? ` (${report.failed[0]!.what.slice(0, 120)})` : ''}`,
      );
    }
  } finally {
    await web?.stop();
    const bin = await findPgBinaries();
    for (const root of [rootA, rootB]) {
      if (bin) await stopCluster({ bin, dataDir: root.path(PATHS.pgData), osUser: await clusterOwner() }, undefined, 'immediate').catch(() => {});
      await fs.rm(root.dir, { recursive: true, force: true });
    }
  }
  const bin = await findPgBinaries();
  const lines = [
    '## Standby with web nodes: promote and switchover',
    '',
    `\`npm run bench:standby-nodes\` (bench/standby-nodes.ts), ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores, PostgreSQL ${bin?.version}, Node ${process.version}:`,
    `a primary (sandbox root, ${A}) and its standby (${B}, \`knocker standby init\`), two knocknoc-server nodes (${NODES.join(', ')}) run by`,
    "`knocker service` on their own roots with the multi-host DatabaseURL standby init printed, knocker's HAProxy in front. Each run:",
    "kill -9 of the primary's postmaster, `knocker standby promote` on the standby (timed from its start until every node's",
    '/_status answers 200 naming the new host, polled every 20 ms), the old primary started again (fenced) and rejoined, then',
    '`knocker standby switchover` back under 50 requests a second through HAProxy (GET /_status, fresh connections; failed = not',
    '200 or no answer). Every command a whole process.',
    '',
    '| run | promote command | promote → every node 200 | switchover command | requests | failed | slowest request |',
    '|---|---|---|---|---|---|---|',
    ...runs.map(
      (r, i) =>
        `| ${i + 1} | ${seconds(r.promoteCommandMs)} | ${seconds(r.promoteToNodesMs)} | ${seconds(r.switchoverCommandMs)} | ${r.switchoverRequests} | ${r.switchoverFailed} | ${seconds(r.slowestMs)} |`,
    ),
    '',
    `Median: from \`knocker standby promote\` to every web node answering 200 **${seconds(median(runs.map((r) => r.promoteToNodesMs)))}** (aim ≤ 5 s; worst ${seconds(Math.max(...runs.map((r) => r.promoteToNodesMs)))}),`,
    `the promote command ${seconds(median(runs.map((r) => r.promoteCommandMs)))}; requests failed during a switchover **${runs.reduce((n, r) => n + r.switchoverFailed, 0)}** of ${runs.reduce((n, r) => n + r.switchoverRequests, 0)} in all runs,`,
    `slowest request during a switchover ${seconds(median(runs.map((r) => r.slowestMs)))} (median of the runs): a node that loses the primary to a switch holds`,
    'its health checks up to 1.8 s while it finds the new one, instead of answering 503.',
    '',
  ];
  await writeSection(lines.join('\n'));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
