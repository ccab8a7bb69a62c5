// knocknoc-server's /_status under load: a real node (bin/knocknoc-server, logging every request
// to a file as a daemon does) against a real PostgreSQL, loaded by wrk from a second process on
// loopback. Measures requests a second, p99 latency, and the database queries a second the node
// makes meanwhile (pg_stat_statements). Several runs per scenario; the median is recorded in
// bench/RESULTS.md under "knocknoc-server /_status".
//
//   npm run bench:status [-- --runs 5 --seconds 10 --connections 16]
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '../src/system/host.js';
import { packageRoot } from '../src/system/package.js';
import { startTestCluster } from '../test/helpers/pg.js';
import { allowHosts, request, waitFor } from '../test/helpers/server.js';
import { makeTempDir } from '../test/helpers/temp.js';
import { writeSection } from './results.js';

const { values: args } = parseArgs({
  options: { runs: { type: 'string', default: '5' }, seconds: { type: 'string', default: '10' }, connections: { type: 'string', default: '16' } },
});
const RUNS = Number(args.runs);
const SECONDS = Number(args.seconds);
const CONNECTIONS = Number(args.connections);
const NODE_HOST = '127.0.0.2';
const DB_HOST = '127.0.0.5';
// This checkout (compiled, this file runs from bench/out/).
const REPO = packageRoot();

interface Run {
  requestsPerSecond: number;
  p99Ms: number;
  queriesPerSecond: number;
  errors: number;
}

function milliseconds(text: string): number {
  const match = /^([\d.]+)(us|ms|s)$/.exec(text.trim());
  if (!match) throw new Error(`cannot read the latency "${text}"`);
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
}

function parseWrk(output: string): Omit<Run, 'queriesPerSecond'> {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(output)?.[1];
  const p99 = /^\s+99%\s+(\S+)$/m.exec(output)?.[1];
  if (!rps || !p99) throw new Error(`unexpected wrk output:\n${output}`);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(output)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const socketErrors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0;
  return { requestsPerSecond: Number(rps), p99Ms: milliseconds(p99), errors: non2xx + socketErrors };
}

const REFERENCE_SERVER = `
const [body, host, port] = process.argv.slice(1);
require('node:http').createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}).listen(Number(port), host);`;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main(): Promise<void> {
  const cluster = await startTestCluster({ host: DB_HOST, settings: ["shared_preload_libraries = 'pg_stat_statements'"] });
  const work = await makeTempDir('knocker-bench-');
  let node: ReturnType<typeof spawn> | undefined;
  let reference: ReturnType<typeof spawn> | undefined;
  try {
    await cluster.restart();
    await allowHosts(cluster, [NODE_HOST]);
    const url = await cluster.createDatabase({ role: 'knocknoc', database: 'knocknoc' });
    await cluster.admin('CREATE EXTENSION pg_stat_statements', [], 'knocknoc');
    const port = await freePort(NODE_HOST);
    const conf = path.join(work, 'knocknoc.conf');
    await fs.writeFile(conf, `Listen = ${NODE_HOST}:${port}\nDatabaseURL = ${url}\nServerName = bench\n`, { mode: 0o600 });
    const logFile = path.join(work, 'knocknoc.log');
    const log = await fs.open(logFile, 'a');
    node = spawn(process.execPath, [path.join(REPO, 'bin', 'knocknoc-server'), '--config', conf], { stdio: ['ignore', log.fd, log.fd] });
    await log.close();
    const statusUrl = `http://${NODE_HOST}:${port}/_status`;
    await waitFor('the node to serve', async () => ((await request(statusUrl)).status === 200 ? true : undefined));

    const queriesSince = async (): Promise<number> => {
      const rows = await cluster.admin<{ calls: string | null }>(
        `SELECT sum(s.calls) AS calls FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'knocknoc'`,
        [],
        'knocknoc',
      );
      return Number(rows[0]?.calls ?? 0);
    };
    // The machine's ceiling for comparison: a bare node:http server answering the same body.
    const body = (await request(statusUrl)).body;
    const referencePort = await freePort(NODE_HOST);
    reference = spawn(process.execPath, ['-e', REFERENCE_SERVER, body, NODE_HOST, String(referencePort)], { stdio: 'ignore' });
    const referenceUrl = `http://${NODE_HOST}:${referencePort}/_status`;
    await waitFor('the reference server', async () => ((await request(referenceUrl)).status === 200 ? true : undefined));

    const scenarios = [
      { name: 'knocknoc-server, keep-alive', url: statusUrl, headers: [] as string[] },
      // HAProxy's health checks: a new connection per request.
      { name: 'knocknoc-server, Connection: close', url: statusUrl, headers: ['-H', 'Connection: close'] },
      { name: 'reference: bare node:http, keep-alive', url: referenceUrl, headers: [] as string[] },
      { name: 'reference: bare node:http, Connection: close', url: referenceUrl, headers: ['-H', 'Connection: close'] },
    ];
    await execa('wrk', ['-t1', `-c${CONNECTIONS}`, '-d3s', statusUrl]);
    const results: Array<{ name: string; runs: Run[] }> = [];
    for (const scenario of scenarios) {
      const runs: Run[] = [];
      for (let i = 0; i < RUNS; i += 1) {
        await cluster.admin('SELECT pg_stat_statements_reset()', [], 'knocknoc');
        const before = await queriesSince();
        const started = Date.now();
        const wrk = await execa('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '--latency', ...scenario.headers, scenario.url]);
        const elapsed = (Date.now() - started) / 1000;
        const queries = (await queriesSince()) - before;
        const run = { ...parseWrk(wrk.stdout), queriesPerSecond: scenario.url === statusUrl ? queries / elapsed : Number.NaN };
        runs.push(run);
        console.log(
          `${scenario.name} run ${i + 1}: ${run.requestsPerSecond.toFixed(0)} req/s, p99 ${run.p99Ms.toFixed(2)} ms, ${run.queriesPerSecond.toFixed(2)} queries/s, ${run.errors} errors`,
        );
      }
      results.push({ name: scenario.name, runs });
    }
    const logLines = (await fs.readFile(logFile, 'utf8')).split('\n').filter((l) => l.includes(' HTTP  ')).length;
    await writeResults(results, logLines);
  } finally {
    node?.kill('SIGTERM');
    reference?.kill('SIGTERM');
    await cluster.destroy();
    await fs.rm(work, { recursive: true, force: true });
  }
}

async function writeResults(results: Array<{ name: string; runs: Run[] }>, logLines: number): Promise<void> {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const { stdout: wrkVersion } = await execa('wrk', ['--version'], { reject: false });
  const rows = results.map(({ name, runs }) => {
    const rps = median(runs.map((r) => r.requestsPerSecond));
    const p99 = median(runs.map((r) => r.p99Ms));
    const qps = median(runs.map((r) => r.queriesPerSecond));
    const errors = runs.reduce((sum, r) => sum + r.errors, 0);
    return `| ${name} | ${rps.toFixed(0)} | ${p99.toFixed(2)} | ${Number.isNaN(qps) ? '–' : qps.toFixed(2)} | ${errors} | ${runs.map((r) => r.requestsPerSecond.toFixed(0)).join(', ')} |`;
  });
  const section = [
    '## knocknoc-server /_status',
    '',
    `\`npm run bench:status\` (bench/server-status.ts), ${new Date().toISOString().slice(0, 10)}: one node (bin/knocknoc-server, logging`,
    `every request to a file) on ${NODE_HOST}, PostgreSQL 15 on ${DB_HOST}; \`wrk -t1 -c${CONNECTIONS} -d${SECONDS}s --latency\``,
    `(${wrkVersion.split('\n')[0]?.split(' Copyright')[0] ?? 'wrk'}) from a second process; ${RUNS} runs per scenario, the median shown.`,
    `Node ${process.version}, ${os.cpus().length} × ${cpu}. Database queries from pg_stat_statements (the node's role).`,
    '',
    '| scenario | requests/s | p99 latency (ms) | database queries/s | errors (all runs) | requests/s of each run |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    `Aims: ≥ 5,000 requests/s, p99 ≤ 5 ms, ≤ 1 query/s. The node logged ${logLines.toLocaleString('en')} request lines meanwhile.`,
    "A health check reuses the database check's answer for 1 s (the heartbeat rides on it), so the node makes one query a",
    'second whatever the request rate; a 10 s window can hold 11. The machine is a shared 2-vCPU VM running wrk, the node',
    'and PostgreSQL at once: runs vary by ±20 %, hence the medians and the bare node:http reference beside them.',
    '',
  ].join('\n');
  await writeSection(section);
}

await main();
