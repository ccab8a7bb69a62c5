// The registry of web nodes sharing a database (table `servers`, migrations/001_initial.sql): a
// node registers when it starts, heartbeats while it runs and marks itself stopped when it stops.
// This is what lets an operator confirm that "every server sharing the database is listed and
// online" before an upgrade.
import type pg from 'pg';
import { MIGRATIONS_TABLE } from '../schema/index.js';

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
 * Registers (or re-registers) this node. Returns a warning when another live process holds the
 * same name at another address: two nodes with one ServerName would pass for one in the registry.
 */
export async function register(client: Queryable, me: Registration): Promise<string | undefined> {
  const existing = await client.query<{ listen: string; instance: string; live: boolean }>(
    `SELECT listen, instance, state = 'running' AND last_seen > now() - make_interval(secs => heartbeat_seconds * $2) AS live
       FROM servers WHERE name = $1`,
    [me.name, OFFLINE_AFTER_HEARTBEATS],
  );
  const other = existing.rows[0];
  await client.query(
    `INSERT INTO servers (name, listen, version, schema_version, state, instance, heartbeat_seconds, started_at, last_seen, stopped_at)
     VALUES ($1, $2, $3, $4, 'running', $5, $6, now(), now(), NULL)
     ON CONFLICT (name) DO UPDATE SET listen = EXCLUDED.listen, version = EXCLUDED.version, schema_version = EXCLUDED.schema_version,
       state = 'running', instance = EXCLUDED.instance, heartbeat_seconds = EXCLUDED.heartbeat_seconds,
       started_at = now(), last_seen = now(), stopped_at = NULL`,
    [me.name, me.listen, me.version, me.schemaVersion, me.instance, me.heartbeatSeconds],
  );
  if (other?.live && other.instance !== me.instance && other.listen !== me.listen) {
    return `another node at ${other.listen} was registered as "${me.name}" and is still heartbeating: give every node its own ServerName in knocknoc.conf`;
  }
  return undefined;
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
  const result = await client.query(
    `UPDATE servers SET state = 'stopped', stopped_at = now(), last_seen = now() WHERE name = $1 AND instance = $2`,
    [me.name, me.instance],
  );
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
            state = 'running' AND last_seen > now() - make_interval(secs => heartbeat_seconds * $1) AS online
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
