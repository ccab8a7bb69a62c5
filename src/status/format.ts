// The words and cells the dashboard shows, shared by the screen, `--once` (plain text) and
// `--json`: one place decides how a server, a source or the database is described.
import { formationPanelLines } from '../ha/formation.js';
import type { ServerStat } from '../haproxy/runtime.js';
import { age, bytes, plural } from '../system/units.js';
import type { DatabaseData, Health, Probe, ServerRow, Snapshot, SourceState } from './model.js';
import type { RolesVerdict } from './roles.js';

export const HEALTH_SYMBOL: Record<Health, string> = { ok: '✔', warn: '!', fail: '✗' };

export function probeCell(probe: Probe | undefined): string {
  if (!probe) return '-';
  if (probe.http === undefined) return /refused/.test(probe.error ?? '') ? 'refused' : /within/.test(probe.error ?? '') ? 'timeout' : 'error';
  const latency = probe.latencyMs === undefined ? '' : ` ${probe.latencyMs < 10 ? probe.latencyMs.toFixed(1) : Math.round(probe.latencyMs)}ms`;
  return `${probe.http}${latency}`;
}

export function versionCell(row: ServerRow): string {
  const version = row.probe?.body?.version ?? row.registry?.version ?? '-';
  const inStep = row.probe?.body ? (row.probe.body.versionMatch ? '' : ' ≠db') : '';
  return `${version}${inStep}`;
}

export function haproxyCell(stat: ServerStat | undefined, backup: boolean): string {
  if (!stat) return '-';
  return `${stat.status.text}${backup ? ' bk' : ''}`;
}

export function checkCell(stat: ServerStat | undefined): string {
  if (!stat) return '-';
  const c = stat.check;
  if (c.status === '') return 'paused';
  return [c.status, c.code === undefined ? undefined : String(c.code), c.durationMs === undefined ? undefined : `${c.durationMs}ms`].filter(Boolean).join(' ');
}

/** How long HAProxy has had it in its current state. */
export function inStateCell(stat: ServerStat | undefined): string {
  return stat ? age(stat.secondsInState) : '-';
}

export function seenCell(row: ServerRow, now: number): string {
  const r = row.registry;
  if (!r) return '-';
  return age((now - r.lastSeen.getTime()) / 1000);
}

/** Staleness of a source's data: its age, and whether it is older than a poll or two should leave it. */
export function sourceAge(source: SourceState<unknown>, now: number, staleAfterMs: number): { text: string; stale: boolean } {
  if (source.absent) return { text: 'n/a', stale: false };
  if (source.updatedAt === undefined) return { text: source.error ? 'failing' : source.busy ? 'loading' : 'no data', stale: source.error !== undefined };
  const ms = now - source.updatedAt;
  return { text: age(ms / 1000), stale: source.error !== undefined || ms > staleAfterMs };
}

export function summaryLine(snapshot: Snapshot): string {
  const { total, healthy } = snapshot.summary;
  const db = snapshot.sources.database.data;
  const ha = snapshot.sources.haproxy;
  const parts = [
    `${healthy} of ${plural(total, 'server')} healthy`,
    snapshot.roles?.twoPrimaries
      ? `${HEALTH_SYMBOL.fail} TWO PRIMARIES ${snapshot.roles.writable.join(' and ')}`
      : db
        ? `database ${db.role}${worstLag(db)}`
        : snapshot.sources.database.error
          ? 'database unreachable'
          : 'database …',
    ha.error ? 'HAProxy not answering' : ha.data ? `HAProxy up ${age(ha.data.uptimeSeconds)}` : ha.absent ? 'no HAProxy here' : 'HAProxy …',
  ];
  return parts.join(' · ');
}

function worstLag(db: DatabaseData): string {
  if (db.role === 'standby') {
    const u = db.upstream;
    if (!u) return '';
    if (!u.connected) return ', not receiving from its primary';
    return `, lag ${u.lagBytes === null ? '?' : bytes(u.lagBytes)}${u.lagSeconds === null ? '' : ` / ${age(u.lagSeconds)}`}`;
  }
  if (db.standbys.length === 0) return ', no standby';
  const known = db.standbys.filter((s) => s.lagBytes !== null);
  if (known.length === 0) return `, ${plural(db.standbys.length, 'standby')} (lag hidden: needs pg_monitor)`;
  const worst = known.reduce((a, b) => ((b.lagBytes ?? 0) > (a.lagBytes ?? 0) ? b : a));
  return `, ${plural(db.standbys.length, 'standby')}, worst lag ${bytes(worst.lagBytes ?? 0)}${worst.lagSeconds === null ? '' : ` / ${age(worst.lagSeconds)}`}`;
}

/** The database host a server's /_status names ("-": not said, an older release or not asked). */
export function databaseHostCell(row: ServerRow): string {
  const host = row.probe?.body?.databaseHost;
  return typeof host === 'string' ? host : '-';
}

/** The DatabaseURL lists several hosts: the servers' database host is worth a column. */
export function showsDatabaseHosts(snapshot: Snapshot): boolean {
  return (snapshot.sources.database.data?.hosts.length ?? 0) > 1 || snapshot.servers.some((r) => r.word === 'old-primary');
}

function slotLine(slot: DatabaseData['slots'][number]): string {
  const retained = slot.retainedBytes === null ? 'retains no WAL' : `retains ${bytes(slot.retainedBytes)} of WAL`;
  const status = slot.walStatus ? `, wal_status ${slot.walStatus}` : '';
  const safe = slot.safeWalSizeBytes === null ? '' : `, ${bytes(slot.safeWalSizeBytes)} before it is lost`;
  const warning =
    slot.walStatus === 'lost'
      ? ' ⚠ lost: the WAL its standby needs is gone, the standby must be cloned again'
      : !slot.active
        ? ' ⚠ inactive: it holds WAL for a standby that is not connected'
        : '';
  return `slot ${slot.name} (${slot.type}): ${slot.active ? 'active' : 'inactive'}, ${retained}${status}${safe}${warning}`;
}

/** The database panel as lines. */
export function databaseLines(db: DatabaseData): string[] {
  const lines = [
    `${db.target}: PostgreSQL ${db.serverVersion}, ${db.role}`,
    `connections ${db.connections.used} of ${db.connections.max}, Knocknoc schema ${db.schemaVersion ?? 'none'}`,
  ];
  if (db.hosts.length > 1) lines.splice(1, 0, `on ${db.host} (of ${db.hosts.join(', ')})`);
  if (db.role === 'standby' && db.upstream) {
    lines.push(db.upstream.connected ? `receiving from its primary${worstLag(db)}` : 'not receiving from its primary (no WAL receiver)');
  }
  for (const s of db.standbys) {
    const lag = s.lagBytes === null ? 'lag hidden (needs pg_monitor)' : `lag ${bytes(s.lagBytes)}${s.lagSeconds === null ? '' : ` / ${age(s.lagSeconds)}`}`;
    lines.push(
      `standby ${s.name}${s.clientAddress ? ` (${s.clientAddress})` : ''}: ${s.state ?? '?'}${s.syncState ? `, ${s.syncState}` : ''}, ${lag}${s.slot ? `, slot ${s.slot}` : ''}`,
    );
  }
  for (const slot of db.slots ?? []) lines.push(slotLine(slot));
  if (db.role === 'primary' && db.standbys.length === 0) lines.push('no standby streams from it');
  if (db.tls) lines.push(...tlsLines(db.tls));
  if (db.allowList) {
    if ('error' in db.allowList) lines.push(`allow-list: ${db.allowList.error}`);
    else if (!db.allowList.exposed) lines.push('allow-list: not exposed to other web nodes (knocker exposedb --init)');
    else lines.push(`allow-list: ${db.allowList.cidrs.length > 0 ? db.allowList.cidrs.join(', ') : '(empty)'}`);
  }
  return lines;
}

/** The automatic pair this host is a data node of, each line with its health symbol (none elsewhere). */
export function formationLines(snapshot: Snapshot): Array<{ health: Health; text: string }> {
  const source = snapshot.formation;
  if (!source) return [];
  if (!source.data) return [{ health: 'warn', text: `${HEALTH_SYMBOL.warn} automatic pair: ${source.error ? `not read: ${source.error}` : 'not read yet'}` }];
  return formationPanelLines(source.data).map((l) => ({ health: l.health, text: `${HEALTH_SYMBOL[l.health]} ${l.text}` }));
}

/** Each host of a multi-host DatabaseURL as a new session finds it, then what is wrong (worst first), each with its health. */
export function roleLines(roles: RolesVerdict | undefined): Array<{ health: Health; text: string }> {
  if (!roles?.hosts) return [];
  const lines = roles.hosts.map((h) => ({
    health: (h.role === 'unreachable' ? 'warn' : roles.twoPrimaries && h.acceptsWrites ? 'fail' : 'ok') as Health,
    text: `host ${h.host}: ${h.role}${h.acceptsWrites ? ' (accepts writes)' : ''}${h.error ? ` (${h.error})` : ''}`,
  }));
  const problems = roles.problems.map((text) => ({ health: roles.health, text }));
  return [...problems, ...lines].map((l) => ({ ...l, text: `${HEALTH_SYMBOL[l.health]} ${l.text}` }));
}

function tlsLines(tls: NonNullable<DatabaseData['tls']>): string[] {
  if (!tls.offered) return ['TLS: not offered (connections to it are not encrypted)'];
  const checked = tls.verified === null ? 'not checked here (no CA known)' : tls.verified ? 'verified' : 'NOT verified with the CA given';
  const lines = [
    `TLS: certificate for ${tls.altNames.map((n) => n.replace(/^(IP Address|DNS):/, '')).join(', ') || tls.subject}, ${checked}, expires ${tls.notAfter.slice(0, 10)} (in ${tls.daysLeft} days)`,
  ];
  if (tls.expiring) {
    lines.push(
      tls.daysLeft < 0
        ? `⚠ the database's certificate has expired: the nodes cannot connect with verify-full; renew it on the primary: knocker exposedb --renew-cert`
        : `⚠ the database's certificate expires in ${tls.daysLeft} days: renew it on the primary: knocker exposedb --renew-cert`,
    );
  }
  return lines;
}

export interface StatusOutcome {
  /** CONTRACTS.md: 0 every server healthy, 1 degraded, 3 the database could not be reached. */
  exitCode: 0 | 1 | 3;
  verdict: string;
}

export function outcomeOf(snapshot: Snapshot): StatusOutcome {
  if (snapshot.roles?.health === 'fail') return { exitCode: 1, verdict: `degraded: ${snapshot.roles.problems[0]}` };
  const formation = snapshot.formation?.data;
  if (formation && formation.problems.length > 0) return { exitCode: 1, verdict: `degraded: ${formation.problems[0]}` };
  if (snapshot.summary.databaseUnreachable) return { exitCode: 3, verdict: `the database could not be reached: ${snapshot.sources.registry.error}` };
  const { total, healthy } = snapshot.summary;
  if (total === 0) return { exitCode: 1, verdict: 'degraded: no server is registered in this database' };
  if (healthy < total) return { exitCode: 1, verdict: `degraded: ${total - healthy} of ${plural(total, 'server')} not healthy` };
  return { exitCode: 0, verdict: `healthy: all ${plural(total, 'server')} online, in step and in rotation` };
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((row) =>
    row
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
}

/** `knocker status --once`: one plain-text snapshot. */
export function plainSnapshot(snapshot: Snapshot, staleAfterMs: number): string[] {
  const now = snapshot.at;
  const outcome = outcomeOf(snapshot);
  const lines = [`knocker status ${new Date(now).toISOString()}: ${outcome.verdict}`, summaryLine(snapshot), ''];
  if (snapshot.servers.length > 0) {
    const hosts = showsDatabaseHosts(snapshot);
    lines.push(
      ...table([
        ['', 'SERVER', 'HEALTH', 'VERSION', '/_STATUS', ...(hosts ? ['DATABASE'] : []), 'HAPROXY', 'FOR', 'CHECK', 'SESS', 'SEEN'],
        ...snapshot.servers.map((row) => [
          HEALTH_SYMBOL[row.health],
          row.name,
          row.word,
          versionCell(row),
          probeCell(row.probe),
          ...(hosts ? [databaseHostCell(row)] : []),
          haproxyCell(row.haproxy, row.backup),
          inStateCell(row.haproxy),
          checkCell(row.haproxy),
          row.haproxy ? String(row.haproxy.sessions) : '-',
          seenCell(row, now),
        ]),
      ]),
    );
    const problems = snapshot.servers.filter((r) => r.problems.length > 0);
    if (problems.length > 0) {
      lines.push('', 'Problems:');
      for (const row of problems) lines.push(`  ${row.name}: ${row.problems.join('; ')}`);
    }
  }
  const db = snapshot.sources.database;
  lines.push('', 'Database:');
  lines.push(...roleLines(snapshot.roles).map((l) => `  ${l.text}`));
  lines.push(...formationLines(snapshot).map((l) => `  ${l.text}`));
  if (db.data) lines.push(...databaseLines(db.data).map((l) => `  ${l}`));
  if (db.error) lines.push(`  not answering: ${db.error}`);
  lines.push('', `Sources: ${sourceList(snapshot, now, staleAfterMs)}`);
  return lines;
}

export function sourceList(snapshot: Snapshot, now: number, staleAfterMs: number): string {
  return Object.values(snapshot.sources)
    .map((s) => {
      const a = sourceAge(s, now, staleAfterMs);
      return `${s.name} ${s.absent ? 'n/a' : s.error ? `FAILING (${s.error})${s.updatedAt ? `, data ${a.text} old` : ''}` : a.text}`;
    })
    .join(' · ');
}

function sourceJson(source: SourceState<unknown>) {
  return {
    ok: source.error === undefined && source.absent === undefined && source.updatedAt !== undefined,
    updatedAt: source.updatedAt === undefined ? null : new Date(source.updatedAt).toISOString(),
    error: source.error ?? null,
    ...(source.absent ? { absent: source.absent } : {}),
  };
}

/** `knocker status --json`: one snapshot for scripts (documented in README). */
export function jsonSnapshot(snapshot: Snapshot): unknown {
  const outcome = outcomeOf(snapshot);
  const ha = snapshot.sources.haproxy.data;
  return {
    at: new Date(snapshot.at).toISOString(),
    healthy: outcome.exitCode === 0,
    exitCode: outcome.exitCode,
    verdict: outcome.verdict,
    summary: { servers: snapshot.summary.total, healthy: snapshot.summary.healthy },
    servers: snapshot.servers.map((row) => ({
      name: row.name,
      address: row.address ?? null,
      health: row.health,
      state: row.word,
      problems: row.problems,
      registry: row.registry
        ? {
            state: row.registry.state,
            online: row.registry.online,
            version: row.registry.version,
            schemaVersion: row.registry.schemaVersion,
            lastSeen: row.registry.lastSeen.toISOString(),
            startedAt: row.registry.startedAt.toISOString(),
          }
        : null,
      status: row.probe
        ? {
            http: row.probe.http ?? null,
            latencyMs: row.probe.latencyMs === undefined ? null : Math.round(row.probe.latencyMs * 10) / 10,
            status: row.probe.body?.status ?? null,
            version: row.probe.body?.version ?? null,
            versionMatch: row.probe.body?.versionMatch ?? null,
            databaseHost: typeof row.probe.body?.databaseHost === 'string' ? row.probe.body.databaseHost : null,
            error: row.probe.error ?? null,
          }
        : null,
      haproxy: row.haproxy
        ? {
            status: row.haproxy.status.state,
            statusText: row.haproxy.status.text,
            backup: row.backup,
            check: {
              status: row.haproxy.check.status,
              code: row.haproxy.check.code ?? null,
              durationMs: row.haproxy.check.durationMs ?? null,
              detail: row.haproxy.check.detail,
            },
            sessions: row.haproxy.sessions,
            secondsInState: row.haproxy.secondsInState,
          }
        : null,
    })),
    database: snapshot.sources.database.data ?? null,
    // Each host of a multi-host DatabaseURL as a new session finds it (null with one host).
    databaseHosts: snapshot.roles?.hosts ?? null,
    twoPrimaries: snapshot.roles?.twoPrimaries ?? false,
    databaseProblems: snapshot.roles?.problems ?? [],
    // On a data host of an automatic pair: the formation (ha/formation.ts FormationReport), else null.
    formation: snapshot.formation?.data ?? null,
    haproxy: ha ? { version: ha.version, pid: ha.pid, uptimeSeconds: ha.uptimeSeconds, frontend: ha.bind } : null,
    sources: {
      registry: sourceJson(snapshot.sources.registry),
      probes: sourceJson(snapshot.sources.probes),
      haproxy: sourceJson(snapshot.sources.haproxy),
      database: sourceJson(snapshot.sources.database),
      ...(snapshot.formation ? { formation: sourceJson(snapshot.formation) } : {}),
    },
  };
}
