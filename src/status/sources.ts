// The dashboard's sources, each polled on its own: the servers registry and the database's health
// (through a small pool to the shared database), every server's /_status (one probe per server in
// flight, a short timeout), and HAProxy's read-only runtime socket (a fresh connection per poll,
// so a reload is seen at once). A source that fails keeps its last data and says why; a source
// that hangs holds up nobody but itself.
import fs from 'node:fs/promises';
import type pg from 'pg';
import { parseListen } from '../config/values.js';
import { findLocalCluster, isThisHost } from '../postgres/locate.js';
import { readAllowList, remoteRoleName } from '../postgres/allow-list.js';
import { nodeAddress, readSettings, reachableAddress, type ExistingConfig } from '../haproxy/config.js';
import { showInfo, showStat } from '../haproxy/runtime.js';
import { openAdminSession } from '../postgres/admin.js';
import { describeConnectError, isSwitchError, openPoolAt, type ConnectOptions } from '../postgres/connect.js';
import { daysLeft, EXPIRY_WARNING_DAYS } from '../postgres/certificates.js';
import { readSlots, readStandbys } from '../postgres/replication.js';
import { probeTls } from '../postgres/tls-probe.js';
import { atHost, describeTarget, formatHostPort, type DatabaseUrl, type HostPort } from '../postgres/url.js';
import { MIGRATIONS_TABLE } from '../schema/index.js';
import { fetchStatus } from '../server/probe.js';
import { listServers, type RegisteredServer } from '../server/registry.js';
import { nullLogger } from '../system/log.js';
import { PATHS, type Root } from '../system/root.js';
import { isRoot } from '../system/users.js';
import type { PairSessions } from './pair-session.js';
import type { DatabaseData, DatabaseTls, HaproxyData, Probe, SlotInfo, SourceState, StandbyInfo } from './model.js';

/** One source: a poll that either gives data or fails with a message; never two polls at once. */
export class Source<T> {
  readonly state: SourceState<T>;
  private running: Promise<void> | undefined;

  constructor(
    name: SourceState<T>['name'],
    private read: () => Promise<T>,
    private readonly onChange: () => void,
  ) {
    this.state = { name, data: undefined, updatedAt: undefined, error: undefined, busy: false };
  }

  /** Reads from somewhere else from the next poll on (knocknoc.conf changed); the last data stays until then. */
  replaceRead(read: () => Promise<T>): void {
    this.read = read;
  }

  /** Starts a poll unless one is under way; resolves when the poll under way ends. */
  poll(): Promise<void> {
    if (this.running) return this.running;
    this.state.busy = true;
    this.running = this.read()
      .then(
        (data) => {
          Object.assign(this.state, { data, updatedAt: Date.now(), error: undefined, absent: undefined });
        },
        (error: unknown) => {
          if (error instanceof SourceAbsent) Object.assign(this.state, { absent: error.message, error: undefined, data: undefined });
          else this.state.error = error instanceof Error ? error.message : String(error);
        },
      )
      .finally(() => {
        this.state.busy = false;
        this.running = undefined;
        this.onChange();
      });
    return this.running;
  }
}

/** The source does not apply on this host (not an error: e.g. HAProxy is not set up here). */
export class SourceAbsent extends Error {}

// ---------------------------------------------------------------------------------------------
// The shared database: registry and health

export interface DatabaseSourceOptions {
  url: DatabaseUrl;
  connect: ConnectOptions;
  root: Root;
  /** On a host of knocker's standby pair: the replication columns read with the pair's credentials. */
  pair?: PairSessions;
}

/**
 * A pool of two connections (registry and health never wait for each other), made on first use
 * and again after a failure. With a host list, the pool is on the host target_session_attrs
 * selected; a query failing as if that server were gone (lost, shut down, read-only) drops the
 * pool, so the next poll selects again (it follows a promoted standby as the nodes do).
 */
export class DatabaseLink {
  private pool: Promise<{ pool: pg.Pool; at: HostPort }> | undefined;
  constructor(private readonly options: DatabaseSourceOptions) {}

  /** The host of the list the pool is on, once it is open. */
  at: HostPort | undefined;

  async query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    if (!this.pool) {
      const opening = openPoolAt(this.options.url, this.options.connect, { max: 2, idleTimeoutMs: 60_000 });
      opening.catch(() => {
        if (this.pool === opening) this.pool = undefined;
      });
      this.pool = opening;
    }
    const current = this.pool;
    let pool: pg.Pool;
    try {
      const opened = await current;
      pool = opened.pool;
      this.at = opened.at;
    } catch (error) {
      throw new Error(describeConnectError(error, this.options.url).message);
    }
    try {
      return await pool.query<R>(text, values);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (isSwitchError(error) && this.pool === current) {
        this.pool = undefined;
        void pool.end().catch(() => {});
      }
      // A lost server: describe it as a connection problem, as at the start.
      if (!code || /^(08|57P)/.test(code)) throw new Error(describeConnectError(error, this.at ? atHost(this.options.url, this.at) : this.options.url).message);
      throw error;
    }
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.then((p) => p.pool.end()).catch(() => {});
  }
}

export function readRegistry(link: DatabaseLink): () => Promise<RegisteredServer[]> {
  const client = { query: (text: string, values?: unknown[]) => link.query(text, values) } as unknown as Parameters<typeof listServers>[0];
  return () => listServers(client);
}

interface Basics {
  server_version: string;
  in_recovery: boolean;
  used: number;
  max: number;
  ssl: string;
}

/** How often the database's certificate is asked for: it changes only when renewed. */
const TLS_EVERY_MS = 60_000;

/**
 * The certificate the database presents, checked with the CA the connection string names (a node's
 * copy) or, on the primary, the cluster's CA. Undefined when it cannot be asked.
 */
async function readTls(options: DatabaseSourceOptions, local: boolean): Promise<DatabaseTls | undefined> {
  const { url, root } = options;
  const caFile = url.sslrootcert ?? (local ? root.path(PATHS.clusterCaCert) : undefined);
  const ca = caFile ? await fs.readFile(caFile, 'utf8').catch(() => undefined) : undefined;
  const probe = await probeTls(url.host, url.port, { ...(ca ? { ca } : {}), sourceAddress: options.connect.sourceAddress, timeoutMs: 2_000 }).catch(
    () => undefined,
  );
  if (!probe) return undefined;
  if (!probe.offered) return { offered: false };
  const left = daysLeft(probe.certificate);
  return {
    offered: true,
    subject: probe.certificate.subject,
    altNames: probe.certificate.altNames,
    notAfter: probe.certificate.notAfter.toISOString(),
    daysLeft: left,
    // The host name counts where the connection checks it (a node's verify-full string); the
    // primary's own string reaches it on a local address its certificate does not name.
    verified: ca ? probe.chainVerified && (probe.hostMatches || url.sslmode !== 'verify-full') : null,
    expiring: left <= EXPIRY_WARNING_DAYS,
  };
}

/** The database's role, connections, replication and (when it is this host's) exposedb allow-list. */
export function readDatabase(link: DatabaseLink, options: DatabaseSourceOptions): () => Promise<DatabaseData> {
  const { root } = options;
  // With a host list: the cluster of the host the link is on (it changes with a promotion).
  const hbaFiles = new Map<string, Promise<string | undefined>>();
  const locals = new Map<string, Promise<boolean>>();
  let tls: { at: number; host: string; value: DatabaseTls | undefined } | undefined;
  return async () => {
    const basics = (
      await link.query<Basics>(
        `SELECT current_setting('server_version') AS server_version, pg_is_in_recovery() AS in_recovery,
                (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS used,
                current_setting('max_connections')::int AS max, current_setting('ssl') AS ssl`,
      )
    ).rows[0]!;
    // The pool is open now: the host it selected.
    const url = link.at ? atHost(options.url, link.at) : options.url;
    const key = formatHostPort(url);
    if (!locals.has(key)) locals.set(key, isThisHost(url.host));
    const local = locals.get(key)!;
    const schema = await link.query<{ version: number | null }>(`SELECT max(version) AS version FROM ${MIGRATIONS_TABLE}`).then(
      (r) => r.rows[0]?.version ?? null,
      () => null,
    );
    let standbys: StandbyInfo[] = [];
    let slots: SlotInfo[] = [];
    let upstream: DatabaseData['upstream'];
    let limited = false;
    if (!basics.in_recovery) {
      const reader = options.pair && link.at ? await options.pair.at(link.at, link) : link;
      standbys = await readStandbys(reader);
      slots = await readSlots(reader, true);
      // Without pg_monitor a login sees the rows but not their state or positions.
      limited = standbys.some((s) => s.state === null);
    } else {
      const row = (
        await link.query<{ lag_bytes: string | null; lag_seconds: number | null; receivers: number }>(
          `SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint AS lag_bytes,
                  CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                       ELSE extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8 END AS lag_seconds,
                  (SELECT count(*) FROM pg_stat_wal_receiver)::int AS receivers`,
        )
      ).rows[0]!;
      upstream = { connected: row.receivers > 0, lagBytes: row.lag_bytes === null ? null : Number(row.lag_bytes), lagSeconds: row.lag_seconds };
    }
    let allowList: DatabaseData['allowList'];
    if (await local) {
      if (!hbaFiles.has(key)) hbaFiles.set(key, findHbaFile(root, url));
      const file = await hbaFiles.get(key)!;
      if (file) {
        try {
          const allow = readAllowList(await fs.readFile(file, 'utf8'), {
            database: url.database,
            role: remoteRoleName(url.database),
            ssl: basics.ssl === 'on',
          });
          allowList = { cidrs: allow.cidrs, exposed: allow.present };
        } catch (error) {
          allowList = { error: `cannot read ${file}: ${(error as Error).message}` };
        }
      }
    }
    if (!tls || tls.host !== key || Date.now() - tls.at >= TLS_EVERY_MS)
      tls = { at: Date.now(), host: key, value: await readTls({ ...options, url }, await local) };
    const server = (await link.query<{ addr: string | null; port: number | null }>('SELECT host(inet_server_addr()) AS addr, inet_server_port() AS port'))
      .rows[0];
    const at = link.at ?? { host: url.host, port: url.port };
    return {
      target: describeTarget(options.url),
      hosts: options.url.hosts.map(formatHostPort),
      host: formatHostPort(at),
      serverAddress: server?.addr && server.port ? formatHostPort({ host: server.addr, port: server.port }) : null,
      serverVersion: basics.server_version.split(' ')[0]!,
      role: basics.in_recovery ? 'standby' : 'primary',
      connections: { used: basics.used, max: basics.max },
      standbys,
      slots,
      ...(upstream ? { upstream } : {}),
      ...(allowList ? { allowList } : {}),
      schemaVersion: schema,
      limited,
      ...(tls.value ? { tls: tls.value } : {}),
    };
  };
}

/** pg_hba.conf of this host's cluster behind `url`, asked once of the cluster itself as its owner (root only). */
async function findHbaFile(root: Root, url: DatabaseUrl): Promise<string | undefined> {
  if (!root.isSandbox && !isRoot()) return undefined;
  try {
    const cluster = await findLocalCluster(root, url, nullLogger(), { source: "knocknoc.conf's DatabaseURL", hints: [] });
    const session = await openAdminSession(cluster.access);
    try {
      return (await session.query<{ hba_file: string }>(`SELECT current_setting('hba_file') AS hba_file`)).rows[0]?.hba_file;
    } finally {
      await session.close();
    }
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// /_status of every server

/** One GET /_status on a fresh connection (as a load balancer asks), timed; never rejects. */
export async function probeStatus(address: string, timeoutMs: number): Promise<Probe> {
  const at = Date.now();
  const listen = parseListen(address);
  if (!listen.ok) return { address, at, http: undefined, latencyMs: undefined, body: undefined, error: listen.error };
  const started = performance.now();
  try {
    const reply = await fetchStatus(listen.value, timeoutMs);
    return {
      address,
      at,
      http: reply.http,
      latencyMs: performance.now() - started,
      body: reply.body,
      error: reply.body ? undefined : 'not a Knocknoc /_status answer',
    };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ECONNREFUSED' ? 'connection refused' : code === 'EHOSTUNREACH' ? 'host unreachable' : (error as Error).message;
    return { address, at, http: undefined, latencyMs: undefined, body: undefined, error: why };
  }
}

/** Where a registered server is asked for its /_status; undefined for a wildcard Listen of another host. */
export function probeAddress(listen: string, isLocalNode: boolean): string | undefined {
  const parsed = parseListen(listen);
  if (!parsed.ok) return undefined;
  const wildcard = parsed.value.host === '0.0.0.0' || parsed.value.host === '::';
  if (wildcard && !isLocalNode) return undefined;
  return nodeAddress({ host: reachableAddress(parsed.value), port: parsed.value.port });
}

/**
 * Probes every target at once, at most one probe per server in flight: a server whose last probe
 * still hangs keeps its previous answer until that probe times out.
 */
export class Prober {
  private readonly results = new Map<string, Probe>();
  private readonly inFlight = new Map<string, Promise<void>>();
  /** Probes under way, and those waiting for a slot: 200 started at once timed mostly this process's own queue. */
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly timeoutMs: () => number,
    private readonly maxConcurrent = 32,
  ) {}

  private async slot<T>(work: () => Promise<T>): Promise<T> {
    if (this.active >= this.maxConcurrent) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active += 1;
    try {
      return await work();
    } finally {
      this.active -= 1;
      this.waiting.shift()?.();
    }
  }

  async probeAll(targets: Map<string, string>): Promise<Map<string, Probe>> {
    for (const name of this.results.keys()) if (!targets.has(name)) this.results.delete(name);
    const waits: Promise<void>[] = [];
    for (const [name, address] of targets) {
      let running = this.inFlight.get(name);
      if (!running) {
        running = this.slot(() => probeStatus(address, this.timeoutMs())).then((probe) => {
          if (targets.has(name)) this.results.set(name, probe);
          this.inFlight.delete(name);
        });
        this.inFlight.set(name, running);
      }
      waits.push(running);
    }
    await Promise.all(waits);
    return new Map(this.results);
  }
}

// ---------------------------------------------------------------------------------------------
// HAProxy

export interface HaproxySourceOptions {
  statusSocket: string;
  confFile: string;
  timeoutMs: () => number;
}

export function readHaproxy(options: HaproxySourceOptions): () => Promise<HaproxyData> {
  // The configuration is read again only when it changed (a setup, add or remove rewrote it).
  let read: { stamp: string; existing: ExistingConfig } | undefined;
  const settingsNow = async (): Promise<ExistingConfig> => {
    const stat = await fs.stat(options.confFile).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (!stat) return readSettings(undefined);
    const stamp = `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
    if (read?.stamp !== stamp) read = { stamp, existing: readSettings(await fs.readFile(options.confFile, 'utf8')) };
    return read.existing;
  };
  return async () => {
    const existing = await settingsNow();
    if (existing.kind === 'none') throw new SourceAbsent(`HAProxy is not set up on this host (no ${options.confFile})`);
    if (existing.kind === 'foreign') throw new SourceAbsent(`${options.confFile} was not written by knocker`);
    if (existing.kind === 'unreadable') throw new Error(`${options.confFile}: ${existing.problem}`);
    const settings = existing.settings;
    // A fresh connection for each command: one kept open would stay with the old worker after a reload.
    const [info, stat] = await Promise.all([showInfo(options.statusSocket, options.timeoutMs()), showStat(options.statusSocket)]);
    return {
      version: info.version,
      pid: info.pid,
      uptimeSeconds: info.uptimeSeconds,
      servers: stat.servers,
      configured: settings.nodes.map((n) => ({ name: n.name, address: nodeAddress(n), backup: n.backup })),
      bind: `${settings.tls ? 'https' : 'http'}://${nodeAddress({ host: settings.bind.host, port: settings.bind.port })}`,
    };
  };
}
