// Issue 24, milestone 1: the monitor host of an automatic pair. On a primary sandbox root,
// exposedb --add-monitor makes the bundle (0600, the monitor's certificate from the cluster's CA,
// autoctl_node's password); on another "host" (its own 127.0.24.x), knocker ha monitor creates the
// pg_auto_failover monitor with real pg_autoctl: verify-full TLS, no trust in pg_hba.conf, the
// password as a SCRAM verifier, no discovery of its own address by connecting out; refused bundles,
// --dry-run and a failure (its port taken) change nothing. The monitor is stopped at the end.
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { withAdminSession } from '../../src/postgres/admin.js';
import { connect } from '../../src/postgres/connect.js';
import { parseDatabaseUrl } from '../../src/postgres/url.js';
import { autoctl, monitorFiles, runningMonitor, stopMonitor, MONITOR_PATHS } from '../../src/ha/monitor.js';
import { freePort } from '../../src/system/host.js';
import { isAlive } from '../../src/system/lock.js';
import type { Root } from '../../src/system/root.js';
import { installPrimary } from '../helpers/exposedb.js';
import { run } from '../helpers/failclosed.js';
import { destroyRoot, makeRoot } from '../helpers/roots.js';

const A = '127.0.24.31';
const MON = '127.0.24.30';
let rootA: Root;
let rootM: Root;
let port: number;
let bundleFile: string;
let bundle: Record<string, any>;
let dir: string;

const ha = (...args: string[]) => run(['ha', '--root', rootM.dir, ...args]);

beforeAll(async () => {
  [rootA, rootM] = await Promise.all([makeRoot(), makeRoot()]);
  await installPrimary(rootA, A);
  expect((await run(['exposedb', '--root', rootA.dir, '--init'])).exitCode).toBe(0);
  port = await freePort(MON);
  dir = await fs.mkdtemp(path.join(rootM.dir, 'bundles-'));
}, 120_000);

afterAll(async () => {
  if (rootM) {
    const files = monitorFiles(rootM);
    const pid = await runningMonitor(files);
    await stopMonitor(files);
    if (pid !== undefined) expect(isAlive(pid)).toBe(false);
  }
  await Promise.all([rootA && destroyRoot(rootA), rootM && destroyRoot(rootM)]);
}, 60_000);

async function variant(name: string, content: unknown, mode = 0o600): Promise<string> {
  const file = path.join(dir, `${name}.json`);
  await fs.writeFile(file, JSON.stringify(content), { mode });
  await fs.chmod(file, mode);
  return file;
}

const nothingOnMonitor = async () => expect(await fs.stat(monitorFiles(rootM).dir).catch(() => undefined)).toBeUndefined();

test('exposedb --add-monitor: --dry-run writes nothing; then a 0600 bundle with a certificate for the monitor from the cluster CA and a ≥128-bit password', async () => {
  const dry = await run(['exposedb', '--root', rootA.dir, '--add-monitor', `${MON}:${port}`, '--dry-run', '--json']);
  expect(dry.exitCode, dry.stderr).toBe(0);
  const plan = JSON.parse(dry.stdout);
  expect(plan.details.dataHosts).toEqual([A]);
  await expect(fs.stat(plan.details.bundle)).rejects.toThrow();

  const made = await run(['exposedb', '--root', rootA.dir, '--add-monitor', `${MON}:${port}`]);
  expect(made.exitCode, made.stderr).toBe(0);
  bundleFile = made.stdout.trim();
  expect(((await fs.stat(bundleFile)).mode & 0o777).toString(8)).toBe('600');
  bundle = JSON.parse(await fs.readFile(bundleFile, 'utf8'));
  expect(bundle.monitor).toEqual({ host: MON, port });
  expect(bundle.dataHosts).toEqual([A]);
  expect(Buffer.from(bundle.password, 'base64url').length * 8).toBeGreaterThanOrEqual(128);
  const { X509Certificate } = await import('node:crypto');
  const leaf = new X509Certificate(bundle.certificate);
  expect(leaf.checkIP(MON)).toBe(MON);
  expect(leaf.verify(new X509Certificate(bundle.ca).publicKey)).toBe(true);
  expect(bundle.certificate.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
  expect(made.stderr).not.toContain(bundle.password);
}, 60_000);

test('ha monitor refuses a bundle others can read (3), one for another host (3), an invalid one field by field (2): nothing written', async () => {
  const open = await ha('monitor', '--bundle', await variant('open', bundle, 0o644));
  expect(open.exitCode, open.stderr).toBe(3);
  expect(open.stderr).toContain('can be read by its group and others (mode 0644)');
  const other = await ha('monitor', '--bundle', await variant('other', { ...bundle, monitor: { host: '192.0.2.55', port } }), '--dry-run');
  expect(other.exitCode, other.stderr).toBe(3);
  expect(other.stderr).toContain('this host has no address 192.0.2.55: the bundle is for another host');
  const bad = await ha('monitor', '--bundle', await variant('bad', { ...bundle, dataHosts: ['0.0.0.0/0\nhost all all 0.0.0.0/0 trust'], password: 'short' }));
  expect(bad.exitCode, bad.stderr).toBe(2);
  expect(bad.stderr).toContain('dataHosts[0]: not an IP address');
  expect(bad.stderr).toContain('password: not a password knocker made');
  await nothingOnMonitor();
}, 60_000);

test('ha monitor --dry-run prints the plan (with --hostname, --listen, --skip-pg-hba, verify-full) and changes nothing', async () => {
  const dry = await ha('monitor', '--bundle', bundleFile, '--dry-run', '--json');
  expect(dry.exitCode, dry.stderr).toBe(0);
  const plan = JSON.parse(dry.stdout);
  const create = plan.plan.steps.find((s: { title: string }) => s.title.includes('pg_autoctl create monitor'));
  const line = create.details.join(' ');
  for (const flag of [`--hostname ${MON}`, `--listen ${MON}`, '--skip-pg-hba', '--ssl-mode verify-full']) expect(line).toContain(flag);
  expect(line).not.toContain('--ssl-self-signed');
  expect(line).not.toContain('--auth');
  expect(dry.stdout).not.toContain(bundle.password);
  await nothingOnMonitor();
}, 60_000);

test('a failure (the port taken) is undone: exit 4, no folder, no process left', async () => {
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(port, MON, resolve));
  try {
    const failed = await ha('monitor', '--bundle', bundleFile);
    expect(failed.exitCode, failed.stderr).toBe(4);
  } finally {
    await new Promise((resolve) => squatter.close(resolve));
  }
  await nothingOnMonitor();
  expect(await runningMonitor(monitorFiles(rootM))).toBeUndefined();
}, 120_000);

test('ha monitor: verify-full TLS with the passfile answers as autoctl_node; no password, no TLS and trust are all refused; no outside address discovery', async () => {
  const made = await ha('monitor', '--bundle', bundleFile);
  expect(made.exitCode, made.stderr).toBe(0);
  expect(made.stdout.trim()).toBe(`postgres://autoctl_node@${MON}:${port}/pg_auto_failover?sslmode=verify-full`);
  const files = monitorFiles(rootM);
  expect(await runningMonitor(files)).toBeDefined();
  for (const f of [files.passfile, files.key]) expect(((await fs.stat(f)).mode & 0o777).toString(8)).toBe('600');

  const state = await autoctl(rootM, files, ['show', 'state', '--pgdata', files.data]);
  expect(state.exitCode).toBe(0);

  // libpq, as the keepers will: verify-full with the cluster's CA and the passfile (no password given).
  const conninfo = `host=${MON} port=${port} dbname=pg_auto_failover user=autoctl_node sslmode=verify-full sslrootcert=${files.ca}`;
  const psql = (info: string, passfile = files.passfile) => autoctlPsql(rootM, files, info, passfile);
  const ok = await psql(conninfo);
  expect(ok.exitCode, ok.stderr).toBe(0);
  expect(ok.stdout.trim()).toBe('t|autoctl_node');
  const noPassword = await psql(conninfo, '/dev/null');
  expect(noPassword.exitCode).not.toBe(0);
  expect(noPassword.stderr).toMatch(/password/);
  const plain = await psql(`host=${MON} port=${port} dbname=pg_auto_failover user=autoctl_node sslmode=disable`);
  expect(plain.exitCode).not.toBe(0);
  expect(plain.stderr).toContain('no pg_hba.conf entry');

  // From the data host's address (node-postgres binds it): TLS verified, password from the bundle.
  const url = parseDatabaseUrl(`postgres://autoctl_node:${encodeURIComponent(bundle.password)}@${MON}:${port}/pg_auto_failover?sslmode=verify-full`);
  if (!url.ok) throw new Error(url.error);
  const client = await connect(url.value, { sourceAddress: A, ca: bundle.ca });
  expect((await client.query("SELECT extversion FROM pg_extension WHERE extname = 'pgautofailover'")).rows[0].extversion).toMatch(/^2\./);
  await client.end();
  await expect(connect({ ...url.value, password: undefined }, { sourceAddress: A, ca: bundle.ca })).rejects.toThrow();

  const hba = await fs.readFile(path.join(files.data, 'pg_hba.conf'), 'utf8');
  // No rule trusts anyone (the header comment may say that initdb had left trust).
  expect(hba.split('\n').filter((line) => !line.startsWith('#'))).not.toContainEqual(expect.stringMatching(/\btrust\b/));
  const verifier = await withAdminSession(
    { socketDir: files.socket, port, osUser: 'postgres', database: 'postgres' },
    undefined,
    async (s) =>
      (
        await s.query<{ p: string; sb: string }>(
          "SELECT rolpassword AS p, current_setting('shared_buffers') AS sb FROM pg_authid WHERE rolname = 'autoctl_node'",
        )
      ).rows[0]!,
  );
  expect(verifier.p).toMatch(/^SCRAM-SHA-256\$/);
  expect(verifier.sb).toBe('32MB');

  // Every log pg_autoctl and the monitor's PostgreSQL wrote: no address discovery, no clear password.
  const logs = [files.daemonLog, rootM.path(MONITOR_PATHS.log), path.join(files.data, 'startup.log')];
  for (const entry of await fs.readdir(path.join(files.data, 'log')).catch(() => [])) logs.push(path.join(files.data, 'log', entry));
  let text = '';
  for (const f of logs) text += await fs.readFile(f, 'utf8').catch(() => '');
  expect(text.length).toBeGreaterThan(0);
  expect(text).not.toContain('Connecting to');
  expect(text).not.toContain('8.8.8.8');
  expect(text).not.toContain(bundle.password);
}, 180_000);

/** psql as the database user with exactly the given passfile (libpq, as pg_autoctl connects). */
async function autoctlPsql(_root: Root, files: ReturnType<typeof monitorFiles>, info: string, passfile: string) {
  const { run: runCommand } = await import('../../src/system/run.js');
  const { findPgBinaries } = await import('../../src/postgres/cluster.js');
  const bin = (await findPgBinaries())!.dir;
  return runCommand(
    'env',
    [
      '-i',
      `PGPASSFILE=${passfile}`,
      `HOME=${files.dir}`,
      path.join(bin, 'psql'),
      '-XAtw',
      '-d',
      info,
      '-c',
      'SELECT ssl, usename FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE pid = pg_backend_pid()',
    ],
    { asUser: 'postgres', allowFailure: true, cwd: files.dir },
  );
}
