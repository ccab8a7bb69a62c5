// knocker ha monitor --bundle FILE: on the third host, the pg_auto_failover monitor of an automatic
// pair. One plan through the one runner: the monitor's folder (TLS files from the bundle, a
// passfile, its own XDG folders), `pg_autoctl create monitor` told its address (--hostname,
// --listen: it never discovers it by connecting out) with --skip-pg-hba and verify-full TLS from
// the cluster's CA, then pg_hba.conf rewritten (initdb left trust), a tuning override after
// pg_autoctl's include, `pg_autoctl run` started (a daemon under a sandbox root, its systemd unit on
// a host), and autoctl_node's password set as a SCRAM verifier (the monitor logs DDL).
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { PreflightError } from '../errors.js';
import { executeQuoted, withAdminSession } from '../postgres/admin.js';
import { findPgBinaries } from '../postgres/cluster.js';
import { scramVerifier } from '../postgres/scram.js';
import type { Output } from '../shared/output.js';
import type { Logger } from '../system/log.js';
import type { Plan, Step } from '../system/plan.js';
import type { Root } from '../system/root.js';
import { run, which } from '../system/run.js';
import { runningDaemon, startDaemon, stopDaemon, systemctl } from '../system/service.js';
import { withRun, type RunFlags } from '../system/runner.js';
import { isRoot, lookupUser, type OsUser } from '../system/users.js';
import { waitFor } from '../system/wait.js';
import { readMonitorBundle, type MonitorBundle } from './bundle.js';
import { autoctlEnvironment, DB_USER, runAutoctl } from './keeper.js';
import { monitorTimeoutLines } from './timeouts.js';

export const MONITOR_PATHS = {
  /** The monitor's folder, the database user's (0700): PGDATA's parent must be (pg_autoctl renames in it). */
  dir: '/var/lib/knocknoc/ha-monitor',
  log: '/var/log/knocknoc/ha.log',
  /** Under a sandbox root: `pg_autoctl run`'s output. */
  daemonLog: '/var/log/knocknoc/ha-monitor.log',
  unit: '/etc/systemd/system/pgautofailover.service',
} as const;

export const MONITOR_DATABASE = 'pg_auto_failover';
export const MONITOR_ROLE = 'autoctl_node';
const IDENT_MAP = 'knocker_pgaf';

/** Everything the monitor's files are, from the folder. */
export function monitorFiles(root: Root) {
  const dir = root.path(MONITOR_PATHS.dir);
  return {
    dir,
    data: path.join(dir, 'data'),
    tls: path.join(dir, 'tls'),
    ca: path.join(dir, 'tls', 'ca.crt'),
    cert: path.join(dir, 'tls', 'server.crt'),
    key: path.join(dir, 'tls', 'server.key'),
    passfile: path.join(dir, 'pgpass'),
    xdg: path.join(dir, 'xdg'),
    socket: path.join(dir, 'run'),
    pidFile: path.join(dir, 'pg_autoctl.pid'),
    daemonLog: root.path(MONITOR_PATHS.daemonLog),
  };
}
type Files = ReturnType<typeof monitorFiles>;

/** What pg_autoctl's environment is made of, on the monitor and on a data host alike. */
export interface AutoctlFiles {
  /** Its working folder (HOME, cwd), the database user's. */
  dir: string;
  xdg: string;
  passfile: string;
  /** Under a sandbox root: the PostgreSQL's socket folder (PG_REGRESS_SOCK_DIR). */
  socket: string;
}

/**
 * The environment pg_autoctl runs with: nothing inherited (no PG* variable of knocker's own), its
 * own XDG folders (two nodes on one machine never share state), the passfile; under a sandbox root
 * the socket folder (pg_autoctl's PG_REGRESS_SOCK_DIR hook: a root's socket is not the host's).
 */
export function autoctlEnv(root: Root, files: AutoctlFiles): Record<string, string> {
  return autoctlEnvironment({ home: files.dir, xdg: files.xdg, passfile: files.passfile, ...(root.isSandbox ? { socket: files.socket } : {}) });
}

/** pg_autoctl in the environment of `files` (runAutoctl: as the database user, env -i). */
export function autoctl(root: Root, files: AutoctlFiles, args: string[], log?: Logger, allowFailure = false) {
  return runAutoctl(autoctlEnv(root, files), args, { log, allowFailure, timeoutMs: 120_000, cwd: files.dir });
}

/** The socket folder of the monitor's PostgreSQL. */
export function socketDir(root: Root, files: Files): string {
  return root.isSandbox ? files.socket : '/var/run/postgresql';
}

/** pg_hba.conf of the monitor: nothing trusted; the data hosts over TLS with SCRAM only. */
export function monitorHba(dataHosts: string[], sandbox: boolean): string {
  const cidr = (h: string) => `${h}/${net.isIPv6(h) ? 128 : 32}`;
  return [
    '# Written by knocker ha monitor (pg_autoctl was given --skip-pg-hba; initdb had left trust).',
    '# TYPE  DATABASE          USER          ADDRESS  METHOD',
    'local   all               postgres               peer',
    `local   ${MONITOR_DATABASE}  ${MONITOR_ROLE}           peer map=${IDENT_MAP}`,
    ...dataHosts.map((h) => `hostssl ${MONITOR_DATABASE}  ${MONITOR_ROLE}  ${cidr(h)}  scram-sha-256`),
    // A sandbox root's "hosts" share one machine: libpq's connections to 127.0.0.x leave from 127.0.0.1.
    ...(sandbox
      ? ['# sandbox root: loopback connections leave from 127.0.0.1', `hostssl ${MONITOR_DATABASE}  ${MONITOR_ROLE}  127.0.0.1/32  scram-sha-256`]
      : []),
    '',
  ].join('\n');
}

/** Appended after pg_autoctl's include (later lines win): it sized memory from the host's RAM. */
export const TUNING = [
  '',
  "# knocker ha monitor: a small monitor (pg_autoctl's include sized these from the host's memory)",
  "shared_buffers = '32MB'",
  "effective_cache_size = '128MB'",
  "work_mem = '4MB'",
  "maintenance_work_mem = '64MB'",
  '',
].join('\n');

/** Writes a new file with `mode`, owned by `user` (the database user) when given. */
export async function ownedWrite(file: string, content: string, mode: number, user: OsUser | undefined): Promise<void> {
  await fs.writeFile(file, content, { mode, flag: 'wx' });
  await fs.chmod(file, mode);
  if (user) await fs.chown(file, user.uid, user.gid);
}

/** Makes a new folder (0700), owned by `user` when given. */
export async function ownedDir(dir: string, user: OsUser | undefined): Promise<void> {
  await fs.mkdir(dir, { mode: 0o700 });
  if (user) await fs.chown(dir, user.uid, user.gid);
}

function folderStep(files: Files, bundle: MonitorBundle, user: OsUser | undefined): Step {
  return {
    kind: 'file',
    title: `Create ${files.dir} (mode 0700, ${DB_USER}): the monitor's TLS files from the bundle, a passfile (0600), its own XDG folders`,
    details: [`${files.cert}: the certificate for ${bundle.monitor.host} (leaf + CA)`, `${files.key} (0600)`, `${files.ca}`, `${files.passfile} (0600)`],
    changes: true,
    async apply() {
      await fs.mkdir(path.dirname(files.dir), { recursive: true, mode: 0o755 });
      await ownedDir(files.dir, user);
      for (const sub of [files.tls, files.xdg, files.socket, ...['config', 'share', 'run'].map((d) => path.join(files.xdg, d))]) await ownedDir(sub, user);
      await ownedWrite(files.ca, bundle.ca, 0o644, user);
      await ownedWrite(files.cert, bundle.certificate, 0o644, user);
      await ownedWrite(files.key, bundle.key, 0o600, user);
      const { host, port } = bundle.monitor;
      await ownedWrite(
        files.passfile,
        `${host.includes(':') ? host.replace(/:/g, '\\:') : host}:${port}:${MONITOR_DATABASE}:${MONITOR_ROLE}:${bundle.password}\n`,
        0o600,
        user,
      );
    },
    async undo() {
      await fs.rm(files.dir, { recursive: true, force: true });
    },
  };
}

async function pgCtl(): Promise<string> {
  const bins = await findPgBinaries();
  if (!bins) throw new PreflightError('PostgreSQL is not installed on this host', ['apt-get install postgresql-15-auto-failover']);
  return path.join(bins.dir, 'pg_ctl');
}

/** pg_ctl stop of the PostgreSQL in `dataDir`, when it runs (pg_autoctl may have left it running). */
export async function stopPostgres(ctl: string, dataDir: string, log: Logger, mode: 'fast' | 'immediate'): Promise<void> {
  if (!(await fs.stat(path.join(dataDir, 'postmaster.pid')).catch(() => undefined))) return;
  await run(ctl, ['stop', '-D', dataDir, '-m', mode, '-w'], { asUser: DB_USER, log, allowFailure: true, withoutPgEnv: true, timeoutMs: 90_000 });
}

function createStep(root: Root, files: Files, bundle: MonitorBundle, ctl: string, log: Logger): Step {
  const { host, port } = bundle.monitor;
  const args = [
    'create',
    'monitor',
    '--pgdata',
    files.data,
    '--pgport',
    String(port),
    '--pgctl',
    ctl,
    '--hostname',
    host,
    '--listen',
    host,
    '--skip-pg-hba',
    '--ssl-ca-file',
    files.ca,
    '--server-cert',
    files.cert,
    '--server-key',
    files.key,
    '--ssl-mode',
    'verify-full',
  ];
  return {
    kind: 'command',
    title: `Create the monitor's PostgreSQL on ${host}:${port} (pg_autoctl create monitor; TLS verify-full with the cluster's CA)`,
    details: [`pg_autoctl ${args.join(' ')}`],
    changes: true,
    async apply() {
      await autoctl(root, files, args, log);
      // It may leave its PostgreSQL running: stopped here, so pg_hba.conf is rewritten before anyone connects.
      await stopPostgres(ctl, files.data, log, 'fast');
    },
    async undo() {
      await stopPostgres(ctl, files.data, log, 'immediate');
    },
  };
}

function configStep(root: Root, files: Files, bundle: MonitorBundle): Step {
  const hba = path.join(files.data, 'pg_hba.conf');
  return {
    kind: 'file',
    title: `Rewrite ${hba} (no trust: peer locally, hostssl scram-sha-256 for ${bundle.dataHosts.join(', ')}), map postgres to ${MONITOR_ROLE}, a small tuning after pg_autoctl's include`,
    details: monitorHba(bundle.dataHosts, root.isSandbox).trimEnd().split('\n').concat(TUNING.trim().split('\n'), monitorTimeoutLines()),
    changes: true,
    async apply() {
      const user = await lookupUser(DB_USER);
      await fs.writeFile(hba, monitorHba(bundle.dataHosts, root.isSandbox), { mode: 0o600 });
      await fs.appendFile(path.join(files.data, 'pg_ident.conf'), `${IDENT_MAP}  ${DB_USER}  ${MONITOR_ROLE}\n`);
      await fs.appendFile(path.join(files.data, 'postgresql.conf'), `${TUNING}${monitorTimeoutLines().join('\n')}\n`);
      if (user) for (const f of ['pg_hba.conf', 'pg_ident.conf', 'postgresql.conf']) await fs.chown(path.join(files.data, f), user.uid, user.gid);
    },
    async undo() {
      // The folder goes with the first step's undo.
    },
  };
}

/** The pid of the monitor's `pg_autoctl run` under a sandbox root, while it runs (known by its data directory). */
export function runningMonitor(files: Files): Promise<number | undefined> {
  return runningDaemon(files.pidFile, files.data);
}

/** Stops the sandbox daemon: SIGTERM (pg_autoctl stops its PostgreSQL), SIGKILL of its group after `graceMs`. */
export async function stopMonitor(files: Files, graceMs = 30_000, log?: Logger): Promise<void> {
  await stopDaemon(files.pidFile, graceMs, log, 'SIGTERM', { mark: files.data, group: true });
}

/** `pg_autoctl run` as a daemon of a sandbox root (as the database user), known by its PGDATA. */
export async function startAutoctlDaemon(root: Root, files: AutoctlFiles & { data: string; pidFile: string; daemonLog: string }, log?: Logger): Promise<void> {
  const user = await lookupUser(DB_USER);
  await startDaemon(
    {
      program: 'pg_autoctl',
      args: ['run', '--pgdata', files.data],
      pidFile: files.pidFile,
      logFile: files.daemonLog,
      cwd: files.dir,
      env: autoctlEnv(root, files),
      ...(user && isRoot() ? { user } : {}),
      mark: files.data,
    },
    log,
  );
}

/** The unit pg_autoctl generates, told the environment it needs (its passfile, XDG folders). */
export async function systemdUnit(root: Root, files: Files, log: Logger): Promise<string> {
  const unit = (await autoctl(root, files, ['-q', 'show', 'systemd', '--pgdata', files.data], log)).stdout;
  if (!/^\[Service\]$/m.test(unit)) throw new Error('pg_autoctl show systemd printed no [Service] section');
  const env = Object.entries(autoctlEnv(root, files))
    .filter(([k]) => k !== 'PATH' && k !== 'LANG')
    .map(([k, v]) => `Environment=${k}=${v}`)
    .join('\n');
  return `${unit.trimEnd().replace(/^\[Service\]$/m, `[Service]\n${env}`)}\n`;
}

function startStep(root: Root, files: Files, port: number, log: Logger): Step {
  const unitFile = root.path(MONITOR_PATHS.unit);
  return {
    kind: 'service',
    title: root.isSandbox
      ? `Start pg_autoctl run (a daemon of this root; output in ${files.daemonLog})`
      : `Write ${unitFile} (pg_autoctl show systemd, with PGPASSFILE and its XDG folders) and start it`,
    details: [`pg_autoctl run --pgdata ${files.data}`],
    changes: true,
    async apply() {
      if (root.isSandbox) {
        await startAutoctlDaemon(root, files, log);
      } else {
        await fs.writeFile(unitFile, await systemdUnit(root, files, log), { mode: 0o644 });
        await systemctl(['daemon-reload'], log);
        await systemctl(['enable', '--now', 'pgautofailover.service'], log);
      }
      // Ready when its PostgreSQL answers the local superuser over the socket.
      await waitFor(
        "the monitor's PostgreSQL to accept connections",
        async (probe) => {
          if (root.isSandbox && (await runningMonitor(files)) === undefined) throw new Error(`pg_autoctl run exited; see ${files.daemonLog}`);
          return withAdminSession({ socketDir: socketDir(root, files), port, osUser: DB_USER, database: MONITOR_DATABASE }, undefined, async () => true).catch(
            (error: unknown) => {
              probe.seen(String(error));
              return undefined;
            },
          );
        },
        { timeoutMs: 60_000, everyMs: 200 },
      );
    },
    async undo() {
      if (root.isSandbox) await stopMonitor(files, undefined, log);
      else {
        await run('systemctl', ['disable', '--now', 'pgautofailover.service'], { log, allowFailure: true });
        await fs.rm(unitFile, { force: true });
        await run('systemctl', ['daemon-reload'], { log, allowFailure: true });
      }
    },
  };
}

function passwordStep(root: Root, files: Files, bundle: MonitorBundle, log: Logger): Step {
  return {
    kind: 'database',
    title: `Set ${MONITOR_ROLE}'s password (a SCRAM-SHA-256 verifier made here: the clear password never reaches the monitor, which logs DDL)`,
    details: [`ALTER ROLE ${MONITOR_ROLE} PASSWORD 'SCRAM-SHA-256$…'`],
    changes: true,
    async apply() {
      await withAdminSession({ socketDir: socketDir(root, files), port: bundle.monitor.port, osUser: DB_USER, database: MONITOR_DATABASE }, log, (session) =>
        executeQuoted(session, 'ALTER ROLE %I PASSWORD %L', [MONITOR_ROLE, scramVerifier(bundle.password)]),
      );
    },
    async undo() {
      // The role goes with the cluster (the first step's undo).
    },
  };
}

export interface MonitorRequest extends RunFlags {
  bundle: string;
}

export async function haMonitor(root: Root, request: MonitorRequest, io: Output): Promise<number> {
  return withRun(root, { command: 'knocker ha monitor', logFile: MONITOR_PATHS.log }, request, io, async (r) => {
    const bundle = await readMonitorBundle(request.bundle);
    r.log.addSecret(bundle.password);
    if (!root.isSandbox && !isRoot())
      throw new PreflightError('knocker ha monitor creates a PostgreSQL cluster and a service: run it as root', ['sudo knocker ha monitor --bundle FILE']);
    if (!(await which('pg_autoctl')))
      throw new PreflightError('pg_autoctl is not installed', ['apt-get install pg-auto-failover-cli postgresql-15-auto-failover']);
    const user = await lookupUser(DB_USER);
    if (!user) throw new PreflightError(`there is no OS user ${DB_USER}`, ["install PostgreSQL's package (it creates it)"]);
    const files = monitorFiles(root);
    if (await fs.stat(files.dir).catch(() => undefined))
      throw new PreflightError(`${files.dir} exists: this host has a monitor already`, ['knocker ha monitor creates it once']);
    const ctl = await pgCtl();
    const owner = isRoot() ? user : undefined;
    const plan: Plan = {
      title: `The pg_auto_failover monitor on ${bundle.monitor.host}:${bundle.monitor.port}`,
      steps: [
        folderStep(files, bundle, owner),
        createStep(root, files, bundle, ctl, r.log),
        configStep(root, files, bundle),
        startStep(root, files, bundle.monitor.port, r.log),
        passwordStep(root, files, bundle, r.log),
      ],
      warnings: [],
    };
    const applied = await r.showOrApply(plan, {
      details: { monitor: `${bundle.monitor.host}:${bundle.monitor.port}`, dataHosts: bundle.dataHosts, dir: files.dir },
    });
    if (applied)
      io.out(
        `postgres://${MONITOR_ROLE}@${bundle.monitor.host.includes(':') ? `[${bundle.monitor.host}]` : bundle.monitor.host}:${bundle.monitor.port}/${MONITOR_DATABASE}?sslmode=verify-full`,
      );
    return 0;
  });
}
