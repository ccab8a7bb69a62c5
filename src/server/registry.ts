// The registry of web nodes sharing a database (table `servers`, migrations/001_initial.sql): a
// node registers when it starts, heartbeats while it runs and marks itself stopped when it stops.
// This is what lets an operator confirm that "every server sharing the database is listed and
// online" before an upgrade.
import type pg from 'pg';
import { MIGRATIONS_TABLE } from '../schema/index.js';
import { orGiveUp, waitForOrUndefined } from '../system/wait.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** This node as it appears in the registry. */
export interface Registration {
  name: string;
  listen: string;
  version: string;
  schemaVersion: number;
  /** Random id of this process. */
  instance: string;
  heartbeatSeconds: number;
}

export interface RegisteredServer {
  name: string;
  listen: string;
  version: string;
  schemaVersion: number;
  state: 'running' | 'stopped';
  /** Running and heard from within three heartbeats. */
  online: boolean;
  lastSeen: Date;
  startedAt: Date;
}

/** Missed heartbeats after which a running server counts as offline. */
export const OFFLINE_AFTER_HEARTBEATS = 3;

/**
 * SQL for "this row's node is online", `$N` being OFFLINE_AFTER_HEARTBEATS. Any holder of the
 * nodes' role can write a row, so its numbers are computed in double precision: an integer product
 * (heartbeat_seconds = 2147483647, which the schema allows) would fail the whole query, and one odd
 * row would hide every other.
 */
export function onlineSql(param: string): string {
  return `state = 'running' AND last_seen > now() - make_interval(secs => heartbeat_seconds::double precision * ${param}::double precision)`;
}

/** Registers (or re-registers) this node; `liveHolder` first tells whether another node holds the name. */
export async function register(client: Queryable, me: Registration): Promise<void> {
  await client.query(
    `INSERT INTO servers (name, listen, version, schema_version, state, instance, heartbeat_seconds, started_at, last_seen, stopped_at)
     VALUES ($1, $2, $3, $4, 'running', $5, $6, now(), now(), NULL)
     ON CONFLICT (name) DO UPDATE SET listen = EXCLUDED.listen, version = EXCLUDED.version, schema_version = EXCLUDED.schema_version,
       state = 'running', instance = EXCLUDED.instance, heartbeat_seconds = EXCLUDED.heartbeat_seconds,
       started_at = now(), last_seen = now(), stopped_at = NULL`,
    [me.name, me.listen, me.version, me.schemaVersion, me.instance, me.heartbeatSeconds],
  );
}

/** Another process registered under this node's name, still counted online. */
export interface NameHolder {
  listen: string;
  instance: string;
  /** last_seen as PostgreSQL writes it (microseconds: a Date would round them away). */
  lastSeen: string;
  heartbeatSeconds: number;
}

/** The online holder of `me.name` other than this process, if any. */
export async function onlineHolder(client: Queryable, me: Pick<Registration, 'name' | 'instance'>): Promise<NameHolder | undefined> {
  const result = await client.query<{ listen: string; instance: string; last_seen: string; heartbeat_seconds: number }>(
    `SELECT listen, instance, last_seen::text AS last_seen, heartbeat_seconds FROM servers
      WHERE name = $1 AND instance IS DISTINCT FROM $2
        AND ${onlineSql('$3')}`,
    [me.name, me.instance, OFFLINE_AFTER_HEARTBEATS],
  );
  const row = result.rows[0];
  return row ? { listen: row.listen, instance: row.instance, lastSeen: row.last_seen, heartbeatSeconds: row.heartbeat_seconds } : undefined;
}

/**
 * Whether the holder heartbeats again within one heartbeat (and a margin): a process that still
 * runs does; the row of one killed outright (this very node before a crash) stays as it was.
 */
export async function stillHeartbeating(client: Queryable, name: string, holder: NameHolder, pollMs = 200): Promise<boolean> {
  const beat = await waitForOrUndefined(
    `${name}'s holder to heartbeat again`,
    async () => {
      const result = await orGiveUp(
        client.query<{ beat: boolean }>(`SELECT last_seen::text <> $3 AS beat FROM servers WHERE name = $1 AND instance = $2`, [
          name,
          holder.instance,
          holder.lastSeen,
        ]),
      );
      const row = result.rows[0];
      // The row changed hands or went: whoever held it is not heartbeating as that process.
      if (!row) return false;
      return row.beat ? true : undefined;
    },
    // The row's heartbeat is the holder's word: a start never waits on it longer than a minute.
    { timeoutMs: Math.min(60, Math.max(1, holder.heartbeatSeconds)) * 1000 + 2_000, everyMs: pollMs },
  );
  return beat ?? false;
}

/** Removes a server from the registry (`knocker server forget`); true when there was a row. */
export async function forgetServer(client: Queryable, name: string): Promise<boolean> {
  const result = await client.query('DELETE FROM servers WHERE name = $1', [name]);
  return (result.rowCount ?? 0) > 0;
}

/** The health check's query: the database's schema version (null: no Knocknoc schema). */
export const CHECK_SQL = {
  name: 'knocknoc-check',
  text: `SELECT (SELECT max(version) FROM ${MIGRATIONS_TABLE}) AS schema_version, 0 AS beats`,
};

/** The same, with a heartbeat: one round trip keeps both the check and the registry fresh. */
export const HEARTBEAT_SQL = {
  name: 'knocknoc-heartbeat',
  text: `WITH beat AS (
           UPDATE servers SET last_seen = now(), state = 'running', stopped_at = NULL
            WHERE name = $1 AND instance = $2 RETURNING 1)
         SELECT (SELECT max(version) FROM ${MIGRATIONS_TABLE}) AS schema_version, (SELECT count(*) FROM beat)::int AS beats`,
};

export interface CheckRow {
  schema_version: number | null;
  beats: number;
}

/** Who holds this name now, when a heartbeat found no row of ours. */
export async function holderOf(client: Queryable, name: string): Promise<{ listen: string; instance: string } | undefined> {
  const result = await client.query<{ listen: string; instance: string }>('SELECT listen, instance FROM servers WHERE name = $1', [name]);
  return result.rows[0];
}

export async function markStopped(client: Queryable, me: Registration): Promise<boolean> {
  const result = await client.query(`UPDATE servers SET state = 'stopped', stopped_at = now(), last_seen = now() WHERE name = $1 AND instance = $2`, [
    me.name,
    me.instance,
  ]);
  return (result.rowCount ?? 0) > 0;
}

export async function listServers(client: Queryable): Promise<RegisteredServer[]> {
  const result = await client.query<{
    name: string;
    listen: string;
    version: string;
    schema_version: number;
    state: 'running' | 'stopped';
    online: boolean;
    last_seen: Date;
    started_at: Date;
  }>(
    `SELECT name, listen, version, schema_version, state, started_at, last_seen,
            ${onlineSql('$1')} AS online
       FROM servers ORDER BY name`,
    [OFFLINE_AFTER_HEARTBEATS],
  );
  return result.rows.map((r) => ({
    name: r.name,
    listen: r.listen,
    version: r.version,
    schemaVersion: r.schema_version,
    state: r.state,
    online: r.online,
    lastSeen: r.last_seen,
    startedAt: r.started_at,
  }));
}
