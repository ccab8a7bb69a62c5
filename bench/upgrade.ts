// Issue 7's figures: a rolling upgrade of three sandbox web nodes (each its own root, run by
// `knocker service`; knocker's HAProxy on the first node's root; one shared PostgreSQL) from
// release 1.0.0 (this checkout) to a release 1.1.0 with one real migration, under steady load
// through HAProxy: GET /_status from new clients, a fresh connection each. Two procedures, each on
// a fresh database and cluster every run:
//
//   A. `knocker upgrade --non-interactive --upgrade-command "<1.1.0>/bin/knocker service restart
//      server --root <base>/{name}"`.
//   B. The seed's manual procedure: `knocker haproxy maint` web-2 and web-3, one wait of 90 s for
//      both changes ("Wait up to 90 seconds after each change for the load balancer to stop serving
//      from those servers"), web-1's upgrade command (nothing holds its checks), then for web-2 and
//      web-3 the command and `knocker haproxy ready` (which waits for a passing check).
//
// Measured per run: requests and failed requests (not answered 200, or no answer), the longest
// request (the longest stall a client saw), the whole procedure's wall time, the time in the
// upgrade commands, and the rest. Results go to the "Rolling upgrade" section of bench/RESULTS.md.
//
//   npm run bench:upgrade [-- --runs-a 5 --runs-b 2 --rate 50 --wait 90]
import { execa } from 'execa';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { showStat } from '../src/haproxy/runtime.js';
import { PATHS } from '../src/system/root.js';
import { startTestCluster } from '../test/helpers/pg.js';
import { cleanEnv, knocker } from '../test/helpers/knocker.js';
import { makeRelease, type TestRelease } from '../test/helpers/release.js';
import { allowHosts } from '../test/helpers/server.js';
import { startUpgradeCluster, steadyLoad, type LoadReport, type UpgradeCluster } from '../test/helpers/upgrade.js';
import { writeSection } from './results.js';

const { values: args } = parseArgs({
  options: { 'runs-a': { type: 'string', default: '5' }, 'runs-b': { type: 'string', default: '2' }, rate: { type: 'string', default: '50' }, wait: { type: 'string', default: '90' } },
});
const RUNS_A = Number(args['runs-a']);
const RUNS_B = Number(args['runs-b']);
const RATE = Number(args.rate);
const WAIT_MS = Number(args.wait) * 1000;
// Addresses of their own, so the bench never meets the tests' clusters.
const DB_HOST = '127.0.0.230';
const HOSTS = ['127.0.0.231', '127.0.0.232', '127.0.0.233'];
const HAPROXY_HOST = '127.0.0.235';
/** Load runs this long before the procedure starts and after it ends. */
const MARGIN_MS = 1_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Run {
  procedure: 'A' | 'B';
  run: number;
  load: LoadReport;
  totalMs: number;
  commandMs: number;
  /** B: the prescribed wait after taking web-2 and web-3 out (0 for A). */
  waitMs: number;
  /** A: what knocker upgrade itself printed ("Done: … in X s (Y s of it in the upgrade commands)"). */
  reported?: { totalS: number; commandS: number };
  /** The failed requests by the step they happened in. */
  failedBy: Map<string, number>;
  /** B: how long web-1's upgrade command took (the lone node's restart). */
  web1CommandMs?: number;
  /** HAProxy's counters for web-1 afterwards: failed checks, UP→DOWN transitions, retries. */
  web1: { checkFailures: number; downTransitions: number; retries: number };
}

/** Marks when each step began (Date.now(), as the load report's `at`), to place the failures. */
class Steps {
  private marks: Array<{ at: number; name: string }> = [];
  mark(name: string): void {
    this.marks.push({ at: Date.now(), name });
  }
  of(at: number): string {
    let name = 'before the procedure';
    for (const m of this.marks) if (m.at <= at) name = m.name;
    return name;
  }
}

function countBy(report: LoadReport, steps: Steps): Map<string, number> {
  const by = new Map<string, number>();
  for (const f of report.failed) {
    const step = steps.of(f.at);
    by.set(step, (by.get(step) ?? 0) + 1);
  }
  return by;
}

/** A fresh database and cluster of three nodes on 1.0.0, stopped and removed afterwards. */
async function withCluster<T>(use: (cluster: UpgradeCluster) => Promise<T>): Promise<T> {
  const pg = await startTestCluster({ host: DB_HOST });
  let cluster: UpgradeCluster | undefined;
  try {
    await allowHosts(pg, HOSTS);
    const url = await pg.createDatabase({ role: 'knocknoc', database: 'knocknoc' });
    cluster = await startUpgradeCluster({ hosts: HOSTS, haproxyHost: HAPROXY_HOST, databaseUrl: url });
    return await use(cluster);
  } finally {
    await cluster?.stop();
    await pg.destroy();
  }
}

async function versionsOf(cluster: UpgradeCluster): Promise<string[]> {
  const versions: string[] = [];
  for (const node of cluster.nodes) {
    const reply = await fetch(`http://${node.host}:${node.port}/_status`);
    versions.push(((await reply.json()) as { version: string }).version);
  }
  return versions;
}

async function web1Counters(cluster: UpgradeCluster): Promise<Run['web1']> {
  const stat = (await showStat(cluster.root.path(PATHS.haproxyAdminSocket))).servers.find((x) => x.name === 'web-1');
  if (!stat) throw new Error('HAProxy has no web-1');
  return { checkFailures: stat.check.failures, downTransitions: stat.check.downTransitions, retries: stat.retries };
}

/** Every node answers on `version` and is UP in HAProxy, or the run is not worth recording. */
async function checkUpgraded(cluster: UpgradeCluster, version: string): Promise<void> {
  const versions = await versionsOf(cluster);
  if (!versions.every((v) => v === version)) throw new Error(`not every node on ${version}: ${versions.join(', ')}`);
  for (const node of cluster.nodes) {
    const row = await cluster.haproxy.statusOf(node.name);
    if (row.statusText !== 'UP') throw new Error(`${node.name} is ${row.statusText} in HAProxy after the upgrade`);
  }
}

function must(what: string, result: { exitCode: number; stdout: string; stderr: string }): void {
  if (result.exitCode !== 0) throw new Error(`${what} exited ${result.exitCode}:\n${result.stdout}\n${result.stderr}`);
}

async function procedureA(next: TestRelease, run: number): Promise<Run> {
  return withCluster(async (cluster) => {
    const steps = new Steps();
    const load = steadyLoad(cluster.haproxy.url, RATE);
    await sleep(MARGIN_MS);
    steps.mark('knocker upgrade');
    const started = performance.now();
    const result = await knocker(['upgrade', '--root', cluster.root.dir, '--non-interactive', '--upgrade-command', cluster.commandFor(next.dir)], {
      timeoutMs: 300_000,
    });
    const totalMs = performance.now() - started;
    steps.mark('after the procedure');
    await sleep(MARGIN_MS);
    const report = await load.stop();
    must('knocker upgrade', result);
    const done = /Done: 3 servers on 1\.1\.0 in ([\d.]+) s \(([\d.]+) s of it in the upgrade commands\)/.exec(result.stdout);
    if (!done) throw new Error(`no "Done:" line from knocker upgrade:\n${result.stdout}`);
    await checkUpgraded(cluster, next.version);
    const reported = { totalS: Number(done[1]), commandS: Number(done[2]) };
    const web1 = await web1Counters(cluster);
    return { procedure: 'A', run, load: report, totalMs, commandMs: reported.commandS * 1000, waitMs: 0, reported, failedBy: countBy(report, steps), web1 };
  });
}

async function procedureB(next: TestRelease, run: number): Promise<Run> {
  return withCluster(async (cluster) => {
    const steps = new Steps();
    const haproxy = (...words: string[]) => knocker(['haproxy', ...words, '--root', cluster.root.dir]);
    let commandMs = 0;
    // The same command knocker upgrade runs, the same way: without a shell, {name} filled in.
    const upgradeCommand = async (name: string) => {
      const [program, ...rest] = cluster.commandFor(next.dir).replaceAll('{name}', name).split(' ');
      const started = performance.now();
      const result = await execa(program!, rest, { env: cleanEnv(), extendEnv: false, reject: false, input: '' });
      commandMs += performance.now() - started;
      must(`the upgrade command for ${name}`, { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) });
    };
    const load = steadyLoad(cluster.haproxy.url, RATE);
    await sleep(MARGIN_MS);
    const started = performance.now();
    steps.mark('maint web-2, web-3');
    must('knocker haproxy maint web-2', await haproxy('maint', 'web-2'));
    must('knocker haproxy maint web-3', await haproxy('maint', 'web-3'));
    steps.mark(`the ${WAIT_MS / 1000} s wait`);
    const waitStarted = performance.now();
    await sleep(WAIT_MS);
    const waitMs = performance.now() - waitStarted;
    steps.mark('web-1: upgrade command');
    const web1Started = performance.now();
    await upgradeCommand('web-1');
    const web1CommandMs = performance.now() - web1Started;
    for (const name of ['web-2', 'web-3']) {
      steps.mark(`${name}: upgrade command`);
      await upgradeCommand(name);
      steps.mark(`${name}: haproxy ready`);
      must(`knocker haproxy ready ${name}`, await haproxy('ready', name));
    }
    const totalMs = performance.now() - started;
    steps.mark('after the procedure');
    await sleep(MARGIN_MS);
    const report = await load.stop();
    await checkUpgraded(cluster, next.version);
    const web1 = await web1Counters(cluster);
    return { procedure: 'B', run, load: report, totalMs, commandMs, waitMs, failedBy: countBy(report, steps), web1CommandMs, web1 };
  });
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

function describe(run: Run): string {
  const failed = [...run.failedBy].map(([step, n]) => `${n} in ${step}`).join(', ');
  const kinds = [...new Set(run.load.failed.map((f) => f.what.replace(/:.*/s, '')))].slice(0, 3).join('; ');
  return (
    `${run.procedure === 'A' ? 'knocker upgrade' : 'manual'} run ${run.run}: ${run.load.failed.length} of ${run.load.total} failed` +
    (failed ? ` (${failed}: ${kinds})` : '') +
    `, longest ${s(run.load.longestMs)}, total ${s(run.totalMs)}, commands ${s(run.commandMs)}, rest ${s(run.totalMs - run.commandMs - run.waitMs)}` +
    (run.waitMs ? ` besides the ${s(run.waitMs)} wait` : '') +
    (run.reported ? ` (knocker: ${run.reported.totalS.toFixed(2)} s, ${run.reported.commandS.toFixed(2)} s in commands)` : '') +
    `; web-1: ${web1Line(run)}`
  );
}

function web1Line(run: Run): string {
  const { checkFailures, downTransitions, retries } = run.web1;
  return (
    (run.web1CommandMs !== undefined ? `restart command ${s(run.web1CommandMs)}, ` : '') +
    `${checkFailures} failed check${checkFailures === 1 ? '' : 's'}, DOWN ${downTransitions} time${downTransitions === 1 ? '' : 's'}, ${retries} retr${retries === 1 ? 'y' : 'ies'}`
  );
}

async function main(): Promise<void> {
  const next = await makeRelease({
    version: '1.1.0',
    // A real schema change; it would fail if it ever ran twice (the table exists the second time).
    migrations: [{ name: 'upgrade_marker', sql: 'CREATE TABLE upgrade_marker (migrated_at timestamptz NOT NULL DEFAULT now()); INSERT INTO upgrade_marker DEFAULT VALUES;' }],
  });
  const runs: Run[] = [];
  try {
    for (let i = 1; i <= RUNS_A; i += 1) {
      runs.push(await procedureA(next, i));
      console.log(describe(runs.at(-1)!));
    }
    for (let i = 1; i <= RUNS_B; i += 1) {
      runs.push(await procedureB(next, i));
      console.log(describe(runs.at(-1)!));
    }
  } finally {
    await next.destroy();
  }
  await writeResults(runs);
}

async function writeResults(runs: Run[]): Promise<void> {
  const { stdout: haproxyVersion } = await execa('haproxy', ['-v']);
  const waitS = WAIT_MS / 1000;
  const failedCell = (r: Run) => {
    if (r.load.failed.length === 0) return `0 of ${r.load.total}`;
    const where = [...r.failedBy].map(([step, n]) => `${n} in ${step}`).join(', ');
    return `${r.load.failed.length} of ${r.load.total} (${where})`;
  };
  const rows = runs.map((r) =>
    r.procedure === 'A'
      ? `| A: knocker upgrade | ${r.run} | ${failedCell(r)} | ${s(r.load.longestMs)} | ${s(r.totalMs)} | ${s(r.commandMs)} | ${s(r.totalMs - r.commandMs)} | – | ${web1Line(r)} |`
      : `| B: manual | ${r.run} | ${failedCell(r)} | ${s(r.load.longestMs)} | ${s(r.totalMs)} | ${s(r.commandMs)} | ${s(r.totalMs - r.commandMs)} | ${s(r.totalMs - r.waitMs)} | ${web1Line(r)} |`,
  );
  const medianRow = (procedure: 'A' | 'B', label: string) => {
    const of = runs.filter((r) => r.procedure === procedure);
    if (of.length === 0) return [];
    const m = (f: (r: Run) => number) => median(of.map(f));
    const failed = `${m((r) => r.load.failed.length)} of ${m((r) => r.load.total)}`;
    return [
      `| ${label} | ${of.length} | ${failed} | ${s(m((r) => r.load.longestMs))} | ${s(m((r) => r.totalMs))} | ${s(m((r) => r.commandMs))} | ` +
        `${s(m((r) => r.totalMs - r.commandMs))} | ${procedure === 'B' ? s(m((r) => r.totalMs - r.waitMs)) : '–'} |`,
    ];
  };
  const reported = runs
    .filter((r) => r.reported)
    .map((r) => `${r.reported!.totalS.toFixed(2)} s (${r.reported!.commandS.toFixed(2)} s)`)
    .join(', ');
  const section = [
    "## Rolling upgrade: knocker upgrade against the seed's manual procedure",
    '',
    `\`npm run bench:upgrade\` (bench/upgrade.ts), ${new Date().toISOString().slice(0, 10)}: three web nodes (${HOSTS.join(', ')}), each a sandbox`,
    "root of its own started with `knocker service start server`, knocker's HAProxy on the first node's root",
    `(${haproxyVersion.split('\n')[0]!.replace(/ - https.*/, '')}, frontend on ${HAPROXY_HOST}), PostgreSQL 15 on ${DB_HOST}. Each run starts from`,
    'a fresh database and cluster on release 1.0.0 (this checkout) and upgrades it to a copy released as 1.1.0 with one',
    'migration (a new table), the upgrade command for each node being `<1.1.0>/bin/knocker service restart server',
    '--root <base>/{name}`. Load through HAProxy the whole time, from 1 s before to 1 s after: GET /_status at',
    `${RATE} requests/s from new clients, one fresh connection each; a request fails unless answered 200 (no answer`,
    'within 30 s, a refused or reset connection, or any other status). "Longest stall" is the slowest request a client saw.',
    `Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown CPU'}.`,
    '',
    '- A: `knocker upgrade --non-interactive --upgrade-command "…"`; its time is the whole `knocker upgrade` process. Of it, the',
    '  time in the upgrade commands is what knocker prints ("Done: … in X s (Y s of it in the upgrade commands)"), here X (Y):',
    `  ${reported || '–'}.`,
    `- B: the seed's manual procedure: \`knocker haproxy maint web-2\` and \`knocker haproxy maint web-3\`, then one wait of ${waitS} s`,
    `  for both changes (the seed: "Wait up to 90 seconds after each change for the load balancer to stop serving from those`,
    `  servers"; one wait, not two), then web-1's upgrade command, then for web-2 and web-3 the upgrade command followed by`,
    '  `knocker haproxy ready web-N` (which returns once a health check has passed). Timed from the first `maint` to the last',
    '  `ready`; the commands run the same way knocker runs them (no shell, {name} filled in).',
    '',
    `${RUNS_A} runs of A, ${RUNS_B} of B:`,
    '',
    '| procedure | run | failed requests | longest stall | total | in the upgrade commands | total − commands | total − the wait | web-1 in HAProxy |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    'Medians:',
    '',
    '| procedure | runs | failed requests | longest stall | total | in the upgrade commands | total − commands | total − the wait |',
    '|---|---|---|---|---|---|---|---|',
    ...medianRow('A', 'A: knocker upgrade'),
    ...medianRow('B', 'B: manual'),
    '',
    'Aims for A: 0 failed requests, total − commands ≤ 30 s. "web-1 in HAProxy" is HAProxy\'s counters for the node that',
    'restarts while it is the only one in rotation, read after the run: its failed health checks, its UP→DOWN transitions,',
    'and the connections to it that HAProxy retried.',
    '',
    ...explanation(runs),
    '',
  ].join('\n');
  await writeSection(section);
}

/** Why the manual procedure failed requests or did not (from where its failures fell), and where A's stall is from. */
function explanation(runs: Run[]): string[] {
  const manual = runs.filter((r) => r.procedure === 'B');
  const manualFailed = manual.reduce((n, r) => n + r.load.failed.length, 0);
  const restarts = manual.map((r) => s(r.web1CommandMs ?? 0)).join(', ');
  const lines: string[] = [];
  if (manual.length > 0 && manualFailed > 0) {
    lines.push(
      'The manual procedure fails requests while web-1, the only node left in rotation, restarts (its upgrade command took',
      `${restarts}): nothing holds its health checks, so once they fail HAProxy marks it DOWN and, with no other node in`,
      'rotation, answers 503 until 2 checks pass again; a request that meets the closed port before that waits through its 3',
      'retries, 1 s apart, and fails if they run out first. Where each failure fell is in the table.',
    );
  } else if (manual.length > 0) {
    const failedChecks = Math.max(...manual.map((r) => r.web1.checkFailures));
    const downs = manual.reduce((n, r) => n + r.web1.downTransitions, 0);
    lines.push(
      `The manual procedure failed no requests in these runs: web-1's restart is short (its upgrade command took ${restarts}),`,
      `so ${failedChecks === 0 ? 'none' : `at most ${failedChecks}`} of its health checks (\`inter 2s\`) failed meanwhile and HAProxy ${downs === 0 ? 'never marked it DOWN' : `marked it DOWN ${downs} times`}`,
      "(3 failed checks do that); the requests that met its closed port were retried (`retries 3`) and answered once it",
      'listened again. Nothing in the manual procedure covers a slower restart: once web-1 is marked DOWN nothing is left in',
      'rotation and HAProxy answers 503 until 2 checks pass. What the manual procedure costs here is time: the prescribed',
      'wait, and the `ready` of each other node.',
    );
  }
  const longestA = Math.max(...runs.filter((r) => r.procedure === 'A').map((r) => r.load.longestMs));
  lines.push(
    '',
    "knocker upgrade's longest stall is web-1's restart: with its checks held off it stays in rotation, so a request that",
    'meets its closed port is retried rather than answered 503, after HAProxy\'s 1 s turn-around before retrying a refused',
    'connection (the smaller of `timeout connect` and 1 s); ' +
      (longestA < 1_500
        ? 'one turn was enough in every run,\nas the new process listened within it (the manual runs show the same 1 s).'
        : `the slowest request waited ${s(longestA)}, more than one turn.`),
  );
  return lines;
}

await main();
