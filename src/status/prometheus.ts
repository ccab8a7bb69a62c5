// `knocker status --format prometheus`: the snapshot the dashboard shows, in Prometheus' text
// exposition format (version 0.0.4), for node_exporter's textfile collector or any scraper that
// runs a command. Pure: a snapshot in, text out. Label values are escaped as the format says
// (backslash, double quote, newline), so a hostile registry name stays one label value.
import { outcomeOf } from './format.js';
import type { Health, Snapshot, SourceState } from './model.js';

type Labels = Record<string, string>;

interface Family {
  name: string;
  help: string;
  type: 'gauge';
  samples: Array<{ labels: Labels; value: number }>;
}

/** A label value as the text format wants it. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function sampleLine(name: string, labels: Labels, value: number): string {
  const entries = Object.entries(labels);
  const text = entries.length === 0 ? '' : `{${entries.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
  const number = Number.isFinite(value) ? String(value) : Number.isNaN(value) ? 'NaN' : value > 0 ? '+Inf' : '-Inf';
  return `${name}${text} ${number}`;
}

const HEALTHS: Health[] = ['ok', 'warn', 'fail'];
const HAPROXY_STATES = ['UP', 'DOWN', 'DRAIN', 'MAINT', 'NOLB', 'NO CHECK', 'UNKNOWN'] as const;

/** Every metric, in the order it is printed (scrapes compare well across runs), with its HELP text. */
const METRICS = {
  knocker_status_exit_code: 'What knocker status --once would exit with: 0 healthy, 1 degraded, 3 database unreachable.',
  knocker_servers: 'Servers known to the registry, HAProxy or /_status probes.',
  knocker_servers_healthy: 'Servers online, in step and in rotation.',
  knocker_source_up: "1 when the source's last poll answered (registry, probes, haproxy, database).",
  knocker_source_age_seconds: "Age of the source's last answer.",
  knocker_server_healthy: '1 when the server is online, answers /_status 200 in step, and is in rotation.',
  knocker_server_health: "The server's health: 1 for its current one of ok, warn, fail.",
  knocker_server_online: '1 when the registry has a heartbeat from it within three heartbeats.',
  knocker_server_version_match: "1 when /_status says the server's release is in step with the database schema.",
  knocker_server_status_http_code: "The HTTP status of the server's last /_status (0: no answer).",
  knocker_server_status_latency_seconds: 'How long its last /_status took.',
  knocker_server_last_seen_seconds: 'Seconds since its last heartbeat in the registry.',
  knocker_server_haproxy_state: "HAProxy's state of the server: 1 for its current one.",
  knocker_server_haproxy_sessions: 'Sessions HAProxy has open to the server.',
  knocker_database_up: '1 when the shared database answered the last poll.',
  knocker_database_primary: '1 when the database host status is on is a primary (0: a standby).',
  knocker_database_connections: 'Client connections to the database.',
  knocker_database_connections_max: "The database's max_connections.",
  knocker_standby_lag_bytes: 'WAL a standby has yet to replay, in bytes.',
  knocker_standby_lag_seconds: 'How far behind the primary a standby replays, in seconds.',
  knocker_standby_streaming: "1 when the standby's state is streaming.",
  knocker_replication_slot_retained_bytes: 'WAL a replication slot keeps on the primary, in bytes.',
  knocker_replication_slot_active: '1 when a client streams through the slot.',
  knocker_replication_slot_wal_lost: "1 when the slot's wal_status is lost (its standby must be cloned again).",
} as const;

type MetricName = keyof typeof METRICS;

function sourceUp(source: SourceState<unknown>): number {
  return source.error === undefined && source.updatedAt !== undefined ? 1 : 0;
}

/** The families of one snapshot, in METRICS' order; a metric with no sample is left out. */
export function metricFamilies(snapshot: Snapshot): Family[] {
  const samples = new Map<MetricName, Family['samples']>();
  const add = (name: MetricName, labels: Labels, value: number | null | undefined) => {
    if (value === null || value === undefined) return;
    const list = samples.get(name) ?? [];
    list.push({ labels, value });
    samples.set(name, list);
  };
  add('knocker_status_exit_code', {}, outcomeOf(snapshot).exitCode);
  add('knocker_servers', {}, snapshot.summary.total);
  add('knocker_servers_healthy', {}, snapshot.summary.healthy);
  for (const source of Object.values(snapshot.sources)) {
    if (source.absent) continue;
    add('knocker_source_up', { source: source.name }, sourceUp(source));
    if (source.updatedAt !== undefined) add('knocker_source_age_seconds', { source: source.name }, Math.max(0, (snapshot.at - source.updatedAt) / 1000));
  }
  for (const row of snapshot.servers) {
    const server = { server: row.name };
    add('knocker_server_healthy', server, row.health === 'ok' ? 1 : 0);
    for (const h of HEALTHS) add('knocker_server_health', { ...server, health: h }, row.health === h ? 1 : 0);
    if (row.registry) {
      add('knocker_server_online', server, row.registry.online ? 1 : 0);
      add('knocker_server_last_seen_seconds', server, Math.max(0, (snapshot.at - row.registry.lastSeen.getTime()) / 1000));
    }
    if (row.probe) {
      add('knocker_server_status_http_code', server, row.probe.http ?? 0);
      add('knocker_server_status_latency_seconds', server, row.probe.latencyMs === undefined ? undefined : row.probe.latencyMs / 1000);
      const match = row.probe.body?.versionMatch;
      add('knocker_server_version_match', server, typeof match === 'boolean' ? Number(match) : undefined);
    }
    if (row.haproxy) {
      for (const state of HAPROXY_STATES) add('knocker_server_haproxy_state', { ...server, state }, row.haproxy.status.state === state ? 1 : 0);
      add('knocker_server_haproxy_sessions', server, row.haproxy.sessions);
    }
  }
  add('knocker_database_up', {}, sourceUp(snapshot.sources.database));
  const db = snapshot.sources.database.data;
  if (db) {
    const host = { host: db.host };
    add('knocker_database_primary', host, db.role === 'primary' ? 1 : 0);
    add('knocker_database_connections', host, db.connections.used);
    add('knocker_database_connections_max', host, db.connections.max);
    const standbys = db.standbys.map((s) => ({
      labels: { standby: s.name, address: s.clientAddress ?? '' },
      lagBytes: s.lagBytes,
      lagSeconds: s.lagSeconds,
      streaming: s.state === 'streaming',
    }));
    if (db.upstream) standbys.push({ labels: { standby: 'this', address: db.host }, ...db.upstream, streaming: db.upstream.connected });
    for (const s of standbys) {
      add('knocker_standby_lag_bytes', s.labels, s.lagBytes);
      add('knocker_standby_lag_seconds', s.labels, s.lagSeconds);
      add('knocker_standby_streaming', s.labels, s.streaming ? 1 : 0);
    }
    for (const slot of db.slots) {
      add('knocker_replication_slot_retained_bytes', { slot: slot.name }, slot.retainedBytes);
      add('knocker_replication_slot_active', { slot: slot.name }, slot.active ? 1 : 0);
      add('knocker_replication_slot_wal_lost', { slot: slot.name }, slot.walStatus === 'lost' ? 1 : 0);
    }
  }
  return (Object.keys(METRICS) as MetricName[])
    .filter((name) => samples.has(name))
    .map((name) => ({ name, help: METRICS[name], type: 'gauge' as const, samples: samples.get(name)! }));
}

/** The snapshot in Prometheus' text format. */
export function prometheusText(snapshot: Snapshot): string {
  const lines: string[] = [];
  for (const f of metricFamilies(snapshot)) {
    if (f.samples.length === 0) continue;
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) lines.push(sampleLine(f.name, s.labels, s.value));
  }
  return `${lines.join('\n')}\n`;
}
