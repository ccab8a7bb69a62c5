// knocker ha adopt [--bundle FILE]: on a data host of knocker's pair, hands the running PostgreSQL to
// pg_auto_failover in place (no re-clone), as research/pgaf-experiment.md §1.3–1.6 found it works.
// On the primary (no --bundle) it reads the monitor bundle it made (exposedb --add-monitor) and ends
// by writing the standby's data-host bundle (0600); on the standby, --bundle is that file. One plan
// through the one runner, undone on failure: PostgreSQL back as it was (running; writable on the
// primary, streaming with knocker's own settings on the standby).
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type pg from 'pg';
import { PreflightError, UsageError } from '../errors.js';
import { executeQuoted, withAdminSession } from '../postgres/admin.js';
import { connect } from '../postgres/connect.js';
import { hbaName, withManagedBlock } from '../postgres/hba.js';
import { generatePassword, scramVerifier } from '../postgres/scram.js';
import { parseDatabaseUrl } from '../postgres/url.js';
import type { Output } from '../shared/output.js';
import { refuseReadable } from '../standby/bundle.js';
import { existingNode, readState, startNode, stopNode, type Endpoint, type LocalNode, type PairState } from '../standby/node.js';
import { slotName, STANDBY_PATHS } from '../standby/paths.js';
import { readIfExists, writeFileAtomic } from '../system/files.js';
import type { Logger } from '../system/log.js';
import type { Plan, Step } from '../system/plan.js';
import { PATHS, type Root } from '../system/root.js';
import { which } from '../system/run.js';
import { runningDaemon, stopDaemon } from '../system/service.js';
import { withRun, type RunFlags } from '../system/runner.js';
import { isRoot, lookupUser, type OsUser } from '../system/users.js';
import { waitFor } from '../system/wait.js';
import { dataHostBundleFile, monitorBundleProblems, readDataHostBundle, type DataHostBundle, type MonitorBundle } from './bundle.js';
import { autoctl, MONITOR_DATABASE, MONITOR_ROLE, ownedDir, ownedWrite, startAutoctlDaemon, stopPostgres } from './monitor.js';
import { DB_USER } from './keeper.js';
import { HA_NODE_STATE, readHaNodeState, writeHaNodeState } from './node-state.js';
import { NETWORK_PARTITION_TIMEOUT_S, readMonitorTimeouts, splitBrainGuard } from './timeouts.js';

export const HA_PATHS = {
  /** The database user's (0700): pg_autoctl's XDG folders, the CA, the passfile, node.json. */
  dir: '/var/lib/knocknoc/ha',
  log: '/var/log/knocknoc/ha.log',
  /** Under a sandbox root: `pg_autoctl run`'s output. */
  keeperLog: '/var/log/knocknoc/ha-keeper.log',
} as const;

/** pg_auto_failover's replication role (pg_autoctl creates it on the primary, without a password). */
export const REPLICATOR = 'pgautofailover_replicator';
/** knocker's block of pg_hba.conf for pg_auto_failover (pg_autoctl is given --skip-pg-hba). */
export const HA_BLOCK = 'knocker ha';
/** The sizes pg_autoctl's include would set from the host's RAM: pinned to what was in effect. */
const PINNED = ['shared_buffers', 'effective_cache_size', 'work_mem', 'maintenance_work_mem'];
const PINNED_MARK = '# knocker ha adopt: the sizes in effect before (pg_autoctl sized them from the host RAM)';
const AUTOCTL_FILES = ['postgresql-auto-failover.conf', 'postgresql-auto-failover-standby.conf'];
const SAVED = ['postgresql.conf', 'postgresql.auto.conf', 'pg_hba.conf'];

/** Everything of this data host's keeper, from the folder. */
export function nodeFiles(root: Root) {
  const dir = root.path(HA_PATHS.dir);
  return {
    dir,
    xdg: path.join(dir, 'xdg'),
    passfile: path.join(dir, 'pgpass'),
    ca: path.join(dir, 'ca.crt'),
    /** The configuration files as they were before pg_autoctl's create (the undo puts them back). */
    before: path.join(dir, 'before'),
    socket: root.path(PATHS.pgSocketDir),
    data: root.path(PATHS.pgData),
    pidFile: path.join(dir, 'pg_autoctl.pid'),
    daemonLog: root.path(HA_PATHS.keeperLog),
  };
}
export type NodeFiles = ReturnType<typeof nodeFiles>;

/** pg_autoctl's name of the node at `host` (--name). */
export function nodeName(host: string): string {
  return `knocker_${host.replace(/[^A-Za-z0-9]/g, '_')}`.slice(0, 63);
}

function hostInUri(host: string): string {
  return net.isIPv6(host) ? `[${host}]` : host;
}

/** The monitor's URI as the keeper is given it: verify-full with the CA, no password (the passfile has it). */
export function monitorUri(monitor: Endpoint, caFile: string): string {
  return `postgres://${MONITOR_ROLE}@${hostInUri(monitor.host)}:${monitor.port}/${MONITOR_DATABASE}?sslmode=verify-full&sslrootcert=${caFile}`;
}

const passHost = (host: string) => host.replace(/:/g, '\\:');

function passfileText(monitor: Endpoint, monitorPassword: string, replicationPassword: string): string {
  return [
    `${passHost(monitor.host)}:${monitor.port}:${MONITOR_DATABASE}:${MONITOR_ROLE}:${monitorPassword}`,
    `*:*:*:${REPLICATOR}:${replicationPassword}`,
    '',
  ].join('\n');
}

/**
 * The `knocker ha` block of pg_hba.conf, the same on both data hosts (pg_rewind copies the file from
 * the new primary at a rejoin): pgautofailover_replicator from both data hosts over TLS with SCRAM,
 * for replication and for the databases pg_rewind (postgres) and pg_autoctl (the app's) use.
 */
export function haHbaLines(dataHosts: string[], database: string, sandbox: boolean): string[] {
  const sources = [...dataHosts];
  const loopback = sandbox && dataHosts.some((h) => h.startsWith('127.'));
  if (loopback && !sources.includes('127.0.0.1')) sources.push('127.0.0.1');
  const cidr = (h: string) => `${h}/${net.isIPv6(h) ? 128 : 32}`;
  return [
    `# pg_auto_failover's replication (knocker ha adopt): ${REPLICATOR} from the data hosts only.`,
    ...(loopback ? ['# 127.0.0.1: libpq tools connect from it on a one-machine sandbox (no source-address option).'] : []),
    ...sources.flatMap((h) => [
      `hostssl  replication  ${REPLICATOR}  ${cidr(h)}  scram-sha-256`,
      `hostssl  postgres,${hbaName(database)}  ${REPLICATOR}  ${cidr(h)}  scram-sha-256`,
    ]),
  ];
}

const NEUTRAL_MARK =
  '# knocker ha adopt: not here (pg_rewind copies this file from the peer); pg_autoctl gives postgres its own (-h; -k under a sandbox root):';
/** Settings that name files: made relative to PGDATA, the same on both hosts. */
const FILE_SETTINGS = ['ssl_cert_file', 'ssl_key_file', 'ssl_ca_file', 'ssl_crl_file'];

/**
 * Leaves the configuration files pg_rewind copies from the new primary at a rejoin that diverged
 * host-neutral (research #8): knocker's listen and socket lines go from both postgresql.conf and
 * postgresql.auto.conf (pg_autoctl passes them on postgres's command line; knocker reads this host's
 * address from node.json), TLS files are named relative to PGDATA (the same layout on both hosts),
 * and pg_hba.conf's lines for one data host get their twin for the other. Run while
 * PostgreSQL is stopped; the create step's undo puts the saved files back.
 */
export async function makeHostNeutral(data: string, dataHosts: string[]): Promise<void> {
  // pg_hba.conf: a line for one data host only (knocker's standby block, the cluster's own address)
  // gets its twin for the other, so the file means the same on both hosts.
  const hbaFile = path.join(data, 'pg_hba.conf');
  const hba = await readIfExists(hbaFile);
  if (hba !== undefined) {
    const cidrs = dataHosts.map((h) => `${h}/${net.isIPv6(h) ? 128 : 32}`);
    const lines = hba.split('\n');
    const out: string[] = [];
    for (const line of lines) {
      out.push(line);
      if (/^\s*#/.test(line)) continue;
      const named = cidrs.filter((c) => line.split(/\s+/).includes(c));
      if (named.length !== 1) continue;
      for (const other of cidrs.filter((c) => c !== named[0])) {
        const twin = line.split(named[0]!).join(other);
        if (!lines.includes(twin) && !out.includes(twin)) out.push(twin);
      }
    }
    if (out.join('\n') !== hba) await fs.writeFile(hbaFile, out.join('\n'));
  }
  for (const file of ['postgresql.conf', 'postgresql.auto.conf']) {
    const full = path.join(data, file);
    const text = await readIfExists(full);
    if (text === undefined) continue;
    const neutral = text
      .replace(/^(listen_addresses|unix_socket_directories)\s*=.*$/gm, (_line, name: string) => `${NEUTRAL_MARK} ${name}`)
      .replace(/^(\w+) = '([^']*)'$/gm, (line, name: string, value: string) =>
        FILE_SETTINGS.includes(name) && path.isAbsolute(value) ? `${name} = '${path.relative(data, value).replace(/'/g, "''")}'` : line,
      );
    if (neutral !== text) await fs.writeFile(full, neutral);
  }
}

/** Paths handed to pg_autoctl and libpq inside a URI or a config file: nothing that needs quoting. */
function plainPath(file: string): string {
  if (!/^\/[A-Za-z0-9._/+-]+$/.test(file))
    throw new PreflightError(`${file}: pg_autoctl is given this path in a URI; it may hold only letters, digits and . _ / + -`);
  return file;
}

interface Adoption {
  role: 'primary' | 'standby';
  node: LocalNode;
  self: Endpoint;
  database: string;
  monitor: Endpoint;
  monitorPassword: string;
  replicationPassword: string;
  ca: string;
  /** Both data hosts, the primary first (the same pg_hba.conf lines on each). */
  dataHosts: string[];
  /** The pair's other host: the standby (on the primary) or the primary (on the standby). */
  peer?: Endpoint;
  state?: PairState;
  pinned: Record<string, string>;
  /** On the standby: knocker's own settings, put back by the undo. */
  conninfo?: { primaryConninfo: string; primarySlotName: string };
}

// ---- the steps -------------------------------------------------------------------------------

function folderStep(files: NodeFiles, a: Adoption, user: OsUser | undefined): Step {
  return {
    kind: 'file',
    title: `Create ${files.dir} (mode 0700, ${DB_USER}): pg_autoctl's own XDG folders, the cluster's CA, a passfile (0600) with ${MONITOR_ROLE}'s and ${REPLICATOR}'s passwords`,
    details: [`${files.passfile} (0600): ${a.monitor.host}:${a.monitor.port}:${MONITOR_DATABASE}:${MONITOR_ROLE}:…, *:*:*:${REPLICATOR}:…`, files.ca],
    changes: true,
    async apply() {
      await fs.mkdir(path.dirname(files.dir), { recursive: true, mode: 0o755 });
      await ownedDir(files.dir, user);
      for (const sub of [files.xdg, files.before, ...['config', 'share', 'run'].map((d) => path.join(files.xdg, d))]) await ownedDir(sub, user);
      await ownedWrite(files.ca, a.ca, 0o644, user);
      await ownedWrite(files.passfile, passfileText(a.monitor, a.monitorPassword, a.replicationPassword), 0o600, user);
    },
    async undo() {
      await fs.rm(files.dir, { recursive: true, force: true });
    },
  };
}

function resetStep(a: Adoption, log: Logger): Step {
  const saved = a.conninfo!;
  return {
    kind: 'database',
    title:
      "Reset knocker's primary_conninfo and primary_slot_name (ALTER SYSTEM RESET): left in place they override pg_autoctl's and every commit on the primary waits",
    details: ['ALTER SYSTEM RESET primary_conninfo', 'ALTER SYSTEM RESET primary_slot_name', 'SELECT pg_reload_conf()'],
    changes: true,
    async apply() {
      await withAdminSession(a.node.access, log, async (s) => {
        await s.query('ALTER SYSTEM RESET primary_conninfo');
        await s.query('ALTER SYSTEM RESET primary_slot_name');
        await s.query('SELECT pg_reload_conf()');
      });
    },
    async undo() {
      await withAdminSession(a.node.access, log, async (s) => {
        await executeQuoted(s, 'ALTER SYSTEM SET primary_conninfo = %L', [saved.primaryConninfo]);
        await executeQuoted(s, 'ALTER SYSTEM SET primary_slot_name = %L', [saved.primarySlotName]);
        await s.query('SELECT pg_reload_conf()');
      });
    },
  };
}

/** Waits until the local PostgreSQL is what it was: a writable primary, or a standby in recovery. */
async function waitLocalRole(a: Adoption, timeoutMs: number, alive?: () => Promise<void>): Promise<void> {
  await waitFor(
    a.role === 'primary' ? 'PostgreSQL to take writes' : 'PostgreSQL to run as a standby',
    async (p) => {
      await alive?.();
      const row = await withAdminSession(
        a.node.access,
        undefined,
        async (s) => (await s.query<{ r: boolean; ro: string }>("SELECT pg_is_in_recovery() AS r, current_setting('transaction_read_only') AS ro")).rows[0],
      ).catch((error: unknown) => {
        p.seen(String(error));
        return undefined;
      });
      if (!row) return undefined;
      const ok = a.role === 'primary' ? !row.r && row.ro === 'off' : row.r;
      if (!ok) p.seen(row.r ? 'in recovery' : `read-only ${row.ro}`);
      return ok ? true : undefined;
    },
    { timeoutMs, everyMs: 100 },
  );
}

function stopStep(a: Adoption, log: Logger): Step {
  const parent = path.dirname(a.node.cluster.dataDir);
  let before: { uid: number; gid: number } | undefined;
  return {
    kind: 'service',
    title: `Stop PostgreSQL (writes pause until pg_autoctl has started it, ≈3 s) and give ${parent} to ${DB_USER} (pg_autoctl renames folders in PGDATA's parent)`,
    details: [`pg_ctl stop -m fast -D ${a.node.cluster.dataDir}`, `chown ${DB_USER} ${parent}`],
    changes: true,
    async apply() {
      const stat = await fs.stat(parent);
      before = { uid: stat.uid, gid: stat.gid };
      await fs.chown(parent, a.node.owner.uid, a.node.owner.gid);
      await stopNode(a.node, log, 'fast');
    },
    async undo() {
      if (before) await fs.chown(parent, before.uid, before.gid);
      await startNode(a.node, log);
      await waitLocalRole(a, 60_000);
    },
  };
}

/** pg_autoctl create postgres's arguments: the address always given, TLS from the cluster's CA, no pg_hba.conf edits, the monitor without password. */
function createArgs(files: NodeFiles, a: Adoption, ctl: string): string[] {
  return [
    'create',
    'postgres',
    '--pgdata',
    files.data,
    '--pgctl',
    ctl,
    '--pghost',
    files.socket,
    '--pgport',
    String(a.self.port),
    '--listen',
    a.self.host,
    '--hostname',
    a.self.host,
    '--name',
    nodeName(a.self.host),
    '--dbname',
    a.database,
    '--skip-pg-hba',
    '--ssl-ca-file',
    files.ca,
    '--server-cert',
    a.node.root.path(PATHS.pgTlsCert),
    '--server-key',
    a.node.root.path(PATHS.pgTlsKey),
    '--ssl-mode',
    'verify-full',
    '--monitor',
    monitorUri(a.monitor, files.ca),
  ];
}

function createStep(files: NodeFiles, a: Adoption, log: Logger): Step {
  const ctl = path.join(a.node.cluster.bin.dir, 'pg_ctl');
  const args = createArgs(files, a, ctl);
  const data = a.node.cluster.dataDir;
  const parent = path.dirname(data);
  const hbaLines = haHbaLines(a.dataHosts, a.database, a.node.root.isSandbox);
  const pinned = Object.entries(a.pinned).map(([k, v]) => `${k} = '${v.replace(/'/g, "''")}'`);
  let hadSignal = false;
  let hadBackupDir = false;
  return {
    kind: 'command',
    title: `Register this PostgreSQL with the monitor as ${nodeName(a.self.host)} (pg_autoctl create postgres; --skip-pg-hba, TLS verify-full with the cluster's CA), its partition timeout, the sizes in effect pinned, the ${HA_BLOCK} block of pg_hba.conf`,
    details: [
      `pg_autoctl ${args.join(' ')}`,
      `pg_autoctl config set timeout.network_partition_timeout ${NETWORK_PARTITION_TIMEOUT_S}`,
      ...pinned.map((l) => `postgresql.conf (after pg_autoctl's include): ${l}`),
      ...hbaLines.map((l) => `pg_hba.conf: ${l}`),
    ],
    changes: true,
    async apply() {
      const user = await lookupUser(DB_USER);
      for (const f of SAVED) await fs.copyFile(path.join(data, f), path.join(files.before, f));
      hadSignal = Boolean(await fs.stat(path.join(data, 'standby.signal')).catch(() => undefined));
      hadBackupDir = Boolean(await fs.stat(path.join(parent, 'backup')).catch(() => undefined));
      await autoctl(a.node.root, files, args, log);
      // It may leave its PostgreSQL running: stopped here, so that the settings below apply from the keeper's start.
      await stopPostgres(ctl, data, log, 'fast');
      await autoctl(a.node.root, files, ['config', 'set', '--pgdata', data, 'timeout.network_partition_timeout', String(NETWORK_PARTITION_TIMEOUT_S)], log);
      await makeHostNeutral(data, a.dataHosts);
      await fs.appendFile(path.join(data, 'postgresql.conf'), `\n${PINNED_MARK}\n${pinned.join('\n')}\n`);
      const hbaFile = path.join(data, 'pg_hba.conf');
      const current = (await readIfExists(hbaFile)) ?? '';
      await writeFileAtomic(hbaFile, withManagedBlock(current, HA_BLOCK, hbaLines), {
        mode: 0o600,
        backup: false,
        ...(user ? { uid: user.uid, gid: user.gid } : {}),
      });
      if (user) await fs.chown(path.join(data, 'postgresql.conf'), user.uid, user.gid);
    },
    async undo() {
      await stopPostgres(ctl, data, log, 'fast');
      // The node leaves the monitor's formation (its PGDATA is kept: no --destroy).
      const dropped = await autoctl(a.node.root, files, ['drop', 'node', '--pgdata', data], log, true).catch((error: unknown) => ({
        exitCode: 1,
        stderr: String(error),
      }));
      await stopPostgres(ctl, data, log, 'fast');
      for (const f of SAVED) {
        const saved = path.join(files.before, f);
        if (await fs.stat(saved).catch(() => undefined)) await fs.copyFile(saved, path.join(data, f));
      }
      for (const f of AUTOCTL_FILES) await fs.rm(path.join(data, f), { force: true });
      if (!hadSignal) await fs.rm(path.join(data, 'standby.signal'), { force: true });
      else await fs.writeFile(path.join(data, 'standby.signal'), '', { mode: 0o600 });
      if (!hadBackupDir) await fs.rm(path.join(parent, 'backup'), { recursive: true, force: true });
      // Asked of the monitor: a create that failed may have left no node there (drop node then fails), or one.
      const client = await monitorClient(a);
      try {
        if (await registered(client, nodeName(a.self.host)))
          throw new Error(
            `the monitor still has node ${nodeName(a.self.host)} (pg_autoctl drop node: ${dropped.stderr.trim()}); drop it on the monitor by hand`,
          );
      } finally {
        await client.end().catch(() => {});
      }
    },
  };
}

/** This node as the monitor shows it (pg_autoctl show state --json, asked from this host). */
export async function monitorView(root: Root, files: NodeFiles, name: string): Promise<{ current: string; assigned: string } | undefined> {
  const shown = await autoctl(root, files, ['show', 'state', '--pgdata', files.data, '--json'], undefined, true);
  if (shown.exitCode !== 0) throw new Error(shown.stderr.trim().split('\n').pop() ?? 'pg_autoctl show state failed');
  const nodes = JSON.parse(shown.stdout) as Array<Record<string, unknown>>;
  const me = nodes.find((n) => n.nodename === name);
  return me ? { current: String(me.current_group_state), assigned: String(me.assigned_group_state) } : undefined;
}

const SETTLED: Record<Adoption['role'], string[]> = { primary: ['single', 'wait_primary', 'primary'], standby: ['secondary'] };

/** `pg_autoctl run` of this data host, started as a daemon of the sandbox root. */
export function startKeeper(root: Root, log?: Logger): Promise<void> {
  return startAutoctlDaemon(root, nodeFiles(root), log);
}

export function runningKeeper(root: Root): Promise<number | undefined> {
  const files = nodeFiles(root);
  return runningDaemon(files.pidFile, files.data);
}

/** SIGTERM to the keeper (it stops its PostgreSQL), SIGKILL of its group after `graceMs`. */
export async function stopKeeper(root: Root, graceMs = 30_000, log?: Logger): Promise<void> {
  const files = nodeFiles(root);
  await stopDaemon(files.pidFile, graceMs, log, 'SIGTERM', { mark: files.data, group: true });
}

function startStep(files: NodeFiles, a: Adoption, log: Logger): Step {
  const name = nodeName(a.self.host);
  return {
    kind: 'service',
    title: `Start pg_autoctl run (a daemon of this root; output in ${files.daemonLog}); ready when the monitor shows ${name} ${SETTLED[a.role].join(' or ')}`,
    details: [`pg_autoctl run --pgdata ${files.data}`],
    changes: true,
    async apply() {
      await startKeeper(a.node.root, log);
      const alive = async () => {
        if ((await runningKeeper(a.node.root)) === undefined) throw new Error(`pg_autoctl run exited; see ${files.daemonLog}`);
      };
      await waitFor(
        `the monitor to show ${name} ${SETTLED[a.role].join(' or ')}`,
        async (p) => {
          await alive();
          const view = await monitorView(a.node.root, files, name).catch((error: unknown) => {
            p.seen(String(error));
            return undefined;
          });
          if (!view) return undefined;
          p.seen(`${view.current} (assigned ${view.assigned})`);
          return view.current === view.assigned && SETTLED[a.role].includes(view.current) ? true : undefined;
        },
        { timeoutMs: 180_000, everyMs: 250 },
      );
      await waitLocalRole(a, 60_000, alive);
    },
    async undo() {
      await stopKeeper(a.node.root, 30_000, log);
    },
  };
}

function replicatorPasswordStep(a: Adoption, log: Logger): Step {
  return {
    kind: 'database',
    title: `Set ${REPLICATOR}'s password (a SCRAM-SHA-256 verifier made here; pg_autoctl created the role without one)`,
    details: [`ALTER ROLE ${REPLICATOR} PASSWORD 'SCRAM-SHA-256$…'`],
    changes: true,
    async apply() {
      await withAdminSession(a.node.access, log, (s) => executeQuoted(s, 'ALTER ROLE %I PASSWORD %L', [REPLICATOR, scramVerifier(a.replicationPassword)]));
    },
    async undo() {
      // The keeper's undo stops this PostgreSQL; the role stays, its lines leave pg_hba.conf with the create step's undo.
    },
  };
}

/** A session on the primary as pg_auto_failover's replication role (verify-full with the CA). */
async function replicatorSession(a: Adoption): Promise<pg.Client> {
  const primary = a.peer!;
  const parsed = parseDatabaseUrl(
    `postgres://${REPLICATOR}:${encodeURIComponent(a.replicationPassword)}@${hostInUri(primary.host)}:${primary.port}/postgres?sslmode=verify-full`,
  );
  if (!parsed.ok) throw new Error(parsed.error);
  const client = await connect(parsed.value, { sourceAddress: a.self.host, ca: a.ca, connectTimeoutMs: 5000, queryTimeoutMs: 10_000 });
  client.on('error', () => {});
  return client;
}

function dropSlotStep(a: Adoption, log: Logger): Step {
  const slot = slotName(a.self.host);
  return {
    kind: 'database',
    title: `Drop knocker's replication slot ${slot} on the primary ${a.peer!.host} (unused now, it would hold WAL for ever), as ${REPLICATOR}`,
    details: [`SELECT pg_drop_replication_slot('${slot}')`],
    changes: true,
    async apply() {
      const client = await replicatorSession(a);
      try {
        await waitFor(
          `knocker's slot ${slot} on the primary to be released by this standby`,
          async (p) => {
            const row = (await client.query<{ active: boolean }>('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0];
            if (!row) return true;
            if (row.active) {
              p.seen('still active');
              return undefined;
            }
            await client.query('SELECT pg_drop_replication_slot($1)', [slot]);
            log.info(`dropped replication slot ${slot} on ${a.peer!.host}`);
            return true;
          },
          { timeoutMs: 60_000, everyMs: 200 },
        );
      } finally {
        await client.end().catch(() => {});
      }
    },
    async undo() {
      const client = await replicatorSession(a);
      try {
        await client.query('SELECT pg_create_physical_replication_slot($1, true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)', [
          slot,
        ]);
      } finally {
        await client.end().catch(() => {});
      }
    },
  };
}

function stateStep(files: NodeFiles, a: Adoption): Step {
  const root = a.node.root;
  const manual = root.path(STANDBY_PATHS.state);
  const aside = `${manual}.before-ha`;
  return {
    kind: 'file',
    title: `Write ${root.path(HA_NODE_STATE)} (this host's PostgreSQL is pg_auto_failover's) and set knocker's manual pair state aside (${aside})`,
    details: [`mv ${manual} ${aside}`],
    changes: true,
    async apply() {
      if (await fs.stat(manual).catch(() => undefined)) await fs.rename(manual, aside);
      await writeHaNodeState(root, {
        version: 1,
        mode: 'automatic',
        name: nodeName(a.self.host),
        address: a.self.host,
        monitorUri: monitorUri(a.monitor, files.ca),
        pgdata: files.data,
        xdg: files.xdg,
        passfile: files.passfile,
        pidFile: files.pidFile,
        adoptedAt: new Date().toISOString(),
      });
    },
    async undo() {
      await fs.rm(root.path(HA_NODE_STATE), { force: true });
      if (await fs.stat(aside).catch(() => undefined)) await fs.rename(aside, manual);
    },
  };
}

function bundleStep(a: Adoption, file: string): Step {
  const standby = a.peer!;
  return {
    kind: 'file',
    title: `Create ${file} (mode 0600): for the standby ${standby.host}, the monitor's address and the two roles' passwords (not the monitor's key)`,
    details: [`then on ${standby.host}: knocker ha adopt --bundle FILE`],
    changes: true,
    async apply() {
      const bundle: DataHostBundle = {
        version: 1,
        kind: 'pg_auto_failover data host',
        monitor: a.monitor,
        node: standby,
        primary: a.self,
        monitorPassword: a.monitorPassword,
        replicationPassword: a.replicationPassword,
        ca: a.ca,
      };
      await writeFileAtomic(file, `${JSON.stringify(bundle, null, 2)}\n`, { mode: 0o600, backup: false });
    },
    async undo() {
      await fs.rm(file, { force: true });
    },
  };
}

// ---- preflight -------------------------------------------------------------------------------

/** On the primary: the one monitor bundle it made (exposedb --add-monitor), checked field by field. */
async function ownMonitorBundle(root: Root): Promise<MonitorBundle> {
  const dir = root.path('/opt/knocknoc/etc');
  const names = (await fs.readdir(dir).catch(() => [] as string[])).filter((f) => /^monitor-[A-Za-z0-9._]+\.json$/.test(f));
  if (names.length !== 1)
    throw new PreflightError(
      names.length === 0 ? `there is no monitor bundle in ${dir}` : `there are ${names.length} monitor bundles in ${dir} (${names.join(', ')})`,
      ['make the monitor first: knocker exposedb --add-monitor ADDR here, knocker ha monitor --bundle FILE on the third host; keep one bundle'],
    );
  const file = path.join(dir, names[0]!);
  await refuseReadable(file, "autoctl_node's password", { make: 'knocker exposedb --add-monitor ADDR', remake: 'knocker exposedb --add-monitor ADDR' });
  let parsed: unknown;
  try {
    parsed = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (error) {
    throw new UsageError(`${file} is not a monitor bundle: ${(error as Error).message}`);
  }
  const problems = monitorBundleProblems(parsed);
  if (problems.length > 0) throw new UsageError(`${file} is not a valid monitor bundle`, problems);
  return parsed as MonitorBundle;
}

/** A session on the monitor as this host's keeper opens one (verify-full, autoctl_node, from this host's address). */
async function monitorClient(a: Pick<Adoption, 'monitor' | 'monitorPassword' | 'ca' | 'self'>): Promise<pg.Client> {
  const parsed = parseDatabaseUrl(
    `postgres://${MONITOR_ROLE}:${encodeURIComponent(a.monitorPassword)}@${hostInUri(a.monitor.host)}:${a.monitor.port}/${MONITOR_DATABASE}?sslmode=verify-full`,
  );
  if (!parsed.ok) throw new Error(parsed.error);
  try {
    const client = await connect(parsed.value, { sourceAddress: a.self.host, ca: a.ca, connectTimeoutMs: 5000, queryTimeoutMs: 10_000 });
    client.on('error', () => {});
    return client;
  } catch (error) {
    throw new PreflightError(`the monitor ${a.monitor.host}:${a.monitor.port} does not take ${MONITOR_ROLE} from this host: ${(error as Error).message}`, [
      'is knocker ha monitor running on the third host, with this host among its data hosts?',
    ]);
  }
}

/** Whether the monitor's formation has this host's node (pgautofailover.get_nodes, which autoctl_node may call). */
async function registered(client: pg.Client, name: string): Promise<boolean> {
  const rows = (await client.query<{ n: string }>("SELECT node_name AS n FROM pgautofailover.get_nodes('default')")).rows;
  return rows.some((r) => r.n === name);
}

/** Asks the monitor: reachable, password right, this node not registered yet, timeouts that keep the guard. */
async function checkMonitor(a: Pick<Adoption, 'monitor' | 'monitorPassword' | 'ca' | 'self'>): Promise<void> {
  const client = await monitorClient(a);
  try {
    if (await registered(client, nodeName(a.self.host)))
      throw new PreflightError(`the monitor has a node ${nodeName(a.self.host)} already`, [
        'a cut-off run left it: pg_autoctl drop node on the monitor, then run knocker ha adopt again',
      ]);
    const timeouts = await readMonitorTimeouts(async (sql, values) => (await client.query<{ v: string }>(sql, values)).rows);
    const guard = splitBrainGuard(timeouts, NETWORK_PARTITION_TIMEOUT_S);
    if (!guard.sound)
      throw new PreflightError(
        `the monitor's timeouts break the split-brain guard: a cut-off primary stops by ${guard.fencedByMs} ms, the monitor may promote from ${guard.promoteNotBeforeMs} ms`,
        ['set pgautofailover.node_considered_unhealthy_timeout + primary_demote_timeout above that on the monitor (README, "Automatic failover")'],
      );
  } finally {
    await client.end().catch(() => {});
  }
}

async function pinnedSizes(node: LocalNode): Promise<Record<string, string>> {
  return withAdminSession(node.access, undefined, async (s) => {
    const out: Record<string, string> = {};
    for (const name of PINNED) out[name] = (await s.query<{ v: string }>('SELECT current_setting($1) AS v', [name])).rows[0]!.v;
    return out;
  });
}

async function inRecovery(node: LocalNode): Promise<boolean> {
  return withAdminSession(node.access, undefined, async (s) => (await s.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r);
}

async function commonPreflight(root: Root): Promise<LocalNode> {
  if (!root.isSandbox)
    throw new PreflightError(
      "knocker ha adopt works on a --root's private cluster only for now; a host's Debian cluster (/etc/postgresql) is not handled yet",
      ['README, "Automatic failover (three hosts)": not yet'],
    );
  if (!(await which('pg_autoctl')))
    throw new PreflightError('pg_autoctl is not installed', ['apt-get install pg-auto-failover-cli postgresql-15-auto-failover']);
  const existing = await readHaNodeState(root);
  if (existing) throw new PreflightError(`this host's PostgreSQL is pg_auto_failover's already (node ${existing.name})`, [`see ${root.path(HA_NODE_STATE)}`]);
  if (await fs.stat(root.path(HA_PATHS.dir)).catch(() => undefined))
    throw new PreflightError(`${root.path(HA_PATHS.dir)} exists: a run was cut off here`, ['look at it, remove it, and run knocker ha adopt again']);
  const node = await existingNode(root);
  if (!(await fs.stat(root.path(PATHS.pgTlsCert)).catch(() => undefined)))
    throw new PreflightError('this PostgreSQL has no TLS certificate from the cluster CA', ['knocker exposedb --init first (on the primary)']);
  const running = await withAdminSession(node.access, undefined, async () => true).catch(() => false);
  if (!running) throw new PreflightError('this PostgreSQL is not running', ['knocker service start postgres']);
  return node;
}

async function planPrimary(root: Root, log: Logger): Promise<Adoption> {
  const node = await commonPreflight(root);
  if (await inRecovery(node))
    throw new PreflightError('this PostgreSQL is a standby', ['on the standby: knocker ha adopt --bundle FILE (the file ha adopt printed on the primary)']);
  const state = await readState(root);
  const self = state?.self ?? { host: node.cluster.host, port: node.cluster.port };
  const bundle = await ownMonitorBundle(root);
  for (const host of [self.host, ...(state ? [state.peer.host] : [])])
    if (!bundle.dataHosts.includes(host))
      throw new PreflightError(`the monitor lets in ${bundle.dataHosts.join(', ')}, not ${host}`, [
        'make the monitor bundle again after the standby was added',
      ]);
  const replicationPassword = generatePassword();
  log.addSecret(replicationPassword);
  log.addSecret(bundle.password);
  const a: Adoption = {
    role: 'primary',
    node,
    self,
    database: state?.database ?? 'knocknoc',
    monitor: bundle.monitor,
    monitorPassword: bundle.password,
    replicationPassword,
    ca: bundle.ca,
    dataHosts: [self.host, ...(state ? [state.peer.host] : [])],
    peer: state?.peer,
    state,
    pinned: await pinnedSizes(node),
  };
  await checkMonitor(a);
  return a;
}

async function planStandby(root: Root, file: string, log: Logger): Promise<Adoption> {
  const bundle = await readDataHostBundle(file);
  log.addSecret(bundle.monitorPassword);
  log.addSecret(bundle.replicationPassword);
  const node = await commonPreflight(root);
  if (!(await inRecovery(node))) throw new PreflightError('this PostgreSQL is not a standby', ['on the primary: knocker ha adopt (no --bundle)']);
  const state = await readState(root);
  if (!state) throw new PreflightError("this standby is not one of knocker's pair (no state file)", ['knocker standby init --bundle FILE first']);
  if (state.peer.host !== bundle.primary.host || state.self.host !== bundle.node.host)
    throw new PreflightError(
      `the bundle is for the pair ${bundle.primary.host} → ${bundle.node.host}, this host is ${state.self.host} following ${state.peer.host}`,
    );
  const conninfo = await withAdminSession(node.access, undefined, async (s) => {
    const row = (await s.query<{ c: string; s: string }>("SELECT current_setting('primary_conninfo') AS c, current_setting('primary_slot_name') AS s"))
      .rows[0]!;
    return { primaryConninfo: row.c, primarySlotName: row.s };
  });
  const a: Adoption = {
    role: 'standby',
    node,
    self: state.self,
    database: state.database,
    monitor: bundle.monitor,
    monitorPassword: bundle.monitorPassword,
    replicationPassword: bundle.replicationPassword,
    ca: bundle.ca,
    dataHosts: [bundle.primary.host, state.self.host],
    peer: state.peer,
    state,
    pinned: await pinnedSizes(node),
    conninfo,
  };
  await checkMonitor(a);
  // The primary was adopted first: its replication role takes this password (else the keeper's create would loop on it).
  const client = await replicatorSession(a).catch((error: unknown) => {
    throw new PreflightError(`the primary ${state.peer.host} does not take ${REPLICATOR} from this host: ${(error as Error).message}`, [
      'run knocker ha adopt on the primary first, and use the bundle it printed',
    ]);
  });
  await client.end().catch(() => {});
  return a;
}

export interface AdoptRequest extends RunFlags {
  /** On the standby: the data-host bundle the primary's ha adopt wrote. */
  bundle?: string;
}

export async function haAdopt(root: Root, request: AdoptRequest, io: Output): Promise<number> {
  return withRun(root, { command: 'knocker ha adopt', logFile: HA_PATHS.log }, request, io, async (r) => {
    const a = request.bundle ? await planStandby(root, request.bundle, r.log) : await planPrimary(root, r.log);
    const files = nodeFiles(root);
    plainPath(files.ca);
    const owner = isRoot() ? await lookupUser(DB_USER) : undefined;
    const bundleFile = a.role === 'primary' && a.peer ? dataHostBundleFile(root, a.peer.host) : undefined;
    const steps: Step[] = [folderStep(files, a, owner)];
    if (a.role === 'standby') steps.push(resetStep(a, r.log));
    steps.push(stopStep(a, r.log), createStep(files, a, r.log), startStep(files, a, r.log));
    if (a.role === 'primary') steps.push(replicatorPasswordStep(a, r.log));
    if (a.role === 'standby') steps.push(dropSlotStep(a, r.log));
    steps.push(stateStep(files, a));
    if (bundleFile) steps.push(bundleStep(a, bundleFile));
    const plan: Plan = {
      title: `Hand this ${a.role} (${a.self.host}:${a.self.port}) to pg_auto_failover, monitor ${a.monitor.host}:${a.monitor.port}`,
      steps,
      warnings: ['writes pause while PostgreSQL is stopped and pg_autoctl starts it (≈3 s on the primary)'],
    };
    const applied = await r.showOrApply(plan, {
      details: {
        role: a.role,
        name: nodeName(a.self.host),
        monitor: `${a.monitor.host}:${a.monitor.port}`,
        dataHosts: a.dataHosts,
        bundle: bundleFile ?? null,
      },
    });
    if (applied && bundleFile) {
      io.err(`Copy this file (mode 0600: it holds two passwords) to ${a.peer!.host}, then run there: knocker ha adopt --bundle FILE`);
      io.out(bundleFile);
    }
    return 0;
  });
}
