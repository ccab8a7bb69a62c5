// The node's link to its database: one connection for the health check and the heartbeat, and a
// small pool for pages. The check's answer is cached for a second, so health checks at any rate
// cost at most one query a second; the heartbeat rides on a check every few seconds. When the
// database goes away the node keeps running, reports it unreachable, and reconnects by itself
// with backoff (never faster than the backoff allows, however many health checks arrive).
import type pg from 'pg';
import { connectSelecting, describeConnectError, isSwitchError, NoSuitableHostError, type ConnectOptions } from '../postgres/connect.js';
import { formatHostPort, type DatabaseUrl, type HostPort } from '../postgres/url.js';
import { seconds } from '../system/units.js';
import { waitForOrUndefined } from '../system/wait.js';
import type { ServerLog } from './log.js';
import { CHECK_SQL, HEARTBEAT_SQL, holderOf, markStopped, register, type CheckRow, type Registration } from './registry.js';

export interface DatabaseHealth {
  reachable: boolean;
  /** The database's schema version; undefined when unreachable or it holds no Knocknoc schema. */
  schemaVersion: number | undefined;
  /** The host of DatabaseURL's list in use ("host:port"); undefined when unreachable. */
  host?: string;
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
  /**
   * While a server of the list answers as a standby but none as the primary (a promotion under
   * way, or to come), reconnect every `backoffMinMs` for this long, then at most every second.
   */
  switchWindowMs: number;
  /**
   * A switch of the primary (the server in use lost, shut down or read-only; or only a standby
   * answering): for this long after the database was lost, a health check waits for the node to
   * find the primary again instead of answering 503 at once. A switchover takes well under a
   * second, so the requests of that moment are answered late rather than failed. Below HAProxy's
   * `timeout check 2s`, so a held check never counts as a timeout there.
   */
  switchHoldMs: number;
}

export const DEFAULT_TIMINGS: MonitorTimings = {
  cacheMs: 1000,
  waitMs: 1000,
  heartbeatMs: 5000,
  backoffMinMs: 250,
  backoffMaxMs: 5000,
  switchWindowMs: 30_000,
  switchHoldMs: 1800,
};

export interface MonitorOptions {
  url: DatabaseUrl;
  connect: ConnectOptions;
  me: Registration;
  log: ServerLog;
  timings?: MonitorTimings;
}

const UNREACHABLE: DatabaseHealth = { reachable: false, schemaVersion: undefined, host: undefined };

export class DatabaseMonitor {
  private readonly options: MonitorOptions;
  private readonly timings: MonitorTimings;
  private client: pg.Client | undefined;
  /** The host `client` is connected to, and the last one used (to say when it changed). */
  private at: HostPort | undefined;
  private lastAt: HostPort | undefined;
  /** When the database was first seen with a standby and no primary (the switch under way). */
  private switchingSince: number | undefined;
  /** When the database in use was lost to what looks like a switch of the primary (health checks wait a little then). */
  private lostToSwitchAt: number | undefined;
  private readonly listeners = new Set<(at: HostPort | undefined) => void>();
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
  constructor(options: MonitorOptions, schemaVersion: number | undefined, at: HostPort) {
    this.options = options;
    this.timings = { ...DEFAULT_TIMINGS, ...options.timings };
    this.lastAt = at;
    this.last = { reachable: true, schemaVersion, host: formatHostPort(at) };
    this.checkedAt = Date.now();
    this.lastBeatAt = Date.now();
    this.schedule();
  }

  /**
   * The database's health, at most `cacheMs` old; runs (or joins) a check when it is older. While a
   * switch of the primary is under way (at most `switchHoldMs` after the database was lost to
   * one), it waits for the node to find the primary again, checking at each reconnection attempt.
   */
  async health(): Promise<DatabaseHealth> {
    const health = await this.cachedHealth();
    const holdUntil = this.holdUntil();
    if (health.reachable || this.stopped || holdUntil === undefined || Date.now() >= holdUntil) return health;
    // A check before the next reconnection attempt is due answers at once (unreachable), so
    // probing every 20 ms follows each attempt as it is made.
    const found = await waitForOrUndefined(
      'the primary to be found again',
      async () => {
        const until = this.holdUntil();
        if (this.stopped || until === undefined) return this.last;
        const again = await this.bounded(this.check(), until - Date.now());
        return again.reachable ? again : undefined;
      },
      { timeoutMs: holdUntil - Date.now(), everyMs: 20 },
    );
    return found ?? this.last;
  }

  /** Until when a health check waits for the primary to be found again (undefined: it does not). */
  private holdUntil(): number | undefined {
    if (this.lostToSwitchAt === undefined) return undefined;
    return this.lostToSwitchAt + this.timings.switchHoldMs;
  }

  /** `check`'s answer, or the last one known if it takes longer than `ms`. */
  private async bounded(check: Promise<DatabaseHealth>, ms: number): Promise<DatabaseHealth> {
    let timeout: NodeJS.Timeout | undefined;
    const late = new Promise<DatabaseHealth>((resolve) => {
      timeout = setTimeout(() => resolve(this.last), Math.max(0, ms));
    });
    try {
      return await Promise.race([check, late]);
    } finally {
      clearTimeout(timeout);
    }
  }

  private async cachedHealth(): Promise<DatabaseHealth> {
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

  /** The host in use now (undefined while none is: the database unreachable, or a switch under way). */
  current(): HostPort | undefined {
    return this.last.reachable ? this.lastAt : undefined;
  }

  /** Called with the new host when the host in use changes (undefined: none for now). */
  onHostChange(listener: (at: HostPort | undefined) => void): void {
    this.listeners.add(listener);
  }

  /**
   * A page query failed in a way that says the server is no longer the one to use (lost, shut
   * down, read-only): check now instead of at the next heartbeat.
   */
  suspect(error: unknown): void {
    if (this.stopped || !isSwitchError(error)) return;
    const client = this.client;
    if (client) {
      this.client = undefined;
      void client.end().catch(() => {});
    }
    this.checkedAt = 0;
    void this.check();
  }

  /** Stops checking and marks this node stopped in the registry (bounded: the database may be gone). */
  async stop(boundMs: number): Promise<{ marked: boolean; error?: string }> {
    this.stopped = true;
    clearTimeout(this.timer);
    const work = (async () => {
      await this.inflight?.catch(() => {});
      if (!this.client) this.client = (await this.connect()).client;
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
        const selected = await this.connect();
        if (this.stopped) {
          await selected.client.end().catch(() => {});
          return this.record(UNREACHABLE);
        }
        this.adopt(selected.client, selected.at);
      } catch (error) {
        return this.failed(error);
      }
    }
    const client = this.client!;
    const beat = Date.now() - this.lastBeatAt >= this.timings.heartbeatMs;
    try {
      const { me } = this.options;
      const result = beat ? await client.query<CheckRow>({ ...HEARTBEAT_SQL, values: [me.name, me.instance] }) : await client.query<CheckRow>(CHECK_SQL);
      const row = result.rows[0]!;
      if (beat) {
        this.lastBeatAt = Date.now();
        if (row.beats === 0) await this.reclaim(client);
      }
      this.recovered();
      return this.record({ reachable: true, schemaVersion: row.schema_version ?? undefined, host: formatHostPort(this.at!) });
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

  private connect() {
    return connectSelecting(this.options.url, this.options.connect);
  }

  private adopt(client: pg.Client, at: HostPort): void {
    this.client = client;
    this.at = at;
    const was = this.lastAt;
    this.lastAt = at;
    if (was && formatHostPort(was) !== formatHostPort(at)) {
      this.options.log.warn(
        `the database is now ${formatHostPort(at)} (was ${formatHostPort(was)}): DatabaseURL lists ${this.options.url.hosts.length} hosts and this one is ${this.options.url.targetSessionAttrs}`,
      );
    }
    for (const listener of this.listeners) listener(at);
    client.on('end', () => {
      if (this.client !== client) return;
      // The server went away (shut down, terminated us, the link dropped): select again now,
      // not at the next heartbeat.
      this.client = undefined;
      if (!this.stopped) {
        this.checkedAt = 0;
        void this.check();
      }
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
    const { backoffMinMs, backoffMaxMs, switchWindowMs } = this.timings;
    const wasUp = this.downSince === undefined;
    if (wasUp) for (const listener of this.listeners) listener(undefined);
    if (error instanceof NoSuitableHostError && error.standbyOnly) this.switchingSince ??= Date.now();
    else this.switchingSince = undefined;
    const switching = this.switchingSince !== undefined;
    const early = switching && Date.now() - this.switchingSince! < switchWindowMs;
    // The server in use lost (or read-only): the first attempt again at once, to the next host.
    // A standby answering and no primary: every backoffMinMs for switchWindowMs, then at most
    // every second (a promotion may come at any time, and is to be followed at once).
    if (wasUp && (isSwitchError(error) || switching)) this.lostToSwitchAt = Date.now();
    if (wasUp && isSwitchError(error)) this.backoffMs = 0;
    else if (early) this.backoffMs = backoffMinMs;
    else this.backoffMs = Math.min(this.backoffMs === 0 ? backoffMinMs : this.backoffMs * 2, switching ? Math.min(1000, backoffMaxMs) : backoffMaxMs);
    // A little jitter, so nodes that lost the database together do not knock together.
    this.nextAttemptAt = Date.now() + this.backoffMs * (0.8 + Math.random() * 0.4);
    if (this.downSince === undefined) {
      this.downSince = Date.now();
      const code = (error as { code?: string }).code;
      const why = code === '25006' && this.at ? `${formatHostPort(this.at)} is read-only now (SQLSTATE 25006)` : this.describe(error);
      this.options.log.error(
        `database unreachable: ${this.options.log.scrub(why)}; /_status answers 503 until it is back (retrying, at most every ${backoffMaxMs / 1000} s)`,
      );
    }
    return this.record(UNREACHABLE);
  }

  private recovered(): void {
    this.switchingSince = undefined;
    this.lostToSwitchAt = undefined;
    if (this.downSince !== undefined) {
      this.options.log.info(`database reachable again after ${seconds(Date.now() - this.downSince)}`);
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
