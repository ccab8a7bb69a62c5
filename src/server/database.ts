// The node's link to its database: one connection for the health check and the heartbeat, and a
// small pool for pages. The check's answer is cached for a second, so health checks at any rate
// cost at most one query a second; the heartbeat rides on a check every few seconds. When the
// database goes away the node keeps running, reports it unreachable, and reconnects by itself
// with backoff (never faster than the backoff allows, however many health checks arrive).
import type pg from 'pg';
import { connect, describeConnectError, type ConnectOptions } from '../postgres/connect.js';
import type { DatabaseUrl } from '../postgres/url.js';
import type { ServerLog } from './log.js';
import { CHECK_SQL, HEARTBEAT_SQL, holderOf, markStopped, register, type CheckRow, type Registration } from './registry.js';

export interface DatabaseHealth {
  reachable: boolean;
  /** The database's schema version; undefined when unreachable or it holds no Knocknoc schema. */
  schemaVersion: number | undefined;
}

export interface MonitorTimings {
  /** How long a check's answer is reused. */
  cacheMs: number;
  /** How long a health check waits for a check in progress before calling the database unreachable. */
  waitMs: number;
  heartbeatMs: number;
  /** First and longest pause between reconnection attempts. */
  backoffMinMs: number;
  backoffMaxMs: number;
}

export const DEFAULT_TIMINGS: MonitorTimings = { cacheMs: 1000, waitMs: 1000, heartbeatMs: 5000, backoffMinMs: 250, backoffMaxMs: 5000 };

export interface MonitorOptions {
  url: DatabaseUrl;
  connect: ConnectOptions;
  me: Registration;
  log: ServerLog;
  timings?: MonitorTimings;
}

const UNREACHABLE: DatabaseHealth = { reachable: false, schemaVersion: undefined };

export class DatabaseMonitor {
  private readonly options: MonitorOptions;
  private readonly timings: MonitorTimings;
  private client: pg.Client | undefined;
  private last: DatabaseHealth;
  private checkedAt = 0;
  private lastBeatAt = 0;
  private inflight: Promise<DatabaseHealth> | undefined;
  private backoffMs = 0;
  private nextAttemptAt = 0;
  private downSince: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private nameTakenBy: string | undefined;

  /** Starts from what the node found at start-up (it has just registered); connects on the first check. */
  constructor(options: MonitorOptions, schemaVersion: number | undefined) {
    this.options = options;
    this.timings = options.timings ?? DEFAULT_TIMINGS;
    this.last = { reachable: true, schemaVersion };
    this.checkedAt = Date.now();
    this.lastBeatAt = Date.now();
    this.schedule();
  }

  /** The database's health, at most `cacheMs` old; runs (or joins) a check when it is older. */
  async health(): Promise<DatabaseHealth> {
    if (this.stopped || Date.now() - this.checkedAt < this.timings.cacheMs) return this.last;
    const check = this.check();
    let timeout: NodeJS.Timeout | undefined;
    const late = new Promise<DatabaseHealth>((resolve) => {
      timeout = setTimeout(() => {
        // A database this slow to answer a trivial query is not healthy; say so until it answers.
        this.record(UNREACHABLE);
        resolve(UNREACHABLE);
      }, this.timings.waitMs);
    });
    try {
      return await Promise.race([check, late]);
    } finally {
      clearTimeout(timeout);
    }
  }

  /** Stops checking and marks this node stopped in the registry (bounded: the database may be gone). */
  async stop(boundMs: number): Promise<{ marked: boolean; error?: string }> {
    this.stopped = true;
    clearTimeout(this.timer);
    const work = (async () => {
      await this.inflight?.catch(() => {});
      this.client ??= await this.connect();
      return markStopped(this.client, this.options.me);
    })();
    let timeout: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timeout = setTimeout(() => reject(new Error(`no answer from the database within ${boundMs} ms`)), boundMs);
    });
    try {
      return { marked: await Promise.race([work, bound]) };
    } catch (error) {
      return { marked: false, error: this.describe(error) };
    } finally {
      clearTimeout(timeout);
      const client = this.client;
      this.client = undefined;
      await client?.end().catch(() => {});
    }
  }

  private check(): Promise<DatabaseHealth> {
    this.inflight ??= this.runCheck().finally(() => {
      this.inflight = undefined;
      this.schedule();
    });
    return this.inflight;
  }

  private async runCheck(): Promise<DatabaseHealth> {
    if (!this.client) {
      if (Date.now() < this.nextAttemptAt) return this.record(UNREACHABLE);
      try {
        this.adopt(await this.connect());
      } catch (error) {
        return this.failed(error);
      }
    }
    const client = this.client!;
    const beat = Date.now() - this.lastBeatAt >= this.timings.heartbeatMs;
    try {
      const { me } = this.options;
      const result = beat
        ? await client.query<CheckRow>({ ...HEARTBEAT_SQL, values: [me.name, me.instance] })
        : await client.query<CheckRow>(CHECK_SQL);
      const row = result.rows[0]!;
      if (beat) {
        this.lastBeatAt = Date.now();
        if (row.beats === 0) await this.reclaim(client);
      }
      this.recovered();
      return this.record({ reachable: true, schemaVersion: row.schema_version ?? undefined });
    } catch (error) {
      return this.failed(error);
    }
  }

  /** A heartbeat found no row of ours: it was removed (register again), or another node took the name. */
  private async reclaim(client: pg.Client): Promise<void> {
    const { me, log } = this.options;
    const holder = await holderOf(client, me.name);
    if (!holder) {
      await register(client, me);
      log.info(`registered again as "${me.name}" (the registry had lost this server)`);
      return;
    }
    if (holder.instance !== me.instance && this.nameTakenBy !== holder.instance) {
      this.nameTakenBy = holder.instance;
      log.warn(`another node at ${holder.listen} has registered as "${me.name}": give every node its own ServerName in knocknoc.conf`);
    }
  }

  private connect(): Promise<pg.Client> {
    return connect(this.options.url, this.options.connect);
  }

  private adopt(client: pg.Client): void {
    this.client = client;
    client.on('end', () => {
      if (this.client === client) this.client = undefined;
    });
  }

  private record(health: DatabaseHealth): DatabaseHealth {
    this.last = health;
    this.checkedAt = Date.now();
    return health;
  }

  private describe(error: unknown): string {
    const code = (error as { code?: string }).code;
    // SQLSTATE classes 08 (connection) and 57 (operator intervention: shutdown) and socket errors.
    if (!code || /^(08|57P|28|3D000)/.test(code) || /^E[A-Z]+$/.test(code)) return describeConnectError(error, this.options.url).message;
    return `${(error as Error).message ?? String(error)} (SQLSTATE ${code})`;
  }

  private failed(error: unknown): DatabaseHealth {
    const client = this.client;
    this.client = undefined;
    void client?.end().catch(() => {});
    const { backoffMinMs, backoffMaxMs } = this.timings;
    this.backoffMs = this.backoffMs === 0 ? backoffMinMs : Math.min(this.backoffMs * 2, backoffMaxMs);
    // A little jitter, so nodes that lost the database together do not knock together.
    this.nextAttemptAt = Date.now() + this.backoffMs * (0.8 + Math.random() * 0.4);
    if (this.downSince === undefined) {
      this.downSince = Date.now();
      this.options.log.error(`database unreachable: ${this.options.log.scrub(this.describe(error))}; /_status answers 503 until it is back (retrying, at most every ${backoffMaxMs / 1000} s)`);
    }
    return this.record(UNREACHABLE);
  }

  private recovered(): void {
    if (this.downSince !== undefined) {
      this.options.log.info(`database reachable again after ${((Date.now() - this.downSince) / 1000).toFixed(1)} s`);
    }
    this.downSince = undefined;
    this.backoffMs = 0;
  }

  /**
   * The next check without traffic: the next heartbeat (never before the cached answer expires, so
   * that with traffic the heartbeat rides on a check and there is still one query a second at most),
   * or the next reconnection attempt.
   */
  private schedule(): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    const due = this.client
      ? Math.max(this.lastBeatAt + this.timings.heartbeatMs, this.checkedAt + this.timings.cacheMs)
      : Math.max(this.nextAttemptAt, Date.now());
    this.timer = setTimeout(() => void this.check(), Math.max(0, due - Date.now()));
  }
}
