// What the dashboard knows, as plain data: each source's last answer (kept when a poll fails, with
// its age and the error), the servers joined by name across the registry, their /_status and
// HAProxy, each server's health in words, and the events (state changes) between two snapshots.
import type { FormationReport } from '../ha/formation.js';
import type { RegisteredServer } from '../server/registry.js';
import type { StatusBody } from '../server/http.js';
import { isServing } from '../server/status-body.js';
import type { ServerStat } from '../haproxy/runtime.js';
import { databaseHostProblem, type HostAnswer, type RolesVerdict } from './roles.js';
import type { SlotInfo, StandbyInfo } from '../postgres/replication.js';

export type SourceName = 'registry' | 'probes' | 'haproxy' | 'database';

/** One source's last answer and how it is doing. */
export interface SourceState<T> {
  /** `hosts` is kept beside the four (snapshot.hosts): it only applies to a multi-host DatabaseURL. */
  name: SourceName | 'hosts' | 'formation';
  /** The last data it gave (kept, and shown dimmed, while it fails). */
  data: T | undefined;
  /** When `data` was read (ms since the epoch). */
  updatedAt: number | undefined;
  /** Set while the last poll failed. */
  error: string | undefined;
  /** A poll is under way. */
  busy: boolean;
  /** Set when the source does not apply here (HAProxy not set up on this host); not an error. */
  absent?: string;
}

export interface Probe {
  /** host:port it was asked on. */
  address: string;
  at: number;
  /** HTTP status, or undefined when nothing answered. */
  http: number | undefined;
  latencyMs: number | undefined;
  body: StatusBody | undefined;
  error: string | undefined;
}

export interface HaproxyData {
  version: string;
  /** The worker's pid: a new one after a reload (eventsBetween notes it). */
  pid: number;
  uptimeSeconds: number;
  servers: ServerStat[];
  /** Nodes in knocker's haproxy.cfg (addresses are not given on the read-only socket). */
  configured: Array<{ name: string; address: string; backup: boolean }>;
  bind: string;
}

// Replication as PostgreSQL reports it: one type for the dashboard and `knocker standby status`.
export type { SlotInfo, StandbyInfo };

export interface DatabaseData {
  target: string;
  /** DatabaseURL's host list ("host:port" each), in order. */
  hosts: string[];
  /** The host of the list this status is connected to ("host:port"). */
  host: string;
  /** The server's own address and port as it sees this connection (inet_server_addr), when TCP. */
  serverAddress: string | null;
  serverVersion: string;
  role: 'primary' | 'standby';
  connections: { used: number; max: number };
  /** Standbys streaming from this primary (pg_stat_replication). */
  standbys: StandbyInfo[];
  /** Replication slots of this primary (none read on a standby). */
  slots: SlotInfo[];
  /** On a standby: how far behind its primary it is, when known. */
  upstream?: { connected: boolean; lagBytes: number | null; lagSeconds: number | null };
  /** The exposedb allow-list, when the cluster is on this host (undefined: not readable here). */
  allowList?: { cidrs: string[]; exposed: boolean } | { error: string };
  /** The migrations the database is at. */
  schemaVersion: number | null;
  /** Some columns were hidden from this login (pg_stat_replication needs pg_monitor). */
  limited: boolean;
  /** The certificate the database presents (asked at most once a minute), when it could be asked. */
  tls?: DatabaseTls;
}

export type DatabaseTls =
  | { offered: false }
  | {
      offered: true;
      subject: string;
      altNames: string[];
      /** ISO date-time. */
      notAfter: string;
      daysLeft: number;
      /** Verified as verify-full would (CA and host name); null when no CA is known here to check it with. */
      verified: boolean | null;
      /** Within EXPIRY_WARNING_DAYS (30) of expiry, or past it. */
      expiring: boolean;
    };

export type Health = 'ok' | 'warn' | 'fail';

export interface ServerRow {
  name: string;
  address: string | undefined;
  registry: RegisteredServer | undefined;
  probe: Probe | undefined;
  haproxy: ServerStat | undefined;
  /** Backup node in HAProxy. */
  backup: boolean;
  health: Health;
  /** One word: ok, offline, stopped, down, out-of-step, draining, maint, … */
  word: string;
  /** Why it is not ok, in words. */
  problems: string[];
}

export interface Snapshot {
  at: number;
  sources: {
    registry: SourceState<RegisteredServer[]>;
    probes: SourceState<Map<string, Probe>>;
    haproxy: SourceState<HaproxyData>;
    database: SourceState<DatabaseData>;
  };
  servers: ServerRow[];
  /** Every host of a multi-host DatabaseURL as a new session finds it, and the primary decided from one refresh. */
  hosts?: SourceState<HostAnswer[]>;
  roles?: RolesVerdict;
  /** On a data host of an automatic pair: the formation as pg_auto_failover's monitor (or this host's keeper) tells it. */
  formation?: SourceState<FormationReport>;
  summary: {
    total: number;
    healthy: number;
    /** The database could not be read at all (no registry either). */
    databaseUnreachable: boolean;
  };
}

export interface StatusEvent {
  at: number;
  level: Health;
  text: string;
  /** A server's change of state, for folding the same change of several servers into one line (fold.ts). */
  transition?: { subject: string; from: string; to: string; detail?: string; fromLevel: Health };
}

const HEALTH_ORDER: Record<Health, number> = { fail: 0, warn: 1, ok: 2 };

/** The HAProxy state that keeps a server from new requests, in one word; undefined when in rotation. */
function haproxyProblem(stat: ServerStat): { word: string; health: Health; text: string } | undefined {
  const s = stat.status;
  // DOWN with passing checks is a server on its way back (just readied, its health forced down
  // until `rise` checks pass): not a failure.
  if (s.state === 'DOWN' && (s.transition || /^L[4-7]OK$/.test(stat.check.status ?? ''))) {
    return {
      word: 'rising',
      health: 'warn',
      text: `HAProxy: ${s.text} (checks passing: back in rotation after ${s.transition ? `${s.transition.of - s.transition.checks} more` : 'its next'})`,
    };
  }
  if (s.state === 'DOWN')
    return {
      word: 'down',
      health: 'fail',
      text: `HAProxy: ${s.text}${stat.check.status ? ` (${stat.check.status}${stat.check.detail ? `: ${stat.check.detail}` : ''})` : ''}`,
    };
  if (s.state === 'MAINT') return { word: 'maint', health: 'warn', text: `HAProxy: ${s.text} (out of rotation)` };
  if (s.state === 'DRAIN') return { word: 'draining', health: 'warn', text: `HAProxy: ${s.text} (no new sessions)` };
  if (s.state === 'NOLB') return { word: 'nolb', health: 'warn', text: `HAProxy: ${s.text}` };
  if (s.state === 'UNKNOWN') return { word: 'unknown', health: 'warn', text: `HAProxy: ${s.text}` };
  if (s.state === 'UP' && s.transition) return { word: 'failing', health: 'warn', text: `HAProxy: ${s.text} (checks failing)` };
  return undefined;
}

/**
 * A server's health from what each source says of it. `retire` gives the command that takes a
 * server out of the registry (in the context of this run), said beside a stopped or offline one.
 * `roles`: which host is the primary in this refresh (src/status/roles.ts), to flag a server whose
 * /_status says it uses another database host; `database` the database source's data.
 */
export function judge(
  row: Omit<ServerRow, 'health' | 'word' | 'problems'>,
  haproxyKnown: boolean,
  retire?: (name: string) => string,
  roles?: RolesVerdict,
  database?: DatabaseData,
): Pick<ServerRow, 'health' | 'word' | 'problems'> {
  const problems: Array<{ word: string; health: Health; text: string }> = [];
  const r = row.registry;
  if (!r) problems.push({ word: 'unregistered', health: 'fail', text: 'not in the servers registry of this database' });
  else if (r.state === 'stopped') problems.push({ word: 'stopped', health: 'fail', text: 'stopped (marked stopped in the registry)' });
  else if (!r.online) problems.push({ word: 'offline', health: 'fail', text: 'offline (no heartbeat)' });
  const p = row.probe;
  if (p) {
    if (p.http === undefined) problems.push({ word: 'no-answer', health: 'fail', text: `/_status: ${p.error ?? 'no answer'}` });
    else if (p.body?.status === 'out-of-step') {
      problems.push({
        word: 'out-of-step',
        health: 'fail',
        text: `out of step: release expects schema ${p.body.schemaVersion}, the database has ${p.body.databaseSchemaVersion}`,
      });
    } else if (p.body?.database === 'unreachable') problems.push({ word: 'no-db', health: 'fail', text: '/_status: its database is unreachable' });
    else if (p.http !== 200) problems.push({ word: 'failing', health: 'fail', text: `/_status answered ${p.http}` });
    // A 200 alone is not health (HAProxy's check would mark it DOWN): it must be the node's answer, in step.
    else if (!isServing(p))
      problems.push({ word: 'failing', health: 'fail', text: `/_status answered 200, but ${p.body ? 'not in step' : 'not with a Knocknoc /_status answer'}` });
    const on = p.body?.databaseHost;
    const onDatabase = roles && typeof on === 'string' ? databaseHostProblem(on, roles, database) : undefined;
    if (onDatabase) problems.push(onDatabase);
  } else if (!row.address) {
    problems.push({ word: 'no-address', health: 'warn', text: 'no address to probe (registered with a wildcard Listen)' });
  } else {
    problems.push({ word: 'checking', health: 'warn', text: '/_status not asked yet' });
  }
  if (row.haproxy) {
    const h = haproxyProblem(row.haproxy);
    if (h) problems.push(h);
  } else if (haproxyKnown && !row.backup) {
    problems.push({ word: 'not-in-lb', health: 'warn', text: 'not in HAProxy (knocker haproxy add)' });
  }
  if (problems.length === 0) return { health: 'ok', word: row.haproxy && row.backup ? 'standby' : 'ok', problems: [] };
  problems.sort((a, b) => HEALTH_ORDER[a.health] - HEALTH_ORDER[b.health]);
  // What to do about a server that is not running comes after what is wrong with it: not said of
  // one that answers its /_status (it runs: its heartbeats may go to another host), nor while the
  // registry may be read from a host that is no longer the primary (roles not settled).
  const gone = r && (r.state === 'stopped' || !r.online) && p?.http === undefined && roles?.unsettled === undefined;
  const advice = gone && retire ? [`gone for good? retire it: ${retire(row.name)}`] : [];
  return { health: problems[0]!.health, word: problems[0]!.word, problems: [...problems.map((x) => x.text), ...advice] };
}

/** Problems first (fail, then warn), then by name. */
export function sortRows(rows: ServerRow[]): ServerRow[] {
  return [...rows].sort((a, b) => HEALTH_ORDER[a.health] - HEALTH_ORDER[b.health] || a.name.localeCompare(b.name, 'en', { numeric: true }));
}

/** A filter as typed after `/`: a case-insensitive substring of a row's text, `!` in front inverts it. */
export function matchesFilter(row: ServerRow, filter: string): boolean {
  const invert = filter.startsWith('!');
  const needle = (invert ? filter.slice(1) : filter).trim().toLowerCase();
  if (needle === '') return true;
  const haystack = [
    row.name,
    row.address ?? '',
    row.word,
    row.registry?.version ?? '',
    row.probe?.body?.version ?? '',
    row.haproxy?.status.text ?? '',
    ...row.problems,
  ]
    .join(' ')
    .toLowerCase();
  return haystack.includes(needle) !== invert;
}

function describeServerState(row: ServerRow): string {
  return row.health === 'ok' ? row.word : `${row.word}: ${row.problems[0] ?? ''}`;
}

/** The state changes from one snapshot to the next, as an operator would note them. */
export function eventsBetween(before: Snapshot | undefined, after: Snapshot): StatusEvent[] {
  const events: StatusEvent[] = [];
  const at = after.at;
  if (!before) return events;
  for (const name of ['registry', 'probes', 'haproxy', 'database'] as const) {
    const was = before.sources[name];
    const now = after.sources[name];
    if (!was.error && now.error) events.push({ at, level: 'fail', text: `${name}: ${now.error}` });
    else if (was.error && !now.error && now.updatedAt !== undefined) events.push({ at, level: 'ok', text: `${name}: answering again` });
  }
  const h0 = before.sources.haproxy.data;
  const h1 = after.sources.haproxy.data;
  if (h0 && h1 && h0.pid !== h1.pid) events.push({ at, level: 'warn', text: `HAProxy reloaded (worker pid ${h0.pid} → ${h1.pid})` });
  const d0 = before.sources.database.data;
  const d1 = after.sources.database.data;
  if (d0 && d1 && d0.role !== d1.role) events.push({ at, level: 'warn', text: `database is now ${d1.role} (was ${d0.role})` });
  if (d0 && d1 && d0.host !== d1.host) events.push({ at, level: 'warn', text: `database: now on ${d1.host} (was ${d0.host}), a ${d1.role}` });
  if (!before.roles?.twoPrimaries && after.roles?.twoPrimaries)
    events.push({ at, level: 'fail', text: `TWO PRIMARIES: ${after.roles.writable.join(' and ')} accept writes` });
  if (before.roles?.twoPrimaries && after.roles && !after.roles.twoPrimaries)
    events.push({ at, level: 'ok', text: `one primary again${after.roles.writable[0] ? `: ${after.roles.writable[0]}` : ''}` });
  if (d0 && d1 && d0.schemaVersion !== d1.schemaVersion)
    events.push({ at, level: 'warn', text: `database schema ${d0.schemaVersion ?? 'none'} → ${d1.schemaVersion ?? 'none'} (migrated)` });
  const old = new Map(before.servers.map((r) => [r.name, r]));
  for (const row of after.servers) {
    const prev = old.get(row.name);
    old.delete(row.name);
    if (!prev) {
      events.push({ at, level: row.health, text: `${row.name} appeared: ${describeServerState(row)}` });
      continue;
    }
    // Out of "checking" is a server's first answer (its /_status asked once it was known), not a change.
    if (prev.word !== 'checking' && (prev.word !== row.word || prev.health !== row.health)) {
      events.push({
        at,
        level: row.health,
        text: `${row.name}: ${prev.word} → ${describeServerState(row)}`,
        transition: { subject: row.name, from: prev.word, to: row.word, detail: row.health === 'ok' ? undefined : row.problems[0], fromLevel: prev.health },
      });
    }
    const h0 = prev.probe?.body?.databaseHost;
    const h1 = row.probe?.body?.databaseHost;
    if (typeof h0 === 'string' && typeof h1 === 'string' && h0 !== h1) events.push({ at, level: 'ok', text: `${row.name}: database ${h0} → ${h1}` });
    const v0 = prev.probe?.body?.version ?? prev.registry?.version;
    const v1 = row.probe?.body?.version ?? row.registry?.version;
    if (v0 && v1 && v0 !== v1) {
      // Going down a release (a rollback, or a node reinstalled from an old package) is not shown as good news.
      const down = v1.localeCompare(v0, 'en', { numeric: true }) < 0;
      events.push({ at, level: down ? 'warn' : 'ok', text: `${row.name}: version ${v0} → ${v1}${down ? ' (an older release)' : ''}` });
    }
    const s0 = prev.haproxy?.status.text;
    const s1 = row.haproxy?.status.text;
    if (s0 && s1 && s0 !== s1 && prev.word === row.word)
      events.push({
        at,
        level: row.health,
        text: `${row.name}: HAProxy ${s0} → ${s1}`,
        transition: { subject: row.name, from: `HAProxy ${s0}`, to: s1, fromLevel: prev.health },
      });
  }
  for (const gone of old.values()) events.push({ at, level: 'warn', text: `${gone.name} is no longer listed` });
  return events;
}

/** Every source has answered (or failed, or is absent) at least once. */
export function settled(snapshot: Snapshot): boolean {
  return Object.values(snapshot.sources).every((s) => s.updatedAt !== undefined || s.error !== undefined || s.absent !== undefined);
}
