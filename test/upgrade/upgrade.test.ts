// `knocker upgrade` on real parts: three sandbox web nodes (each its own root, run by
// `knocker service`), one shared PostgreSQL, knocker's HAProxy on the first node's root, and
// steady load through HAProxy. The upgrade command restarts a node from the next release's folder,
// whose migration changes the schema: the old nodes are out of step from that moment.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { connectFrom, sharedDatabase, waitFor } from '../helpers/server.js';
import { cleanEnv, KNOCKER, knocker } from '../helpers/knocker.js';
import { makeRelease, type TestRelease } from '../helpers/release.js';
import { newDatabase, startUpgradeCluster, steadyLoad, type UpgradeCluster } from '../helpers/upgrade.js';

const HOSTS = ['127.0.0.201', '127.0.0.202', '127.0.0.203'];
const HAPROXY_HOST = '127.0.0.205';
const db = sharedDatabase({ host: '127.0.0.200', allow: HOSTS });

let next: TestRelease;
const clusters: UpgradeCluster[] = [];

beforeAll(async () => {
  next = await makeRelease({
    version: '1.1.0',
    // Fails if it ever runs twice: the table exists the second time.
    migrations: [
      {
        name: 'upgrade_marker',
        sql: `CREATE TABLE upgrade_marker (migrated_at timestamptz NOT NULL DEFAULT now()); INSERT INTO upgrade_marker DEFAULT VALUES;`,
      },
    ],
  });
});
afterAll(async () => {
  await next?.destroy();
});
afterEach(async () => {
  for (const cluster of clusters.splice(0)) await cluster.stop();
});

/** A fresh cluster on a database of its own (the upgrades migrate it). */
async function cluster(hosts = HOSTS): Promise<UpgradeCluster> {
  const c = await startUpgradeCluster({ hosts, haproxyHost: HAPROXY_HOST, databaseUrl: await newDatabase(db) });
  clusters.push(c);
  return c;
}

function upgrade(c: UpgradeCluster, ...args: string[]) {
  return knocker(['upgrade', '--root', c.root.dir, ...args], { timeoutMs: 120_000 });
}

async function versions(c: UpgradeCluster): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const node of c.nodes) {
    const reply = await fetch(`http://${node.host}:${node.port}/_status`);
    result[node.name] = ((await reply.json()) as { version: string }).version;
  }
  return result;
}

async function journal(c: UpgradeCluster): Promise<{ state: string; target?: string; servers: Array<{ name: string; phase: string }> }> {
  return JSON.parse(await fs.readFile(c.root.path('/var/lib/knocknoc/upgrade.json'), 'utf8'));
}

test('three nodes from 1.0.0 to 1.1.0 under steady load: all upgraded, the database migrated once, no request failed', async () => {
  const c = await cluster();
  expect(await versions(c)).toEqual({ 'web-1': '1.0.0', 'web-2': '1.0.0', 'web-3': '1.0.0' });
  const load = steadyLoad(c.haproxy.url, 50);
  await new Promise((r) => setTimeout(r, 500));
  const result = await upgrade(c, '--upgrade-command', c.commandFor(next.dir), '--non-interactive');
  await new Promise((r) => setTimeout(r, 500));
  const report = await load.stop();
  expect(result.exitCode, result.stderr).toBe(0);
  expect(result.stderr).not.toContain('warning:');
  expect(report.failed, JSON.stringify(report.failed.slice(0, 5))).toEqual([]);
  expect(report.total).toBeGreaterThan(50);
  expect(report.versions.get('1.1.0')).toBeGreaterThan(0);
  expect(await versions(c)).toEqual({ 'web-1': '1.1.0', 'web-2': '1.1.0', 'web-3': '1.1.0' });
  // Migrated once, by the first server.
  const client = await connectFrom(HOSTS[0]!, c.databaseUrl);
  try {
    const marker = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM upgrade_marker');
    expect(marker.rows[0]!.n).toBe(1);
    const applied = await client.query<{ applied_by: string }>("SELECT applied_by FROM knocknoc_schema_migrations WHERE name = 'upgrade_marker'");
    expect(applied.rows.map((r) => r.applied_by)).toHaveLength(1);
    expect(applied.rows[0]!.applied_by).toContain('web-1');
  } finally {
    await client.end();
  }
  // Every node back in rotation.
  for (const node of c.nodes) expect((await c.haproxy.statusOf(node.name)).statusText).toBe('UP');
  expect(result.stderr).toMatch(/Done: 3 servers on 1\.1\.0/);
  // Piped, stdout is the result alone: each server's release before and after, and its state in HAProxy.
  expect(result.stdout.split('\n')).toEqual(
    ['web-1', 'web-2', 'web-3'].map((name) => expect.stringMatching(new RegExp(`^${name}: 1\\.0\\.0 → 1\\.1\\.0, HAProxy UP, check L7OK 200$`))),
  );
  expect((await journal(c)).state).toBe('done');
  const stat = await fs.stat(c.root.path('/var/lib/knocknoc/upgrade.json'));
  expect(stat.mode & 0o777).toBe(0o600);
});

/**
 * An upgrade command that fails for `failFor`, hangs for `blockFor` (its pid in BASE/blocked.pid),
 * sleeps first for `slowFor`, else restarts the node from `releaseDir` (an explicit shell, as an
 * operator may write one).
 */
function scripted(c: UpgradeCluster, releaseDir: string, options: { failFor?: string; blockFor?: string; slowFor?: string }): string {
  const script = [
    options.failFor ? `if [ "$1" = ${options.failFor} ]; then echo "no package for $1 on this mirror" >&2; exit 7; fi` : '',
    options.blockFor ? `if [ "$1" = ${options.blockFor} ]; then echo $$ > ${c.base}/blocked.pid; exec sleep 120; fi` : '',
    options.slowFor ? `if [ "$1" = ${options.slowFor} ]; then echo $$ > ${c.base}/slow.pid; sleep 2; fi` : '',
    'exec "$0" service restart server --root "$2"',
  ]
    .filter(Boolean)
    .join('; ');
  return `sh -c '${script}' ${path.join(releaseDir, 'bin', 'knocker')} {name} ${c.base}/{name}`;
}

/** Stops the load and checks that every request through HAProxy was answered 200. */
async function expectNoFailedRequest(load: ReturnType<typeof steadyLoad>): Promise<void> {
  const report = await load.stop();
  expect(report.failed, JSON.stringify(report.failed.slice(0, 5))).toEqual([]);
}

/** An upgrade whose command fails for `name` (exit 7, a line on stderr): it must stop with exit 4 and say why. */
async function failingOn(c: UpgradeCluster, name: string) {
  const failed = await upgrade(c, '--upgrade-command', scripted(c, next.dir, { failFor: name }), '--non-interactive');
  expect(failed.exitCode, failed.stdout + failed.stderr).toBe(4);
  expect(failed.stderr).toContain(`the upgrade command for ${name} failed with exit code 7`);
  expect(failed.stderr).toContain(`no package for ${name} on this mirror`);
  return failed;
}

async function adminStates(c: UpgradeCluster): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const row of await c.haproxy.status()) out[row.name] = row.statusText;
  return out;
}

test('an offline or stopped server blocks the start: exit 3, the reason, nothing changed', async () => {
  const c = await cluster();
  // web-3 killed without a word: at once its /_status is refused; after three missed heartbeats the registry has it offline.
  const pid = Number(await fs.readFile(c.nodes[2]!.root.path('/run/knocknoc/knocknoc.pid'), 'utf8'));
  process.kill(pid, 'SIGKILL');
  const refused = await upgrade(c, '--upgrade-command', c.commandFor(next.dir), '--non-interactive');
  expect(refused.exitCode).toBe(3);
  expect(refused.stderr).toMatch(/preflight failed: web-3: \/_status does not answer on 127\.0\.0\.203:\d+: connection refused/);
  const offline = await waitFor(
    'web-3 to be offline',
    async () => {
      const result = await upgrade(c, '--upgrade-command', c.commandFor(next.dir), '--non-interactive');
      return /web-3: offline: no heartbeat for \d+s/.test(result.stderr) ? result : undefined;
    },
    40_000,
  );
  expect(offline.exitCode).toBe(3);
  expect(offline.stderr).toContain('hint: a missing or offline server points to an existing problem: fix it before upgrading');
  // web-2 stopped properly: marked stopped in the registry.
  const stopped = await knocker(['service', 'stop', 'server', '--root', c.nodes[1]!.root.dir]);
  expect(stopped.exitCode).toBe(0);
  const both = await upgrade(c, '--upgrade-command', c.commandFor(next.dir), '--non-interactive');
  expect(both.exitCode).toBe(3);
  expect(both.stderr).toMatch(/✗ web-2: stopped \(since/);
  expect(both.stderr).toMatch(/✗ web-3: offline: no heartbeat/);
  // Nothing changed: no journal, rotation as it was (HAProxy's own checks took the dead ones out).
  await expect(fs.stat(c.root.path('/var/lib/knocknoc/upgrade.json'))).rejects.toThrow();
  await c.haproxy.waitFor('web-2', 'DOWN');
  await c.haproxy.waitFor('web-3', 'DOWN');
  expect((await c.haproxy.statusOf('web-1')).statusText).toBe('UP');
  expect(await versions({ ...c, nodes: c.nodes.slice(0, 1) })).toEqual({ 'web-1': '1.0.0' });
});

test('--dry-run prints the steps and changes nothing; bad input is exit 2', async () => {
  const c = await cluster();
  const dry = await upgrade(c, '--upgrade-command', c.commandFor(next.dir), '--dry-run');
  expect(dry.exitCode, dry.stderr).toBe(0);
  expect(dry.stdout).toContain('knocker upgrade: 3 servers, web-1 first');
  expect(dry.stdout).toContain('Take web-2 and web-3 out of rotation');
  expect(dry.stdout).toContain(`Upgrade web-3: ${path.join(next.dir, 'bin', 'knocker')} service restart server --root ${c.base}/web-3`);
  expect(dry.stdout).toContain('Dry run: nothing was changed.');
  const json = await upgrade(c, '--upgrade-command', c.commandFor(next.dir), '--dry-run', '--json', '--first', 'web-2');
  const parsed = JSON.parse(json.stdout) as { details: { first: string }; plan: { steps: Array<{ title: string }> } };
  expect(parsed.details.first).toBe('web-2');
  expect(parsed.plan.steps.map((s) => s.title.split(':')[0])).toEqual([
    'Take web-1 and web-3 out of rotation',
    "Confirm from HAProxy's counters that web-1 and web-3 get no traffic",
    'Keep requests for web-2 waiting while it restarts',
    'Upgrade web-2',
    'Wait until web-2 answers /_status on a release newer than 1.0.0, in step with the database (at most 120 s)',
    'Health checks of web-2 on again; HAProxy must show it UP with its last check passed (at most 120 s)',
    'Upgrade web-1',
    'Wait until web-1 answers /_status on the version web-2 came back on, in step with the database (at most 120 s)',
    "Bring web-1 back into rotation once HAProxy's health check passes (at most 120 s)",
    'Upgrade web-3',
    'Wait until web-3 answers /_status on the version web-2 came back on, in step with the database (at most 120 s)',
    "Bring web-3 back into rotation once HAProxy's health check passes (at most 120 s)",
  ]);
  await expect(fs.stat(c.root.path('/var/lib/knocknoc/upgrade.json'))).rejects.toThrow();
  expect(await adminStates(c)).toEqual({ 'web-1': 'UP', 'web-2': 'UP', 'web-3': 'UP' });

  const missing = await upgrade(c, '--non-interactive');
  expect(missing.exitCode).toBe(2);
  expect(missing.stderr).toContain('--upgrade-command is required');
  const unknown = await upgrade(c, '--non-interactive', '--upgrade-command', 'ssh root@{hostname} true');
  expect(unknown.exitCode).toBe(2);
  expect(unknown.stderr).toContain('unknown placeholder {hostname}');
  const unclosed = await upgrade(c, '--non-interactive', '--upgrade-command', "ssh 'root@{host} true");
  expect(unclosed.exitCode).toBe(2);
  const nothing = await upgrade(c, '--resume', '--non-interactive');
  expect(nothing.exitCode).toBe(2);
  expect(nothing.stderr).toContain('there is no upgrade to resume');
  const backup = await upgrade(c, '--dry-run', '--first', 'web-9', '--upgrade-command', 'true');
  expect(backup.exitCode).toBe(2);
  expect(backup.stderr).toContain('--first web-9: no such node');

  // A configuration from before retries 20: said before anything starts.
  const conf = c.root.path('/etc/haproxy/haproxy.cfg');
  await fs.writeFile(conf, (await fs.readFile(conf, 'utf8')).replace(/^(\s*)retries 20$/m, '$1retries 3'));
  const old = await upgrade(c, '--upgrade-command', c.commandFor(next.dir), '--dry-run');
  expect(old.stdout).toContain("warning: HAProxy's configuration has retries 3: requests arriving while web-1 restarts fail if it takes longer than about 3 s");
});

test("the first server's command fails: exit 4, rotation restored with no failed request, then --resume upgrades them all", async () => {
  const c = await cluster();
  const load = steadyLoad(c.haproxy.url, 50);
  const failed = await failingOn(c, 'web-1');
  expect(failed.stderr).toContain('web-2, web-3 are back in rotation once their health check passes');
  expect(failed.stderr).toMatch(/↺ rolled back: Take web-2 and web-3 out of rotation/);
  expect(failed.stdout).toBe('');
  // Back in rotation by HAProxy's own checks, never before.
  await c.haproxy.waitFor('web-2', 'UP');
  await c.haproxy.waitFor('web-3', 'UP');
  expect(await adminStates(c)).toEqual({ 'web-1': 'UP', 'web-2': 'UP', 'web-3': 'UP' });
  expect(await versions(c)).toEqual({ 'web-1': '1.0.0', 'web-2': '1.0.0', 'web-3': '1.0.0' });
  expect((await journal(c)).state).toBe('stopped');

  // A new run is refused while this one is open.
  const again = await upgrade(c, '--upgrade-command', c.commandFor(next.dir), '--non-interactive');
  expect(again.exitCode).toBe(3);
  expect(again.stderr).toContain('knocker upgrade --resume');

  const resumed = await upgrade(c, '--resume', '--upgrade-command', c.commandFor(next.dir), '--non-interactive');
  expect(resumed.exitCode, resumed.stdout + resumed.stderr).toBe(0);
  await expectNoFailedRequest(load);
  expect(await versions(c)).toEqual({ 'web-1': '1.1.0', 'web-2': '1.1.0', 'web-3': '1.1.0' });
  expect((await journal(c)).state).toBe('done');
});

test("a later server's command fails after the migration: the upgraded server serves alone, the old ones stay out, --resume finishes", async () => {
  const c = await cluster();
  const load = steadyLoad(c.haproxy.url, 50);
  const failed = await failingOn(c, 'web-2');
  expect(failed.stderr).toContain('web-1 is upgraded to 1.1.0 and in rotation');
  // Out of step with the migrated database, the old ones are not put back: not even a cookie reaches them.
  expect(failed.stderr).toContain('web-2, web-3 are kept in maintenance: out of step with the migrated database until upgraded');
  expect(failed.stderr).toContain('web-3: stays in maintenance: out of step (it runs 1.0.0, schema 2; the database is at 3)');
  expect(await adminStates(c)).toEqual({ 'web-1': 'UP', 'web-2': 'MAINT', 'web-3': 'MAINT' });
  const resumed = await upgrade(c, '--resume', '--non-interactive', '--upgrade-command', c.commandFor(next.dir));
  expect(resumed.exitCode, resumed.stdout + resumed.stderr).toBe(0);
  expect(resumed.stderr).toContain('already done: web-1');
  await expectNoFailedRequest(load);
  expect(await versions(c)).toEqual({ 'web-1': '1.1.0', 'web-2': '1.1.0', 'web-3': '1.1.0' });
  expect(await adminStates(c)).toEqual({ 'web-1': 'UP', 'web-2': 'UP', 'web-3': 'UP' });
});

/** Starts knocker upgrade as a separate process, to be cut off. */
function startUpgrade(c: UpgradeCluster, args: string[]) {
  return execa(process.execPath, [KNOCKER, 'upgrade', '--root', c.root.dir, ...args], { env: cleanEnv(), reject: false, stdin: 'ignore' });
}

/** Cuts off a run (a crash, a lost session): knocker killed outright. Its command, in a session of its own, goes on. */
async function cutOff(run: ReturnType<typeof startUpgrade>): Promise<void> {
  run.kill('SIGKILL');
  await run;
}

/** Ends the hanging upgrade command that outlived its knocker. */
async function endBlocked(c: UpgradeCluster): Promise<void> {
  process.kill(Number(await fs.readFile(path.join(c.base, 'blocked.pid'), 'utf8')), 'SIGKILL');
}

/** Waits until the scripted command blocking on a server runs (it has written its pid). */
async function waitForBlocked(c: UpgradeCluster): Promise<void> {
  await waitFor(
    'the blocked upgrade command to run',
    async () => ((await fs.readFile(path.join(c.base, 'blocked.pid'), 'utf8').catch(() => '')).trim() !== '' ? true : undefined),
    60_000,
  );
}

async function waitForPhase(c: UpgradeCluster, name: string, phase: string): Promise<void> {
  await waitFor(
    `${name} to be ${phase} in the journal`,
    async () => ((await journal(c).catch(() => undefined))?.servers.find((s) => s.name === name)?.phase === phase ? true : undefined),
    60_000,
  );
}

test("a run cut off during a later server's command resumes where it was", async () => {
  const c = await cluster();
  const load = steadyLoad(c.haproxy.url, 50);
  const run = startUpgrade(c, ['--non-interactive', '--upgrade-command', scripted(c, next.dir, { blockFor: 'web-2' })]);
  await waitForPhase(c, 'web-2', 'upgrading');
  await waitForBlocked(c);
  await cutOff(run);
  expect((await journal(c)).state).toBe('running');
  // Cut off before it could journal the command's pid: the command is found all the same.
  const file = c.root.path('/var/lib/knocknoc/upgrade.json');
  const record = JSON.parse(await fs.readFile(file, 'utf8')) as { running?: { pid?: number } };
  delete record.running!.pid;
  await fs.writeFile(file, JSON.stringify(record));
  // Its command still runs: never a second one beside it.
  const early = await upgrade(c, '--resume', '--non-interactive');
  expect(early.exitCode).toBe(3);
  expect(early.stderr).toMatch(/the upgrade command for web-2 \(pid \d+\) is still running/);
  await endBlocked(c);

  const plain = await upgrade(c, '--non-interactive', '--upgrade-command', c.commandFor(next.dir));
  expect(plain.exitCode).toBe(3);
  expect(plain.stderr).toContain('was cut off before it finished');
  const resumed = await upgrade(c, '--resume', '--non-interactive', '--upgrade-command', c.commandFor(next.dir));
  expect(resumed.exitCode, resumed.stdout + resumed.stderr).toBe(0);
  expect(resumed.stderr).not.toContain('Take web-2');
  await expectNoFailedRequest(load);
  expect(await versions(c)).toEqual({ 'web-1': '1.1.0', 'web-2': '1.1.0', 'web-3': '1.1.0' });
  expect(await adminStates(c)).toEqual({ 'web-1': 'UP', 'web-2': 'UP', 'web-3': 'UP' });
  const done = await journal(c);
  expect(done.state).toBe('done');
  expect(done.target).toBe('1.1.0');
});

test("a run cut off during the first server's command is rolled back: its checks on again, the others back by their checks", async () => {
  const c = await cluster();
  const load = steadyLoad(c.haproxy.url, 50);
  const run = startUpgrade(c, ['--non-interactive', '--upgrade-command', scripted(c, next.dir, { blockFor: 'web-1' })]);
  await waitForPhase(c, 'web-1', 'upgrading');
  await waitForBlocked(c);
  // Nobody else changes rotation meanwhile, nor starts a second upgrade.
  const meddling = await c.haproxy.run('ready', 'web-2');
  expect(meddling.exitCode).toBe(3);
  expect(meddling.stderr).toContain('knocker upgrade is taking servers in and out of rotation');
  const second = await upgrade(c, '--resume', '--non-interactive');
  expect(second.exitCode).toBe(3);
  expect(second.stderr).toContain('another knocker upgrade is running');
  await cutOff(run);
  await endBlocked(c);
  // Its checks off: HAProxy shows "no check" and keeps it in rotation.
  expect(await adminStates(c)).toEqual({ 'web-1': 'no check', 'web-2': 'MAINT', 'web-3': 'MAINT' });
  const rolledBack = await upgrade(c, '--rollback');
  expect(rolledBack.exitCode, rolledBack.stdout + rolledBack.stderr).toBe(0);
  expect(rolledBack.stderr).toContain('web-1: health checks on again');
  expect(rolledBack.stderr).toMatch(/web-2: back in rotation once its check passes/);
  expect(rolledBack.stderr).toContain('Rotation restored.');
  await c.haproxy.waitFor('web-2', 'UP');
  await c.haproxy.waitFor('web-3', 'UP');
  await expectNoFailedRequest(load);
  expect((await journal(c)).state).toBe('rolled-back');
  expect(await versions(c)).toEqual({ 'web-1': '1.0.0', 'web-2': '1.0.0', 'web-3': '1.0.0' });
  const twice = await upgrade(c, '--rollback');
  expect(twice.exitCode).toBe(2);
});

test('Ctrl-C lets the running command finish, then stops and puts rotation back', async () => {
  const c = await cluster();
  const load = steadyLoad(c.haproxy.url, 50);
  const run = startUpgrade(c, ['--non-interactive', '--upgrade-command', scripted(c, next.dir, { slowFor: 'web-1' })]);
  await waitFor('the slow command to start', () => fs.readFile(path.join(c.base, 'slow.pid'), 'utf8').then(() => true), 30_000);
  run.kill('SIGINT');
  const result = await run;
  expect(result.stderr).toContain('Stopping once the server being upgraded is done');
  expect(result.exitCode, result.stdout + result.stderr).toBe(4);
  // The command was not cut short: web-1 came back on 1.1.0, and serves alone.
  expect(result.stderr).toMatch(/Upgrade web-1: .*\n(.*\n)*.*✔ done/);
  expect(result.stderr).toContain('stopped by the operator (Ctrl-C)');
  expect(result.stderr).toContain('web-1 is upgraded to 1.1.0 and in rotation');
  await expectNoFailedRequest(load);
  expect((await journal(c)).state).toBe('stopped');
  expect((await c.haproxy.statusOf('web-1')).statusText).toBe('UP');
});

test('a lone server: its requests are held while it restarts, none fails', async () => {
  const c = await cluster(HOSTS.slice(0, 1));
  const load = steadyLoad(c.haproxy.url, 50);
  const dry = await upgrade(c, '--upgrade-command', c.commandFor(next.dir), '--dry-run');
  expect(dry.stdout).toContain('web-1 is the only server: while it restarts, requests wait');
  expect(dry.stdout).not.toContain('out of rotation');
  const result = await upgrade(c, '--upgrade-command', c.commandFor(next.dir), '--non-interactive');
  expect(result.exitCode, result.stdout + result.stderr).toBe(0);
  await expectNoFailedRequest(load);
  expect(await versions(c)).toEqual({ 'web-1': '1.1.0' });
});

test('servers on different releases: --to-version must say which one they all reach', async () => {
  const c = await cluster();
  const patch = await makeRelease({ version: '1.0.1' });
  try {
    const restarted = await knocker(['service', 'restart', 'server', '--root', c.nodes[2]!.root.dir], { bin: patch.knockerBin });
    expect(restarted.exitCode, restarted.stderr).toBe(0);
    await c.haproxy.waitFor('web-3', 'UP');
    const refused = await upgrade(c, '--upgrade-command', c.commandFor(next.dir), '--dry-run');
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toContain('the servers run different releases (1.0.0, 1.0.1)');
    const dry = await upgrade(c, '--upgrade-command', c.commandFor(next.dir), '--dry-run', '--to-version', '1.1.0');
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('Wait until web-1 answers /_status on 1.1.0, in step with the database');
    expect(dry.stdout).toContain('knocker upgrade: 3 servers to 1.1.0, web-1 first');
  } finally {
    await patch.destroy();
  }
});
