// The dashboard's judgement of a server from what each source says, its filter, its events and
// its formats, on hand-made snapshots (the sources themselves are tested on a real cluster).
import { describe, expect, test } from 'vitest';
import { parseServerStatus, type ServerStat } from '../../src/haproxy/runtime.js';
import type { RegisteredServer } from '../../src/server/registry.js';
import { databaseLines, outcomeOf, probeCell } from '../../src/status/format.js';
import { age, bytes, plural, seconds } from '../../src/system/units.js';
import { eventsBetween, judge, matchesFilter, sortRows, type Probe, type ServerRow, type Snapshot } from '../../src/status/model.js';
import { rolesVerdict } from '../../src/status/roles.js';
import { nextInterval } from '../../src/status/monitor.js';
import { visibleWindow } from '../../src/screens/status-screen.js';

const registered = (over: Partial<RegisteredServer> = {}): RegisteredServer => ({
  name: 'web-1',
  listen: '10.0.0.11:8756',
  version: '1.0.0',
  schemaVersion: 1,
  state: 'running',
  online: true,
  lastSeen: new Date(),
  startedAt: new Date(),
  ...over,
});
const probe = (over: Partial<Probe> = {}): Probe => ({
  address: '10.0.0.11:8756',
  at: Date.now(),
  http: 200,
  latencyMs: 2,
  body: {
    status: 'ok',
    server: 'web-1',
    version: '1.0.0',
    schemaVersion: 1,
    databaseSchemaVersion: 1,
    versionMatch: true,
    database: 'ok',
    databaseHost: '127.0.0.1:5432',
    uptimeSeconds: 5,
  },
  error: undefined,
  ...over,
});
const stat = (status: string, check = 'L7OK'): ServerStat =>
  ({
    backend: 'web_nodes',
    name: 'web-1',
    status: parseServerStatus(status),
    sessions: 0,
    secondsInState: 5,
    check: { status: check, running: false, code: 200, durationMs: 1, description: '', detail: '', failures: 0, downTransitions: 0 },
  }) as unknown as ServerStat;

function row(over: Partial<Omit<ServerRow, 'health' | 'word' | 'problems'>> = {}, haproxyKnown = true): ServerRow {
  const base = { name: 'web-1', address: '10.0.0.11:8756', registry: registered(), probe: probe(), haproxy: stat('UP'), backup: false, ...over };
  return { ...base, ...judge(base, haproxyKnown) };
}

describe('judge', () => {
  test('online, answering 200 in step, UP in HAProxy: ok', () => {
    expect(row()).toMatchObject({ health: 'ok', word: 'ok', problems: [] });
    expect(row({ haproxy: undefined }, false)).toMatchObject({ health: 'ok', word: 'ok' });
  });
  test('the worst problem names the state; every problem is listed', () => {
    expect(
      row({
        registry: registered({ online: false }),
        probe: probe({ http: undefined, body: undefined, error: 'connection refused' }),
        haproxy: stat('DOWN', 'L4CON'),
      }),
    ).toMatchObject({
      health: 'fail',
      word: 'offline',
      problems: ['offline (no heartbeat)', '/_status: connection refused', 'HAProxy: DOWN (L4CON)'],
    });
    expect(row({ registry: registered({ state: 'stopped', online: false }) }).word).toBe('stopped');
    expect(
      row({ probe: probe({ http: 503, body: { ...probe().body!, status: 'out-of-step', databaseSchemaVersion: 2, versionMatch: false } }) }),
    ).toMatchObject({
      health: 'fail',
      word: 'out-of-step',
      problems: ['out of step: release expects schema 1, the database has 2'],
    });
    expect(row({ registry: undefined }).word).toBe('unregistered');
  });
  test('out of rotation or on the way out is attention, not failure', () => {
    expect(row({ haproxy: stat('DRAIN') })).toMatchObject({ health: 'warn', word: 'draining' });
    expect(row({ haproxy: stat('MAINT', '') })).toMatchObject({ health: 'warn', word: 'maint' });
    expect(row({ haproxy: stat('UP 2/3') })).toMatchObject({ health: 'warn', word: 'failing', problems: ['HAProxy: UP 2/3 (checks failing)'] });
    expect(row({ haproxy: undefined })).toMatchObject({ health: 'warn', word: 'not-in-lb' });
    expect(row({ probe: undefined })).toMatchObject({ health: 'warn', word: 'checking' });
    expect(row({ backup: true })).toMatchObject({ health: 'ok', word: 'standby' });
    // Just asked to be ready: health forced down until `rise` checks pass, its checks passing.
    expect(row({ haproxy: stat('DOWN 1/2') })).toMatchObject({
      health: 'warn',
      word: 'rising',
      problems: ['HAProxy: DOWN 1/2 (checks passing: back in rotation after 1 more)'],
    });
    expect(row({ haproxy: stat('DOWN', 'L7OK') })).toMatchObject({ health: 'warn', word: 'rising' });
    expect(row({ haproxy: stat('DOWN', 'L7STS') })).toMatchObject({ health: 'fail', word: 'down' });
  });
});

test('a server on another database host than the primary is old-primary; a release without databaseHost is not judged', () => {
  const on = (host: string | undefined) => {
    const body = { ...probe().body!, databaseHost: host } as NonNullable<Probe['body']>;
    if (host === undefined) delete (body as { databaseHost?: string }).databaseHost;
    const base = { name: 'web-1', address: '10.0.0.11:8756', registry: registered(), probe: probe({ body }), haproxy: stat('UP'), backup: false };
    const database = {
      role: 'primary',
      host: '10.0.0.12:5432',
      serverAddress: '192.0.2.12:5432',
      hosts: ['10.0.0.11:5432', '10.0.0.12:5432'],
      standbys: [{ clientAddress: '10.0.0.13/32' }],
    } as never;
    const survey = {
      round: 7,
      answers: [
        { host: '10.0.0.11:5432', role: 'read-only' as const, inRecovery: false, acceptsWrites: false, error: null },
        { host: '10.0.0.12:5432', role: 'primary' as const, inRecovery: false, acceptsWrites: true, error: null },
      ],
    };
    return { ...base, ...judge(base, true, undefined, rolesVerdict({ survey, database: { data: database, round: 7 }, usedBy: [] }), database) };
  };
  expect(on('10.0.0.12:5432')).toMatchObject({ health: 'ok', word: 'ok' });
  // The primary's own address, as another node's DatabaseURL may name it.
  expect(on('192.0.2.12:5432')).toMatchObject({ health: 'ok', word: 'ok' });
  expect(on('10.0.0.11:5432')).toMatchObject({
    health: 'fail',
    word: 'old-primary',
    problems: [
      'uses the database on 10.0.0.11:5432, a primary that no longer accepts new writes (read-only), not the primary 10.0.0.12:5432; it moves to 10.0.0.12:5432 when it reconnects',
    ],
  });
  // A standby streaming from the primary, named by its address.
  expect(on('10.0.0.13:5432')).toMatchObject({ health: 'fail', word: 'old-primary' });
  // A host status does not know to be another server: the same primary reached by another
  // address (status on 127.0.0.1 on the primary's host, a node on 198.18.0.11) is not judged.
  expect(on('198.18.0.11:5432')).toMatchObject({ health: 'ok', word: 'ok' });
  expect(on(undefined)).toMatchObject({ health: 'ok', word: 'ok' });
  // Status itself on a standby (one host in DatabaseURL) knows no primary to compare with.
  expect(
    rolesVerdict({ survey: undefined, database: { data: { role: 'standby', host: '10.0.0.12:5432', serverAddress: null } as never, round: 1 }, usedBy: [] })
      .primary,
  ).toBeUndefined();
});

test("events: the database host status is on, and a server's database host, changing", () => {
  const withHost = (servers: ServerRow[], host: string) => {
    const snap = snapshot(servers);
    snap.sources.database.data = { schemaVersion: 1, role: 'primary', host } as never;
    return snap;
  };
  const moved = (host: string) => row({ probe: probe({ body: { ...probe().body!, databaseHost: host } }) });
  expect(
    eventsBetween(withHost([moved('10.0.0.11:5432')], '10.0.0.11:5432'), withHost([moved('10.0.0.12:5432')], '10.0.0.12:5432')).map(
      (e) => `${e.level} ${e.text}`,
    ),
  ).toEqual(['warn database: now on 10.0.0.12:5432 (was 10.0.0.11:5432), a primary', 'ok web-1: database 10.0.0.11:5432 → 10.0.0.12:5432']);
});

test('the database panel: the host of the list, each standby with its slot, each slot with its WAL; an inactive or lost slot is flagged', () => {
  const lines = databaseLines({
    target: '10.0.0.11:5432,10.0.0.12:5432/knocknoc as knocknoc',
    hosts: ['10.0.0.11:5432', '10.0.0.12:5432'],
    host: '10.0.0.11:5432',
    serverAddress: '10.0.0.11:5432',
    serverVersion: '15.18',
    role: 'primary',
    connections: { used: 3, max: 100 },
    schemaVersion: 1,
    limited: false,
    standbys: [{ name: 'standby_b', clientAddress: '10.0.0.12', state: 'streaming', syncState: 'async', lagBytes: 2048, lagSeconds: 0.5, slot: 'standby_b' }],
    slots: [
      { name: 'standby_b', type: 'physical', active: true, walStatus: 'reserved', retainedBytes: 2048, safeWalSizeBytes: null },
      { name: 'standby_c', type: 'physical', active: false, walStatus: 'extended', retainedBytes: 64 * 1024 * 1024, safeWalSizeBytes: 1024 * 1024 * 1024 },
      { name: 'standby_d', type: 'physical', active: false, walStatus: 'lost', retainedBytes: null, safeWalSizeBytes: null },
    ],
  });
  expect(lines[1]).toBe('on 10.0.0.11:5432 (of 10.0.0.11:5432, 10.0.0.12:5432)');
  expect(lines).toContain(`standby standby_b (10.0.0.12): streaming, async, lag ${bytes(2048)} / ${age(0.5)}, slot standby_b`);
  expect(lines).toContain(`slot standby_b (physical): active, retains ${bytes(2048)} of WAL, wal_status reserved`);
  expect(lines).toContain(
    `slot standby_c (physical): inactive, retains ${bytes(64 * 1024 * 1024)} of WAL, wal_status extended, ${bytes(1024 * 1024 * 1024)} before it is lost ⚠ inactive: it holds WAL for a standby that is not connected`,
  );
  expect(lines.find((l) => l.startsWith('slot standby_d'))).toMatch(
    /inactive, retains no WAL, wal_status lost ⚠ lost: the WAL its standby needs is gone, the standby must be cloned again$/,
  );
});

test('problems first, then by name (web-2 before web-10); the filter matches anywhere, ! inverts', () => {
  const rows = sortRows([
    row({ name: 'web-10' }),
    row({ name: 'web-2' }),
    row({ name: 'web-3', haproxy: stat('DRAIN') }),
    row({ name: 'web-4', haproxy: stat('DOWN', 'L4CON') }),
  ]);
  expect(rows.map((r) => r.name)).toEqual(['web-4', 'web-3', 'web-2', 'web-10']);
  expect(rows.filter((r) => matchesFilter(r, 'drain')).map((r) => r.name)).toEqual(['web-3']);
  expect(rows.filter((r) => matchesFilter(r, '!web-1')).map((r) => r.name)).toEqual(['web-4', 'web-3', 'web-2']);
  expect(rows.filter((r) => matchesFilter(r, 'WEB-2')).map((r) => r.name)).toEqual(['web-2']);
  expect(rows.filter((r) => matchesFilter(r, '!')).length).toBe(4);
});

function snapshot(servers: ServerRow[], over: { pid?: number; schema?: number; registryError?: string } = {}): Snapshot {
  const source = <T>(name: Snapshot['sources'][keyof Snapshot['sources']]['name'], data: T, error?: string) => ({
    name,
    data,
    updatedAt: 1,
    error,
    busy: false,
  });
  return {
    at: Date.now(),
    sources: {
      registry: source(
        'registry',
        servers.map((s) => s.registry!),
        over.registryError,
      ),
      probes: source('probes', new Map()),
      haproxy: source('haproxy', { version: '2.6', pid: over.pid ?? 10, uptimeSeconds: 1, servers: [], configured: [], bind: '' }),
      database: source('database', { schemaVersion: over.schema ?? 1, role: 'primary' } as never),
    },
    servers,
    summary: { total: servers.length, healthy: servers.filter((s) => s.health === 'ok').length, databaseUnreachable: false },
  } as Snapshot;
}

test('events: state changes, versions, reloads, migrations and sources failing', () => {
  const before = snapshot([row(), row({ name: 'web-2' })]);
  const after = snapshot([row({ haproxy: stat('DOWN', 'L4CON') }), row({ name: 'web-2', probe: probe({ body: { ...probe().body!, version: '1.1.0' } }) })], {
    pid: 11,
    schema: 2,
    registryError: 'connection refused',
  });
  expect(eventsBetween(before, after).map((e) => `${e.level} ${e.text}`)).toEqual([
    'fail registry: connection refused',
    'warn HAProxy reloaded (worker pid 10 → 11)',
    'warn database schema 1 → 2 (migrated)',
    'fail web-1: ok → down: HAProxy: DOWN (L4CON)',
    'ok web-2: version 1.0.0 → 1.1.0',
  ]);
  expect(eventsBetween(after, snapshot([row()])).map((e) => e.text)).toContain('web-2 is no longer listed');
  // A version going down is attention, not a ✔.
  const older = snapshot([row(), row({ name: 'web-2', probe: probe({ body: { ...probe().body!, version: '0.9.0' } }) })]);
  expect(eventsBetween(before, older).map((e) => `${e.level} ${e.text}`)).toEqual(['warn web-2: version 1.0.0 → 0.9.0 (an older release)']);
  // A server's first answer (out of "checking") is not a change, whatever it says.
  const asking = snapshot([row({ probe: undefined }), row({ name: 'web-2', probe: undefined })]);
  expect(eventsBetween(asking, snapshot([row(), row({ name: 'web-2', haproxy: stat('DOWN', 'L4CON') })]))).toEqual([]);
});

test('exit codes: 0 healthy, 1 degraded or empty, 3 database unreachable', () => {
  expect(outcomeOf(snapshot([row()])).exitCode).toBe(0);
  expect(outcomeOf(snapshot([row(), row({ name: 'web-2', haproxy: stat('MAINT', '') })])).exitCode).toBe(1);
  expect(outcomeOf(snapshot([])).exitCode).toBe(1);
  const down = snapshot([]);
  down.summary.databaseUnreachable = true;
  expect(outcomeOf(down)).toMatchObject({ exitCode: 3 });
});

test('cells and units', () => {
  expect(probeCell(probe({ latencyMs: 3.46 }))).toBe('200 3.5ms');
  expect(probeCell(probe({ latencyMs: 23.4 }))).toBe('200 23ms');
  expect(probeCell(probe({ http: undefined, error: 'connection refused' }))).toBe('refused');
  expect(probeCell(probe({ http: undefined, error: 'no answer from http://x/_status within 1000 ms' }))).toBe('timeout');
  expect([age(4), age(185), age(7800), age(443_000)]).toEqual(['4s', '3m05s', '2h10m', '5d03h']);
  // Binary, with IEC names: `standby status` and the dashboard print the same size for the same WAL.
  expect([bytes(0), bytes(1023), bytes(2048), bytes(12_345), bytes(16 * 1024 ** 2), bytes(3 * 1024 ** 3)]).toEqual([
    '0 B',
    '1023 B',
    '2.0 KiB',
    '12 KiB',
    '16 MiB',
    '3.0 GiB',
  ]);
  expect([seconds(30_000), seconds(40), seconds(12_345)]).toEqual(['30 s', '0.04 s', '12.3 s']);
  expect([plural(1, 'server'), plural(0, 'server'), plural(3, 'standby')]).toEqual(['1 server', '0 servers', '3 standbys']);
  expect([nextInterval(2000, 1), nextInterval(2000, -1), nextInterval(500, -1), nextInterval(60_000, 1), nextInterval(1500, 1)]).toEqual([
    3000, 1000, 500, 60_000, 2000,
  ]);
});

test('a long table shows the rows that fit, the selected one always among them', () => {
  expect(visibleWindow(3, 0, 10)).toEqual({ start: 0, end: 3 });
  // 200 rows in 12 lines: 10 rows and the two "more above/below" lines.
  expect(visibleWindow(200, 0, 12)).toEqual({ start: 0, end: 10 });
  expect(visibleWindow(200, 57, 12)).toEqual({ start: 52, end: 62 });
  expect(visibleWindow(200, 199, 12)).toEqual({ start: 190, end: 200 });
});
