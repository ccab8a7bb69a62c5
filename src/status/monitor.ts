// The dashboard's engine: polls every source on an interval (each on its own, none waiting for a
// stalled one longer than its timeout), joins what they say into a snapshot of the cluster, notes
// each state change as an event, and tells its listener, at most once per tick of the event loop.
import type { FormationReport } from '../ha/formation.js';
import type { RegisteredServer } from '../server/registry.js';
import { sleep } from '../system/wait.js';
import {
  eventsBetween,
  judge,
  settled,
  sortRows,
  type DatabaseData,
  type HaproxyData,
  type Probe,
  type ServerRow,
  type Snapshot,
  type StatusEvent,
} from './model.js';
import { readHosts } from './hosts.js';
import { rolesVerdict, type HostAnswer } from './roles.js';
import {
  DatabaseLink,
  Prober,
  probeAddress,
  readDatabase,
  readHaproxy,
  readRegistry,
  Source,
  type DatabaseSourceOptions,
  type HaproxySourceOptions,
} from './sources.js';

export const MIN_INTERVAL_MS = 500;
export const MAX_INTERVAL_MS = 60_000;
/** The events kept for the events pane. */
const MAX_EVENTS = 200;

export interface MonitorOptions {
  database: DatabaseSourceOptions;
  haproxy: Omit<HaproxySourceOptions, 'timeoutMs'>;
  /** The command that retires a server gone for good, as this run would paste it. */
  retireHint?: (name: string) => string;
  /** This host's own node (its ServerName), reached on loopback when it listens on a wildcard address. */
  localName: string | undefined;
  intervalMs: number;
  /**
   * Asked at the start of each refresh: knocknoc.conf read again when it changed. Undefined: no
   * change; `options`: watch this database (and node) from now on; `problem`: a change that does not load.
   */
  /** On a data host of an automatic pair: reads the formation (ha/formation.ts readFormation). */
  formation?: () => Promise<FormationReport>;
  reloadConfig?: () => Promise<{ options: Pick<MonitorOptions, 'database' | 'localName'>; note: string } | { problem: string } | undefined>;
}

export class StatusMonitor {
  readonly registry: Source<RegisteredServer[]>;
  readonly probes: Source<Map<string, Probe>>;
  readonly haproxy: Source<HaproxyData>;
  readonly database: Source<DatabaseData>;
  /** Every host of a multi-host DatabaseURL, each on a new session (absent with one host). */
  readonly hosts: Source<HostAnswer[]>;
  /** The automatic pair this host is a data node of (absent elsewhere). */
  readonly formation: Source<FormationReport> | undefined;
  private link: DatabaseLink;
  private readonly prober: Prober;
  private snapshot: Snapshot;
  private events: StatusEvent[] = [];
  private listeners = new Set<() => void>();
  private notifyQueued = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Refresh rounds under way, and whether news waits for the end of one. */
  private rounds = 0;
  private heldBack = false;
  intervalMs: number;
  paused = false;
  /** The refresh under way, and the refresh each database and hosts answer was read in: advice needs both from one. */
  private round = 0;
  private readonly readIn = new WeakMap<object, number>();

  constructor(private options: MonitorOptions) {
    this.intervalMs = clampInterval(options.intervalMs);
    this.link = new DatabaseLink(options.database);
    const changed = () => this.rebuild();
    this.prober = new Prober(() => this.timeoutMs());
    this.registry = new Source('registry', readRegistry(this.link), changed);
    this.database = new Source('database', this.stamped(readDatabase(this.link, options.database)), changed);
    this.hosts = new Source('hosts', this.stamped(readHosts(options.database)), changed);
    this.haproxy = new Source('haproxy', readHaproxy({ ...options.haproxy, timeoutMs: () => this.timeoutMs() }), changed);
    this.probes = new Source('probes', () => this.prober.probeAll(this.probeTargets()), changed);
    this.formation = options.formation ? new Source('formation', options.formation, changed) : undefined;
    this.snapshot = this.build(Date.now());
  }

  private stamped<T extends object>(read: () => Promise<T>): () => Promise<T> {
    return async () => {
      const round = this.round;
      const data = await read();
      this.readIn.set(data, round);
      return data;
    };
  }

  /** The configuration changed: the database sources read the new database from their next poll, their last data kept meanwhile. */
  private reconfigure(next: Pick<MonitorOptions, 'database' | 'localName'>): void {
    const old = { link: this.link, pair: this.options.database.pair };
    this.options = { ...this.options, ...next };
    this.link = new DatabaseLink(next.database);
    this.registry.replaceRead(readRegistry(this.link));
    this.database.replaceRead(this.stamped(readDatabase(this.link, next.database)));
    this.hosts.replaceRead(this.stamped(readHosts(next.database)));
    // A poll under way on the old link ends with an error, shown until the next poll answers.
    void old.link.close();
    if (old.pair !== next.database.pair) void old.pair?.close();
  }

  private async followConfig(): Promise<void> {
    const change = await this.options.reloadConfig?.().catch((error: Error) => ({ problem: `knocknoc.conf: ${error.message}` }));
    if (!change || this.stopped) return;
    if ('problem' in change) {
      this.note({ at: Date.now(), level: 'warn', text: change.problem });
      return;
    }
    this.reconfigure(change.options);
    this.note({ at: Date.now(), level: 'warn', text: change.note });
  }

  /** How long one probe or socket answer may take: short, and never longer than the interval. */
  timeoutMs(): number {
    return Math.min(1_500, Math.max(400, this.intervalMs));
  }

  current(): Snapshot {
    return this.snapshot;
  }

  /** This host's own node (ServerName of its knocknoc.conf). */
  get localName(): string | undefined {
    return this.options.localName;
  }

  /** The events so far, newest last. */
  history(): StatusEvent[] {
    return this.events;
  }

  note(event: StatusEvent): void {
    this.events = [...this.events, event].slice(-MAX_EVENTS);
    this.queueNotify();
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Polls every source once. Probes start as soon as the registry and HAProxy have answered (or
   * their timeout passed: a stalled source does not hold up the others), so they go to the
   * addresses of this round.
   */
  async refresh(): Promise<void> {
    const bound = <T>(work: Promise<T>) => Promise.race([work, sleep(this.timeoutMs(), undefined, { ref: false })]);
    // One frame per round: what answers within the round is shown together at its end; a source
    // answering later (one that stalled) is shown when it answers.
    this.rounds += 1;
    this.round += 1;
    try {
      await this.followConfig();
      const registry = this.registry.poll();
      const haproxy = this.haproxy.poll();
      const database = this.database.poll();
      const hosts = this.hosts.poll();
      // pg_autoctl asks the monitor: its answer is shown when it comes (a slow monitor holds up no round).
      void this.formation?.poll();
      await Promise.all([bound(registry), bound(haproxy)]);
      await Promise.all([this.probes.poll(), bound(database), bound(hosts)]);
    } finally {
      this.rounds -= 1;
      if (this.rounds === 0 && this.heldBack) {
        this.heldBack = false;
        this.queueNotify();
      }
    }
  }

  /** Every source once, waiting for each to answer or fail (for --once and --json). */
  async refreshFully(): Promise<Snapshot> {
    this.round += 1;
    await Promise.all([this.registry.poll(), this.haproxy.poll(), this.database.poll(), this.hosts.poll(), this.formation?.poll()]);
    await this.probes.poll();
    return this.snapshot;
  }

  /** Refreshes now and then every interval, until stopped; a pause skips the ticks. */
  start(): void {
    const tick = () => {
      if (this.stopped) return;
      const started = Date.now();
      const round = this.paused ? Promise.resolve() : this.refresh();
      // The next round starts an interval after this one started, but never before its sources answered or timed out.
      void round.finally(() => {
        if (this.stopped) return;
        this.timer = setTimeout(tick, Math.max(0, this.intervalMs - (Date.now() - started)));
      });
    };
    tick();
  }

  /** Polls at once, between ticks. */
  refreshNow(): void {
    void this.refresh();
  }

  setInterval(ms: number): void {
    this.intervalMs = clampInterval(ms);
    this.queueNotify();
  }

  setPaused(paused: boolean): void {
    this.paused = paused;
    this.queueNotify();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.listeners.clear();
    await this.link.close();
    await this.options.database.pair?.close();
  }

  private probeTargets(): Map<string, string> {
    const targets = new Map<string, string>();
    for (const row of this.rows()) if (row.address) targets.set(row.name, row.address);
    return targets;
  }

  /** The servers, joined by name: the registry's, and any HAProxy has that the registry has not. */
  private rows(): Array<Omit<ServerRow, 'health' | 'word' | 'problems'>> {
    const registered = this.registry.state.data ?? [];
    const haproxy = this.haproxy.state.data;
    const probes = this.probes.state.data;
    const configured = new Map((haproxy?.configured ?? []).map((c) => [c.name, c]));
    const stats = new Map((haproxy?.servers ?? []).map((s) => [s.name, s]));
    const names = new Set([...registered.map((r) => r.name), ...configured.keys()]);
    return [...names].map((name) => {
      const registry = registered.find((r) => r.name === name);
      const address = configured.get(name)?.address ?? (registry ? probeAddress(registry.listen, name === this.options.localName) : undefined);
      return {
        name,
        address,
        registry,
        probe: probes?.get(name),
        haproxy: stats.get(name),
        backup: configured.get(name)?.backup ?? false,
      };
    });
  }

  private build(at: number): Snapshot {
    const haproxyKnown = this.haproxy.state.data !== undefined;
    const rows = this.rows();
    const db = this.database.state;
    const hosts = this.hosts.state;
    const roles = rolesVerdict({
      // Absent: a one-host DatabaseURL. Not answered yet (or failing): no survey of this refresh.
      survey: hosts.absent ? undefined : { answers: (!hosts.error && hosts.data) || [], round: hosts.data ? (this.readIn.get(hosts.data) ?? -1) : -1 },
      database: db.data && !db.error ? { data: db.data, round: this.readIn.get(db.data) ?? -1 } : undefined,
      usedBy: rows.flatMap((row) => (typeof row.probe?.body?.databaseHost === 'string' ? [{ server: row.name, host: row.probe.body.databaseHost }] : [])),
    });
    const servers = sortRows(rows.map((row) => ({ ...row, ...judge(row, haproxyKnown, this.options.retireHint, roles, db.data) })));
    return {
      at,
      sources: {
        registry: { ...this.registry.state },
        probes: { ...this.probes.state },
        haproxy: { ...this.haproxy.state },
        database: { ...this.database.state },
      },
      servers,
      hosts: { ...hosts },
      roles,
      ...(this.formation ? { formation: { ...this.formation.state } } : {}),
      summary: {
        total: servers.length,
        healthy: servers.filter((s) => s.health === 'ok').length,
        databaseUnreachable: this.registry.state.error !== undefined && this.registry.state.data === undefined,
      },
    };
  }

  private rebuild(): void {
    const next = this.build(Date.now());
    // Changes are events once every source has answered once: the first answers are not changes.
    const events = settled(this.snapshot) ? eventsBetween(this.snapshot, next) : [];
    this.snapshot = next;
    if (events.length > 0) this.events = [...this.events, ...events].slice(-MAX_EVENTS);
    if (this.rounds > 0) this.heldBack = true;
    else this.queueNotify();
  }

  private queueNotify(): void {
    if (this.notifyQueued || this.stopped) return;
    this.notifyQueued = true;
    setImmediate(() => {
      this.notifyQueued = false;
      for (const listener of this.listeners) listener();
    });
  }
}

export function clampInterval(ms: number): number {
  return Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, Math.round(ms)));
}

/** The next interval for `+` (slower) and `-` (faster): 0.5, 1, 2, 3, 5, 10, 15, 30, 60 s. */
const STEPS = [500, 1000, 2000, 3000, 5000, 10_000, 15_000, 30_000, 60_000];
export function nextInterval(ms: number, direction: 1 | -1): number {
  if (direction > 0) return STEPS.find((s) => s > ms) ?? MAX_INTERVAL_MS;
  return [...STEPS].reverse().find((s) => s < ms) ?? MIN_INTERVAL_MS;
}
