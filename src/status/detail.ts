// The dashboard's detail views as sections of lines (a title, then lines each with a health when
// it has one): a server's (its address, registry row, the /_status answer as it came, HAProxy's
// check and counters, the database host it uses) and the database's (each host of DatabaseURL and
// its role, standbys, slots, lag). Plain functions of a snapshot, drawn by src/screens/.
import { age, bytes } from '../system/units.js';
import { databaseLines, formationLines, HEALTH_SYMBOL, roleLines } from './format.js';
import type { Health, ServerRow, Snapshot } from './model.js';

export interface DetailLine {
  text: string;
  health?: Health;
}

export interface DetailSection {
  title: string;
  lines: DetailLine[];
}

const when = (date: Date, now: number) => `${date.toISOString().replace('T', ' ').slice(0, 19)} UTC (${age((now - date.getTime()) / 1000)} ago)`;

export function serverDetail(row: ServerRow, snapshot: Snapshot, now: number, localName: string | undefined): DetailSection[] {
  const sections: DetailSection[] = [];
  sections.push({
    title: `${HEALTH_SYMBOL[row.health]} ${row.name}: ${row.word}${row.name === localName ? " (this host's node)" : ''}`,
    lines: [
      { text: `address ${row.address ?? 'none known (registered with a wildcard Listen on another host)'}` },
      ...row.problems.map((text) => ({ text, health: row.health })),
    ],
  });
  const r = row.registry;
  sections.push({
    title: 'Registry (servers table of the shared database)',
    lines: r
      ? [
          { text: `state ${r.state}, ${r.online ? 'online' : 'offline (no heartbeat)'}, listen ${r.listen}` },
          { text: `release ${r.version}, schema ${r.schemaVersion}` },
          { text: `started ${when(r.startedAt, now)}` },
          { text: `last seen ${when(r.lastSeen, now)}` },
        ]
      : [{ text: 'not in the registry of this database', health: 'fail' }],
  });
  const p = row.probe;
  sections.push({
    title: `/_status${p ? ` (GET http://${p.address}/_status, ${age((now - p.at) / 1000)} ago)` : ''}`,
    lines: p
      ? [
          {
            text:
              p.http === undefined
                ? `no answer: ${p.error ?? 'unknown'}`
                : `HTTP ${p.http}${p.latencyMs === undefined ? '' : ` in ${p.latencyMs.toFixed(1)} ms`}${p.error ? ` (${p.error})` : ''}`,
            ...(p.http === 200 && !p.error ? {} : { health: 'fail' as const }),
          },
          ...(p.body ? [{ text: JSON.stringify(p.body) }] : []),
        ]
      : [{ text: row.address ? 'not asked yet' : 'not asked: no address to ask on' }],
  });
  const h = row.haproxy;
  sections.push({
    title: 'HAProxy',
    lines: h
      ? [
          {
            text: `${h.backend}/${h.name}: ${h.status.text}${row.backup ? ' (backup)' : ''}, weight ${h.weight}, in this state ${age(h.secondsInState)}, down ${age(h.downtimeSeconds)} in all`,
          },
          {
            text: `check ${h.check.status || 'paused'}${h.check.code === undefined ? '' : ` ${h.check.code}`}${h.check.durationMs === undefined ? '' : ` in ${h.check.durationMs} ms`}${h.check.detail ? `: ${h.check.detail}` : ''}; ${h.check.failures} failed, ${h.check.downTransitions} times down`,
          },
          {
            text: `sessions ${h.sessions} now, ${h.queued} queued, ${h.totalSessions} since HAProxy started, picked ${h.timesSelected} times, last session ${h.secondsSinceLastSession === undefined ? 'never' : `${age(h.secondsSinceLastSession)} ago`}`,
          },
          {
            text: `errors: ${h.connectionErrors} connecting, ${h.responseErrors} in responses; ${h.retries} retries, ${h.redispatches} redispatched${h.throttlePercent === undefined ? '' : `; slowstart at ${h.throttlePercent} %`}`,
          },
        ]
      : [{ text: snapshot.sources.haproxy.data ? 'not in HAProxy on this host' : 'HAProxy is not read on this host' }],
  });
  const on = p?.body?.databaseHost;
  const answer = typeof on === 'string' ? snapshot.roles?.hosts?.find((host) => host.host === on) : undefined;
  sections.push({
    title: 'Database host',
    lines: [
      {
        text:
          typeof on === 'string'
            ? `${on} (as its /_status says)${answer ? `: a new session finds ${answer.role}${answer.acceptsWrites ? ', accepting writes' : ''}` : ''}`
            : on === null
              ? 'none: its database is unreachable'
              : 'not said (an older release, or no /_status answer)',
      },
    ],
  });
  return sections;
}

export function databaseDetail(snapshot: Snapshot, now: number): DetailSection[] {
  const db = snapshot.sources.database;
  const data = db.data;
  const sections: DetailSection[] = [];
  const roles = snapshot.roles;
  sections.push({
    title: 'Hosts of DatabaseURL',
    lines: roles?.hosts
      ? [
          ...roleLines(roles),
          {
            text: roles.primary
              ? `the primary, as both views agree: ${[...new Set(roles.primary.names)].join(', ')}`
              : `the primary is not settled in this refresh${roles.unsettled ? `: ${roles.unsettled}` : ''}`,
          },
        ]
      : [{ text: data ? `one host: ${data.host}` : 'not known yet' }],
  });
  if (snapshot.formation) {
    // A data host of an automatic pair: the formation as pg_auto_failover tells it.
    sections.push({
      title: 'Automatic pair (pg_auto_failover)',
      lines: formationLines(snapshot).map((l) => ({ text: l.text, health: l.health === 'ok' ? undefined : l.health })),
    });
  }
  if (data) {
    // Its standbys and slots have sections of their own below.
    const general = databaseLines(data).filter((text) => !/^(standby|slot) /.test(text));
    sections.push({ title: `Connected to ${data.host}`, lines: general.map((text) => ({ text })) });
    if (data.role === 'primary') {
      sections.push({
        title: `Standbys (${data.standbys.length})`,
        lines:
          data.standbys.length === 0
            ? [{ text: 'none streams from it' }]
            : data.standbys.map((s) => ({
                text: `${s.name}: from ${s.clientAddress ?? '?'}, ${s.state ?? '? (needs pg_monitor)'}${s.syncState ? `, ${s.syncState}` : ''}, lag ${s.lagBytes === null ? '?' : bytes(s.lagBytes)}${s.lagSeconds === null ? '' : ` / ${age(s.lagSeconds)}`}, slot ${s.slot ?? 'none'}`,
                health: s.state === 'streaming' ? undefined : ('warn' as const),
              })),
      });
      sections.push({
        title: `Replication slots (${data.slots.length})`,
        lines:
          data.slots.length === 0
            ? [{ text: 'none' }]
            : data.slots.map((s) => ({
                text: `${s.name} (${s.type}): ${s.active ? 'active' : 'inactive'}, retains ${s.retainedBytes === null ? '?' : bytes(s.retainedBytes)}, wal_status ${s.walStatus ?? '?'}${s.safeWalSizeBytes === null ? '' : `, ${bytes(s.safeWalSizeBytes)} before it is lost`}`,
                health: s.walStatus === 'lost' ? ('fail' as const) : s.active ? undefined : ('warn' as const),
              })),
      });
    } else if (data.upstream) {
      const u = data.upstream;
      sections.push({
        title: 'Upstream (this host is a standby)',
        lines: [
          {
            text: u.connected
              ? `receiving from its primary, lag ${u.lagBytes === null ? '?' : bytes(u.lagBytes)}${u.lagSeconds === null ? '' : ` / ${age(u.lagSeconds)}`}`
              : 'not receiving from its primary (no WAL receiver)',
            health: u.connected ? undefined : 'fail',
          },
        ],
      });
    }
  }
  sections.push({
    title: 'Source',
    lines: [
      {
        text: db.error
          ? `not answering${db.updatedAt ? ` (data above is ${age((now - db.updatedAt) / 1000)} old)` : ''}: ${db.error}`
          : db.updatedAt
            ? `read ${age((now - db.updatedAt) / 1000)} ago`
            : 'loading…',
        ...(db.error ? { health: 'fail' as const } : {}),
      },
    ],
  });
  return sections;
}
