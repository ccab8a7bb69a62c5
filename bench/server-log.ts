// knocknoc-server's request log under health checks: a real node (bin/knocknoc-server, its stdout
// to a file as a daemon's is) against a real PostgreSQL, sent HEALTH_CHECKS requests to /_status
// (what load balancers' probers send, one a second or more each) and PAGES requests to /. Records
// the size of its log and its lines in bench/RESULTS.md under "knocknoc-server log".
//
//   npm run bench:log [-- --checks 20000 --pages 200]
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '../src/system/host.js';
import { packageRoot } from '../src/system/package.js';
import { bytes } from '../src/system/units.js';
import { startTestCluster } from '../test/helpers/pg.js';
import { allowHosts, waitFor } from '../test/helpers/server.js';
import { makeTempDir } from '../test/helpers/temp.js';
import { writeSection } from './results.js';

const { values: args } = parseArgs({ options: { checks: { type: 'string', default: '20000' }, pages: { type: 'string', default: '200' } } });
const CHECKS = Number(args.checks);
const PAGES = Number(args.pages);
const HOST = '127.0.0.2';
const REPO = packageRoot();

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
function get(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });
}

async function send(url: string, count: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < count) {
        next += 1;
        await get(url);
      }
    }),
  );
}

const cluster = await startTestCluster({ host: '127.0.0.5' });
const dir = await makeTempDir('bench-log-');
try {
  await allowHosts(cluster, [HOST]);
  const url = await cluster.createDatabase({ role: 'knocknoc', database: 'knocknoc' });
  const port = await freePort(HOST);
  const conf = path.join(dir, 'knocknoc.conf');
  await fs.writeFile(conf, `Listen = ${HOST}:${port}\nDatabaseURL = ${url}\nServerName = bench\n`, { mode: 0o600 });
  const logFile = path.join(dir, 'knocknoc.log');
  const out = await fs.open(logFile, 'a');
  const child = spawn(process.execPath, [path.join(REPO, 'bin', 'knocknoc-server'), '--config', conf], { stdio: ['ignore', out.fd, out.fd] });
  await waitFor('the node to answer', async () => ((await get(`http://${HOST}:${port}/_status`)) === 200 ? true : undefined), 30_000);
  const before = (await fs.stat(logFile)).size;
  const started = Date.now();
  await send(`http://${HOST}:${port}/_status`, CHECKS);
  await send(`http://${HOST}:${port}/`, PAGES);
  const seconds = (Date.now() - started) / 1000;
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  await out.close();
  const text = await fs.readFile(logFile, 'utf8');
  const grown = text.length - before;
  const lines = text.slice(before).split('\n').filter(Boolean);
  const httpLines = lines.filter((l) => / HTTP {2}/.test(l)).length;
  const result = `${CHECKS} /_status and ${PAGES} / requests in ${seconds.toFixed(1)} s: the log grew ${bytes(grown)} (${lines.length} lines, ${httpLines} request lines)`;
  console.log(result);
  const tail = lines
    .filter((l) => !/ HTTP {2}/.test(l))
    .slice(-4)
    .map((l) => `    ${l}`);
  await writeSection(
    [
      `## knocknoc-server log`,
      '',
      `Measured ${new Date().toISOString().slice(0, 10)} (\`npm run bench:log\`): ${result}.`,
      '',
      'Its last lines:',
      '',
      ...tail,
      '',
    ].join('\n'),
  );
} finally {
  await cluster.destroy();
  await fs.rm(dir, { recursive: true, force: true });
}
agent.destroy();
