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
// Both are run with the nodes' quick restart (about 0.5 s) and with a slow one (`--pauses`: the
// command stops the node, sleeps, then starts it, as a package manager that stops a service before
// unpacking does), where the lone node is away longer than its health checks allow.
//
//   npm run bench:upgrade [-- --runs-a 5 --runs-b 2 --rate 50 --wait 90 --pauses 0,5]
import { execa } from 'execa';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { showStat } from '../src/haproxy/runtime.js';
import { showArgv } from '../src/upgrade/command.js';
import { PATHS } from '../src/system/root.js';
import { startTestCluster } from '../test/helpers/pg.js';
import { cleanEnv, knocker } from '../test/helpers/knocker.js';
import { makeRelease, type TestRelease } from '../test/helpers/release.js';
import { allowHosts } from '../test/helpers/server.js';
import { startUpgradeCluster, steadyLoad, type LoadReport, type UpgradeCluster } from '../test/helpers/upgrade.js';
import { writeSection } from './results.js';

const { values: args } = parseArgs({
  options: {
    'runs-a': { type: 'string', default: '5' },
    'runs-b': { type: 'string', default: '2' },
    rate: { type: 'string', default: '50' },
    wait: { type: 'string', default: '90' },
    pauses: { type: 'string', default: '0,5' },
  },
});
const RUNS_A = Number(args['runs-a']);
const RUNS_B = Number(args['runs-b']);
const RATE = Number(args.rate);
const WAIT_MS = Number(args.wait) * 1000;
/** Seconds each node stays stopped during its upgrade command (0: a plain restart). */
const PAUSES = args.pauses.split(',').map(Number);
// Addresses of their own, so the bench never meets the tests' clusters.
const DB_HOST = '127.0.0.230';
const HOSTS = ['127.0.0.231', '127.0.0.232', '127.0.0.233'];
const HAPROXY_HOST = '127.0.0.235';
/** Load runs this long before the procedure starts and after it ends. */
const MARGIN_MS = 1_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Run {
  procedure: 'A' | 'B';
  /** Seconds the node stayed stopped in its upgrade command. */
  pause: number;
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

/**
 * The upgrade command's words for one node: a plain restart from the newer release, or with a
 * pause, stop, sleep, start. {name} is filled in by knocker upgrade (A) or by `argvFor` (B).
 */
function commandWords(cluster: UpgradeCluster, next: TestRelease, pause: number): string[] {
  const knockerBin = `${next.dir}/bin/knocker`;
  const root = `${cluster.base}/{name}`;
  if (pause === 0) return [knockerBin, 'service', 'restart', 'server', '--root', root];
  return ['sh', '-c', `"$0" service stop server --root "$1"; sleep ${pause}; exec "$0" service start server --root "$1"`, knockerBin, root];
}

async function procedureA(next: TestRelease, pause: number, run: number): Promise<Run> {
  return withCluster(async (cluster) => {
    const steps = new Steps();
    const load = steadyLoad(cluster.haproxy.url, RATE);
    await sleep(MARGIN_MS);
    steps.mark('knocker upgrade');
    const started = performance.now();
    const result = await knocker(
      ['upgrade', '--root', cluster.root.dir, '--non-interactive', '--upgrade-command', showArgv(commandWords(cluster, next, pause), [])],
      {
        timeoutMs: 300_000,
      },
    );
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
    return {
      procedure: 'A',
      pause,
      run,
      load: report,
      totalMs,
      commandMs: reported.commandS * 1000,
      waitMs: 0,
      reported,
      failedBy: countBy(report, steps),
      web1,
    };
  });
}

async function procedureB(next: TestRelease, pause: number, run: number): Promise<Run> {
  return withCluster(async (cluster) => {
    const steps = new Steps();
    const haproxy = (...words: string[]) => knocker(['haproxy', ...words, '--root', cluster.root.dir]);
    let commandMs = 0;
    // The same command knocker upgrade runs, the same way: without a shell, {name} filled in.
    const upgradeCommand = async (name: string) => {
      const [program, ...rest] = commandWords(cluster, next, pause).map((w) => w.replaceAll('{name}', name));
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
    return { procedure: 'B', pause, run, load: report, totalMs, commandMs, waitMs, failedBy: countBy(report, steps), web1CommandMs, web1 };
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
    `${run.procedure === 'A' ? 'knocker upgrade' : 'manual'}, ${restartLabel(run.pause)}, run ${run.run}: ${run.load.failed.length} of ${run.load.total} failed` +
    (failed ? ` (${failed}: ${kinds})` : '') +
    `, longest ${s(run.load.longestMs)}, total ${s(run.totalMs)}, commands ${s(run.commandMs)}, rest ${s(run.totalMs - run.commandMs - run.waitMs)}` +
    (run.waitMs ? ` besides the ${s(run.waitMs)} wait` : '') +
    (run.reported ? ` (knocker: ${run.reported.totalS.toFixed(2)} s, ${run.reported.commandS.toFixed(2)} s in commands)` : '') +
    `; web-1: ${web1Line(run)}`
  );
}

function restartLabel(pause: number): string {
  return pause === 0 ? 'quick restart' : `stopped ${pause} s`;
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
    migrations: [
      {
        name: 'upgrade_marker',
        sql: 'CREATE TABLE upgrade_marker (migrated_at timestamptz NOT NULL DEFAULT now()); INSERT INTO upgrade_marker DEFAULT VALUES;',
      },
    ],
  });
  const runs: Run[] = [];
  try {
    for (const pause of PAUSES) {
      for (let i = 1; i <= RUNS_A; i += 1) {
        runs.push(await procedureA(next, pause, i));
        console.log(describe(runs.at(-1)!));
      }
      for (let i = 1; i <= RUNS_B; i += 1) {
        runs.push(await procedureB(next, pause, i));
        console.log(describe(runs.at(-1)!));
      }
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
      ? `| A: knocker upgrade | ${restartLabel(r.pause)} | ${r.run} | ${failedCell(r)} | ${s(r.load.longestMs)} | ${s(r.totalMs)} | ${s(r.commandMs)} | ${s(r.totalMs - r.commandMs)} | – | ${web1Line(r)} |`
      : `| B: manual | ${restartLabel(r.pause)} | ${r.run} | ${failedCell(r)} | ${s(r.load.longestMs)} | ${s(r.totalMs)} | ${s(r.commandMs)} | ${s(r.totalMs - r.commandMs)} | ${s(r.totalMs - r.waitMs)} | ${web1Line(r)} |`,
  );
  const medianRow = (procedure: 'A' | 'B', label: string, pause: number) => {
    const of = runs.filter((r) => r.procedure === procedure && r.pause === pause);
    if (of.length === 0) return [];
    const m = (f: (r: Run) => number) => median(of.map(f));
    const failed = `${m((r) => r.load.failed.length)} of ${m((r) => r.load.total)}`;
    return [
      `| ${label} | ${restartLabel(pause)} | ${of.length} | ${failed} | ${s(m((r) => r.load.longestMs))} | ${s(m((r) => r.totalMs))} | ${s(m((r) => r.commandMs))} | ` +
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
    '--root <base>/{name}` ("quick restart", about 0.5 s), or, to stand for a package manager that stops the service before',
    `unpacking, \`sh -c '"$0" service stop server --root "$1"; sleep N; exec "$0" service start server --root "$1"'\` ("stopped N s",`,
    `N = ${PAUSES.filter((p) => p > 0).join(', ') || 'none'}). Load through HAProxy the whole time, from 1 s before to 1 s after: GET /_status at`,
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
    `${RUNS_A} runs of A and ${RUNS_B} of B for each kind of restart (failures placed by the step under way when they came):`,
    '',
    '| procedure | restart | run | failed requests | longest stall | total | in the upgrade commands | total − commands | total − the wait | web-1 in HAProxy |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    'Medians:',
    '',
    '| procedure | restart | runs | failed requests | longest stall | total | in the upgrade commands | total − commands | total − the wait |',
    '|---|---|---|---|---|---|---|---|---|',
    ...PAUSES.flatMap((pause) => [...medianRow('A', 'A: knocker upgrade', pause), ...medianRow('B', 'B: manual', pause)]),
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

/** What the runs show, per kind of restart: where the manual procedure lost requests or did not, and where A's stall is from. */
function explanation(runs: Run[]): string[] {
  const lines: string[] = [];
  for (const pause of PAUSES) {
    const manual = runs.filter((r) => r.procedure === 'B' && r.pause === pause);
    const auto = runs.filter((r) => r.procedure === 'A' && r.pause === pause);
    const manualFailed = manual.reduce((n, r) => n + r.load.failed.length, 0);
    const autoFailed = auto.reduce((n, r) => n + r.load.failed.length, 0);
    const downs = manual.reduce((n, r) => n + r.web1.downTransitions, 0);
    const restarts = manual.map((r) => s(r.web1CommandMs ?? 0)).join(', ');
    const longestA = Math.max(...auto.map((r) => r.load.longestMs));
    const label = restartLabel(pause);
    lines.push(`${label[0]!.toUpperCase()}${label.slice(1)}:`);
    if (manual.length > 0) {
      lines.push(
        manualFailed > 0
          ? `The manual procedure failed ${manualFailed} request${manualFailed === 1 ? '' : 's'} in ${manual.length} run${manual.length === 1 ? '' : 's'} while web-1, the only node left in rotation, ` +
              `was away (its command took ${restarts}): nothing holds its health checks, so after 3 failed ones HAProxy marked it DOWN ` +
              `(${downs} time${downs === 1 ? '' : 's'} in all) and, with no other node in rotation, answered 503 until 2 checks passed again.`
          : `The manual procedure failed no request: web-1's restart (its command took ${restarts}) was over before 3 of its ` +
              `health checks could fail (HAProxy marked it DOWN ${downs} time${downs === 1 ? '' : 's'}), and the requests that met ` +
              'its closed port were retried until it listened again. What it costs is time: the prescribed wait, and the `ready` of each other node.',
      );
    }
    if (auto.length > 0) {
      lines.push(
        `knocker upgrade failed ${autoFailed} request${autoFailed === 1 ? '' : 's'}; its longest stall, ${s(longestA)}, is web-1's restart: ` +
          'with its checks held off it stays in rotation, so a request that meets its closed port is retried on it after ' +
          "HAProxy's 1 s turn-around (the smaller of `timeout connect` and 1 s), up to `retries 20` times, instead of being " +
          'answered 503.',
      );
    }
    lines.push('');
  }
  return lines;
}

await main();
