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

function sourceUp(source: SourceState<unknown>): number {
  return source.error === undefined && source.updatedAt !== undefined ? 1 : 0;
}

/** The families of one snapshot, in a fixed order (scrapes compare well across runs). */
export function metricFamilies(snapshot: Snapshot): Family[] {
  const family = (name: string, help: string): Family => ({ name, help, type: 'gauge', samples: [] });
  const outcome = outcomeOf(snapshot);
  const status = family('knocker_status_exit_code', 'What knocker status --once would exit with: 0 healthy, 1 degraded, 3 database unreachable.');
  status.samples.push({ labels: {}, value: outcome.exitCode });
  const servers = family('knocker_servers', 'Servers known to the registry, HAProxy or /_status probes.');
  servers.samples.push({ labels: {}, value: snapshot.summary.total });
  const healthyServers = family('knocker_servers_healthy', 'Servers online, in step and in rotation.');
  healthyServers.samples.push({ labels: {}, value: snapshot.summary.healthy });

  const sourceFamily = family('knocker_source_up', "1 when the source's last poll answered (registry, probes, haproxy, database).");
  const sourceAge = family('knocker_source_age_seconds', "Age of the source's last answer.");
  for (const source of Object.values(snapshot.sources)) {
    if (source.absent) continue;
    sourceFamily.samples.push({ labels: { source: source.name }, value: sourceUp(source) });
    if (source.updatedAt !== undefined) sourceAge.samples.push({ labels: { source: source.name }, value: Math.max(0, (snapshot.at - source.updatedAt) / 1000) });
  }

  const up = family('knocker_server_healthy', '1 when the server is online, answers /_status 200 in step, and is in rotation.');
  const health = family('knocker_server_health', "The server's health: 1 for its current one of ok, warn, fail.");
  const online = family('knocker_server_online', '1 when the registry has a heartbeat from it within three heartbeats.');
  const match = family('knocker_server_version_match', "1 when /_status says the server's release is in step with the database schema.");
  const http = family('knocker_server_status_http_code', "The HTTP status of the server's last /_status (0: no answer).");
  const latency = family('knocker_server_status_latency_seconds', 'How long its last /_status took.');
  const seen = family('knocker_server_last_seen_seconds', 'Seconds since its last heartbeat in the registry.');
  const haproxyState = family('knocker_server_haproxy_state', "HAProxy's state of the server: 1 for its current one.");
  const sessions = family('knocker_server_haproxy_sessions', 'Sessions HAProxy has open to the server.');
  for (const row of snapshot.servers) {
    const server = { server: row.name };
    up.samples.push({ labels: server, value: row.health === 'ok' ? 1 : 0 });
    for (const h of HEALTHS) health.samples.push({ labels: { ...server, health: h }, value: row.health === h ? 1 : 0 });
    if (row.registry) {
      online.samples.push({ labels: server, value: row.registry.online ? 1 : 0 });
      seen.samples.push({ labels: server, value: Math.max(0, (snapshot.at - row.registry.lastSeen.getTime()) / 1000) });
    }
    if (row.probe) {
      http.samples.push({ labels: server, value: row.probe.http ?? 0 });
      if (row.probe.latencyMs !== undefined) latency.samples.push({ labels: server, value: row.probe.latencyMs / 1000 });
      if (typeof row.probe.body?.versionMatch === 'boolean') match.samples.push({ labels: server, value: row.probe.body.versionMatch ? 1 : 0 });
    }
    if (row.haproxy) {
      for (const state of HAPROXY_STATES) haproxyState.samples.push({ labels: { ...server, state }, value: row.haproxy.status.state === state ? 1 : 0 });
      sessions.samples.push({ labels: server, value: row.haproxy.sessions });
    }
  }

  const db = snapshot.sources.database.data;
  const dbUp = family('knocker_database_up', '1 when the shared database answered the last poll.');
  dbUp.samples.push({ labels: {}, value: sourceUp(snapshot.sources.database) });
  const primary = family('knocker_database_primary', '1 when the database host status is on is a primary (0: a standby).');
  const connections = family('knocker_database_connections', 'Client connections to the database.');
  const maxConnections = family('knocker_database_connections_max', "The database's max_connections.");
  const lagBytes = family('knocker_standby_lag_bytes', 'WAL a standby has yet to replay, in bytes.');
  const lagSeconds = family('knocker_standby_lag_seconds', 'How far behind the primary a standby replays, in seconds.');
  const streaming = family('knocker_standby_streaming', "1 when the standby's state is streaming.");
  const retained = family('knocker_replication_slot_retained_bytes', 'WAL a replication slot keeps on the primary, in bytes.');
  const slotActive = family('knocker_replication_slot_active', '1 when a client streams through the slot.');
  const slotLost = family('knocker_replication_slot_wal_lost', "1 when the slot's wal_status is lost (its standby must be cloned again).");
  if (db) {
    const host = { host: db.host };
    primary.samples.push({ labels: host, value: db.role === 'primary' ? 1 : 0 });
    connections.samples.push({ labels: host, value: db.connections.used });
    maxConnections.samples.push({ labels: host, value: db.connections.max });
    for (const s of db.standbys) {
      const labels = { standby: s.name, address: s.clientAddress ?? '' };
      if (s.lagBytes !== null) lagBytes.samples.push({ labels, value: s.lagBytes });
      if (s.lagSeconds !== null) lagSeconds.samples.push({ labels, value: s.lagSeconds });
      streaming.samples.push({ labels, value: s.state === 'streaming' ? 1 : 0 });
    }
    if (db.upstream) {
      const labels = { standby: 'this', address: db.host };
      if (db.upstream.lagBytes !== null) lagBytes.samples.push({ labels, value: db.upstream.lagBytes });
      if (db.upstream.lagSeconds !== null) lagSeconds.samples.push({ labels, value: db.upstream.lagSeconds });
      streaming.samples.push({ labels, value: db.upstream.connected ? 1 : 0 });
    }
    for (const slot of db.slots) {
      const labels = { slot: slot.name };
      if (slot.retainedBytes !== null) retained.samples.push({ labels, value: slot.retainedBytes });
      slotActive.samples.push({ labels, value: slot.active ? 1 : 0 });
      slotLost.samples.push({ labels, value: slot.walStatus === 'lost' ? 1 : 0 });
    }
  }
  return [
    status,
    servers,
    healthyServers,
    sourceFamily,
    sourceAge,
    up,
    health,
    online,
    match,
    http,
    latency,
    seen,
    haproxyState,
    sessions,
    dbUp,
    primary,
    connections,
    maxConnections,
    lagBytes,
    lagSeconds,
    streaming,
    retained,
    slotActive,
    slotLost,
  ];
}

/** The snapshot in Prometheus' text format; families with no sample are left out. */
export function prometheusText(snapshot: Snapshot): string {
  const lines: string[] = [];
  for (const f of metricFamilies(snapshot)) {
    if (f.samples.length === 0) continue;
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) lines.push(sampleLine(f.name, s.labels, s.value));
  }
  return `${lines.join('\n')}\n`;
}
