// What a PostgreSQL server says of its replication (pg_stat_replication, pg_replication_slots),
// read in one place with one type for `knocker standby status` and the dashboard (`knocker status`).

/** The one thing the readers need of a connection (a pool, a client or an admin session). */
export interface Queryable {
  query<R extends object>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

/** A standby streaming from this primary, as pg_stat_replication shows it. */
export interface StandbyInfo {
  name: string;
  clientAddress: string | null;
  /** null (and the positions below): the login may not see them (pg_stat_replication needs pg_monitor). */
  state: string | null;
  syncState: string | null;
  /** WAL the standby has still to replay. */
  lagBytes: number | null;
  /** How far behind its replay is in time; 0 when caught up. */
  lagSeconds: number | null;
  /** The replication slot it streams through (pg_replication_slots.active_pid), if any. */
  slot: string | null;
}

/** A replication slot (pg_replication_slots): an inactive one still holds WAL. */
export interface SlotInfo {
  name: string;
  /** physical or logical. */
  type: string;
  active: boolean;
  /** reserved, extended, unreserved or lost (PostgreSQL 13+); null when not reported. */
  walStatus: string | null;
  /** WAL kept for it: from its restart_lsn to this server's current position (on a standby, what it received or replayed). */
  retainedBytes: number | null;
  /** How much more WAL may be written before it is lost (null: no max_slot_wal_keep_size). */
  safeWalSizeBytes: number | null;
}

const num = (value: string | null) => (value === null ? null : Number(value));

/** The standbys streaming from this primary. */
export async function readStandbys(db: Queryable): Promise<StandbyInfo[]> {
  const { rows } = await db.query<{
    name: string;
    client_addr: string | null;
    state: string | null;
    sync_state: string | null;
    lag_bytes: string | null;
    lag_seconds: number | null;
    slot: string | null;
  }>(
    `SELECT r.application_name AS name, host(r.client_addr) AS client_addr, r.state, r.sync_state,
            pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint AS lag_bytes,
            -- replay_lag is NULL once a standby has caught up and nothing is written: 0 then.
            CASE WHEN r.replay_lsn = pg_current_wal_lsn() THEN 0
                 ELSE extract(epoch FROM r.replay_lag)::float8 END AS lag_seconds,
            (SELECT s.slot_name::text FROM pg_replication_slots s WHERE s.active_pid = r.pid LIMIT 1) AS slot
       FROM pg_stat_replication r ORDER BY r.application_name`,
  );
  return rows.map((r) => ({
    name: r.name,
    clientAddress: r.client_addr,
    state: r.state,
    syncState: r.sync_state,
    lagBytes: num(r.lag_bytes),
    lagSeconds: r.lag_seconds,
    slot: r.slot,
  }));
}

/** The replication slots of this server (`primary`: it is one; else a standby, measured from what it received or replayed). */
export async function readSlots(db: Queryable, primary: boolean): Promise<SlotInfo[]> {
  const { rows } = await db.query<{ name: string; type: string; active: boolean; wal_status: string | null; retained: string | null; safe: string | null }>(
    `SELECT slot_name::text AS name, slot_type AS type, active, wal_status, safe_wal_size::bigint AS safe,
            greatest(0, CASE WHEN $1 THEN pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)
                             ELSE pg_wal_lsn_diff(greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), restart_lsn) END)::bigint AS retained
       FROM pg_replication_slots ORDER BY slot_name`,
    [primary],
  );
  return rows.map((r) => ({
    name: r.name,
    type: r.type,
    active: r.active,
    walStatus: r.wal_status,
    retainedBytes: num(r.retained),
    safeWalSizeBytes: num(r.safe),
  }));
}
