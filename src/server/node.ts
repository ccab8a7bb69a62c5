// A web node's life: start (migrate the shared database under the advisory lock, register, listen)
// and a graceful stop (stop accepting, finish what is in flight within a bound, mark the node
// stopped in the registry).
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { formatListen } from '../config/values.js';
import { connectSelecting, describeConnectError, openPoolAt, sourceAddressFor, type ConnectOptions, type Selected } from '../postgres/connect.js';
import { formatHostPort, type DatabaseUrl, type HostPort } from '../postgres/url.js';
import { migrate, type Release } from '../schema/index.js';
import { probeListen } from '../system/host.js';
import { plural } from '../system/units.js';
import { TrustedForwarders } from './client-address.js';
import type { ServerConfig } from './config.js';
import { DatabaseMonitor, DEFAULT_TIMINGS, type MonitorTimings } from './database.js';
import { HealthCheckTally, requestHandler, type NodeFacts } from './http.js';
import type { ServerLog } from './log.js';
import { listServers, markStopped, onlineHolder, register, stillHeartbeating, type Registration } from './registry.js';

/** A start that cannot go on: exit 2 (configuration) or 3 (listen address, database). */
export class StartError extends Error {
  readonly exitCode: 2 | 3;
  readonly hints: string[];
  constructor(message: string, exitCode: 2 | 3, hints: string[] = []) {
    super(message);
    this.exitCode = exitCode;
    this.hints = hints;
  }
}

export interface NodeOptions {
  config: ServerConfig;
  release: Release;
  log: ServerLog;
  /** How long a stop waits for requests in flight before cutting them off. */
  drainMs?: number;
  timings?: MonitorTimings;
}

export interface RunningNode {
  /** Stops gracefully; the same promise for every caller. */
  stop(reason: string): Promise<void>;
}

const DRAIN_MS = 10_000;
const MARK_STOPPED_MS = 3_000;

function listenProblem(code: string, config: ServerConfig): StartError {
  const { host, port } = config.listen;
  const why: Record<string, string> = {
    EADDRINUSE: `port ${port} is already in use on ${host}`,
    EADDRNOTAVAIL: `${host} is not an address of this host`,
    EACCES: `listening on port ${port} needs more privileges`,
  };
  return new StartError(`cannot listen on ${config.listenText}: ${why[code] ?? code}`, 3, [
    code === 'EADDRINUSE'
      ? 'is another knocknoc-server running? (`knocker service status`; `ss -ltnp` shows what listens there)'
      : `check Listen in ${config.file}`,
  ]);
}

async function openDatabase(config: ServerConfig, options: ConnectOptions): Promise<Selected> {
  try {
    return await connectSelecting(config.databaseUrl, options);
  } catch (error) {
    const problem = describeConnectError(error, config.databaseUrl);
    throw new StartError(`cannot reach the database: ${problem.message}`, 3, [...problem.hints, `the connection string is DatabaseURL in ${config.file}`]);
  }
}

/**
 * The pages' pool, on the host the monitor uses: a new pool when that host changes (the old one
 * ended), and a query refused at once, saying why, while there is none (a switch under way) —
 * never one left waiting on a server that is gone. Each query is bounded by statement_timeout and
 * query_timeout; a query that fails as if the server were gone tells the monitor (`onSwitchError`).
 */
class PagePool {
  private pool: pg.Pool | undefined;
  private at: HostPort | undefined;
  private opening: Promise<void> | undefined;
  private switchError: ((error: unknown) => void) | undefined;

  constructor(
    private readonly url: DatabaseUrl,
    private readonly options: ConnectOptions,
  ) {}

  async open(at: HostPort): Promise<void> {
    const opened = await openPoolAt(this.url, this.options, { max: 4, idleTimeoutMs: 30_000 }, at);
    const old = this.pool;
    this.pool = opened.pool;
    this.at = at;
    await old?.end().catch(() => {});
  }

  follow(at: HostPort | undefined): void {
    if (at && this.at && formatHostPort(at) === formatHostPort(this.at) && this.pool) return;
    const old = this.pool;
    this.pool = undefined;
    this.at = at;
    void old?.end().catch(() => {});
    if (at) {
      const opening = this.open(at).catch(() => {
        // The monitor notices a host that does not answer, and says so; pages fail meanwhile.
      });
      this.opening = opening.finally(() => {
        if (this.opening === opening) this.opening = undefined;
      });
    }
  }

  onSwitchError(listener: (error: unknown) => void): void {
    this.switchError = listener;
  }

  async query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    await this.opening;
    const pool = this.pool;
    if (!pool) throw new Error('the database is unreachable for now (no primary selected yet; retrying)');
    try {
      return await pool.query<R>(text, values);
    } catch (error) {
      this.switchError?.(error);
      throw error;
    }
  }

  async end(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await this.opening;
    const late = this.pool as pg.Pool | undefined;
    this.pool = undefined;
    await pool?.end().catch(() => {});
    await late?.end().catch(() => {});
  }
}

export async function startNode(options: NodeOptions): Promise<RunningNode> {
  const { config, release, log } = options;
  const timings = options.timings ?? DEFAULT_TIMINGS;
  const probe = await probeListen(config.listen.host, config.listen.port);
  if (!probe.free) throw listenProblem(probe.code, config);

  const connectOptions: ConnectOptions = {
    sourceAddress: sourceAddressFor(config.listen.host, config.databaseUrl.host),
    connectTimeoutMs: 10_000,
    applicationName: `knocknoc-server ${config.serverName}`,
  };
  const me: Registration = {
    name: config.serverName,
    listen: config.listenText,
    version: release.version,
    schemaVersion: release.schemaVersion,
    instance: randomUUID(),
    heartbeatSeconds: Math.round(timings.heartbeatMs / 1000),
  };
  const selected = await openDatabase(config, connectOptions);
  const client = selected.client;
  if (config.databaseUrl.hosts.length > 1)
    log.info(
      `database ${formatHostPort(selected.at)} (the first ${config.databaseUrl.targetSessionAttrs} server of ${config.databaseUrl.hosts.map(formatHostPort).join(', ')})`,
    );
  let pool: PagePool;
  let databaseSchemaVersion: number;
  let registered = false;
  try {
    let result;
    try {
      result = await migrate(client, release.migrations, `knocknoc-server ${config.serverName} (${config.listenText})`);
    } catch (error) {
      throw new StartError(`cannot bring the database schema to version ${release.schemaVersion}: ${log.scrub((error as Error).message)}`, 3);
    }
    databaseSchemaVersion = result.to;
    if (result.applied.length > 0) {
      log.info(
        `migrated the database schema from version ${result.from} to ${result.to} (${release.migrations
          .filter((m) => result.applied.includes(m.version))
          .map((m) => `${String(m.version).padStart(3, '0')}_${m.name}.sql`)
          .join(', ')})`,
      );
    } else if (result.from > release.schemaVersion) {
      log.warn(
        `the database schema (version ${result.from}) is newer than this release expects (${release.schemaVersion}): ` +
          'this node runs, but /_status reports it out of step (503) until it is upgraded',
      );
    } else {
      log.info(`database schema at version ${result.from}: nothing to migrate`);
    }
    // Two nodes with one ServerName would pass for one in the registry: the other would vanish
    // from `knocker status` and from the upgrade's checks. A holder still heartbeating is another
    // node; one that is silent is this node's own row from before a crash, taken over.
    const holder = await onlineHolder(client, me);
    if (holder && (await stillHeartbeating(client, me.name, holder))) {
      throw new StartError(`another node (at ${holder.listen}) is online as "${me.name}": two nodes cannot share a ServerName`, 3, [
        `give this node a name of its own (ServerName in ${config.file}), then start it again`,
      ]);
    }
    if (holder) log.info(`"${me.name}" was still listed online at ${holder.listen} but sends no heartbeat: taking the name over`);
    await register(client, me);
    registered = true;
    pool = new PagePool(config.databaseUrl, { ...connectOptions, statementTimeoutMs: 5_000, queryTimeoutMs: 8_000 });
    await pool.open(selected.at);
  } catch (error) {
    // Not starting after all: do not stay listed as running.
    if (registered) await markStopped(client, me).catch(() => {});
    if (error instanceof StartError) throw error;
    throw new StartError(`cannot use the database: ${log.scrub(describeConnectError(error, config.databaseUrl).message)}`, 3);
  } finally {
    await client.end().catch(() => {});
  }

  const monitor = new DatabaseMonitor(
    { url: config.databaseUrl, connect: { ...connectOptions, connectTimeoutMs: 3_000, statementTimeoutMs: 2_000, queryTimeoutMs: 3_000 }, me, log, timings },
    databaseSchemaVersion,
    selected.at,
  );
  // Pages follow the monitor: to the host it selected, or fail at once while it has none.
  monitor.onHostChange((at) => pool.follow(at));
  pool.onSwitchError((error) => monitor.suspect(error));
  const node: NodeFacts = {
    name: config.serverName,
    listen: config.listenText,
    version: release.version,
    schemaVersion: release.schemaVersion,
    startedAt: Date.now(),
  };
  let stopping = false;
  let inFlight = 0;
  let drained: (() => void) | undefined;
  const healthChecks = new HealthCheckTally(log);
  const handler = requestHandler({
    healthChecks,
    node,
    trusted: new TrustedForwarders(config.trustedForwarders),
    log,
    health: () => monitor.health(),
    servers: () => listServers(pool as unknown as Parameters<typeof listServers>[0]),
    stopping: () => stopping,
  });
  const server = http.createServer((req, res) => {
    inFlight += 1;
    res.on('close', () => {
      inFlight -= 1;
      if (inFlight === 0) drained?.();
    });
    handler(req, res);
  });
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

  const cleanUp = async () => {
    healthChecks.stop();
    await monitor.stop(MARK_STOPPED_MS);
    await pool.end().catch(() => {});
  };
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: config.listen.host, port: config.listen.port, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    await cleanUp();
    throw listenProblem((error as NodeJS.ErrnoException).code ?? 'EUNKNOWN', config);
  }
  const inStep = databaseSchemaVersion === release.schemaVersion ? 'in step' : 'OUT OF STEP';
  log.info(
    `knocknoc-server "${config.serverName}" ${release.version} listening on http://${formatListen(config.listen)} ` +
      `(schema ${release.schemaVersion}, database schema ${databaseSchemaVersion}: ${inStep}); TrustedForwarders ${config.trustedForwarders.join(', ')}`,
  );

  let stopped: Promise<void> | undefined;
  const stop = async (reason: string) => {
    stopping = true;
    const bound = options.drainMs ?? DRAIN_MS;
    log.info(`${reason}: stopping; no new connections, finishing ${plural(inFlight, 'request')} in flight (at most ${bound / 1000} s)`);
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    if (inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      const finished = await Promise.race([
        new Promise<boolean>((resolve) => {
          drained = () => resolve(true);
        }),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), bound);
        }),
      ]);
      clearTimeout(timer);
      if (!finished)
        log.warn(
          `${inFlight} request${inFlight === 1 ? ' was' : 's were'} still running after ${bound / 1000} s and ${inFlight === 1 ? 'was' : 'were'} cut off`,
        );
    }
    // Keep-alive connections left idle now, or still busy past the bound, end here.
    server.closeAllConnections();
    await closed;
    healthChecks.stop();
    const { marked, error } = await monitor.stop(MARK_STOPPED_MS);
    if (marked) log.info(`marked "${config.serverName}" stopped in the registry`);
    else
      log.warn(`could not mark "${config.serverName}" stopped in the registry${error ? `: ${error}` : ''}; it will show as offline once its heartbeats stop`);
    await pool.end().catch(() => {});
    log.info('stopped');
  };
  return {
    stop(reason) {
      stopped ??= stop(reason);
      return stopped;
    },
  };
}
