// SQL on the other database host, as the replication role over the network (TLS verify-full with
// the cluster's CA, the password from this host's passfile): is it up, is it a primary or a
// standby, where is its WAL, promote it, CHECKPOINT it, fence it. It leaves from this host's own
// address, so the peer's pg_hba.conf sees the host it allows.
import fs from 'node:fs/promises';
import type pg from 'pg';
import { PreflightError } from '../errors.js';
import { connect, describeConnectError } from '../postgres/connect.js';
import type { DatabaseUrl } from '../postgres/url.js';
import { until } from './run.js';
import type { Logger } from '../system/log.js';
import type { Root } from '../system/root.js';
import { passwordFrom } from './conninfo.js';
import type { Endpoint } from './node.js';
import { REPLICATION_ROLE, STANDBY_PATHS } from './paths.js';

export interface PeerFacts {
  inRecovery: boolean;
  /** SHOW transaction_read_only as a new session gets it (on: a client skips it for writes). */
  readOnly: boolean;
  /** The timeline of its WAL: the current one on a primary, the received one on a standby. */
  timeline: number;
  /** pg_current_wal_lsn() on a primary; the last received (flushed) LSN on a standby. */
  lsn: string | undefined;
  replayLsn: string | undefined;
  /** Its receiver: streaming, and from where. */
  receiver: { status: string; senderHost: string | null } | undefined;
  serverVersionNum: number;
  fullPageWrites: boolean;
}

export async function replicationPassword(root: Root): Promise<string> {
  const file = root.path(STANDBY_PATHS.passfile);
  const text = await fs.readFile(file, 'utf8').catch(() => undefined);
  const password = text === undefined ? undefined : passwordFrom(text, REPLICATION_ROLE);
  if (!password)
    throw new PreflightError(`${file} holds no password for ${REPLICATION_ROLE}`, [
      'run knocker standby init (on a standby) or knocker exposedb --add-standby (on the primary) first',
    ]);
  return password;
}

export interface PeerLink {
  client: pg.Client;
  close(): Promise<void>;
}

export interface PeerCredentials {
  password: string;
  /** The cluster's CA (PEM); undefined: TLS off. */
  ca: string | undefined;
}

/** The credentials kept on this host (passfile, CA file). */
export async function keptCredentials(root: Root, tls = true): Promise<PeerCredentials> {
  return { password: await replicationPassword(root), ca: tls ? await fs.readFile(root.path(STANDBY_PATHS.ca), 'utf8') : undefined };
}

/** Connects to the peer's database postgres; throws a PreflightError saying why it cannot. */
export async function connectPeer(root: Root, self: Endpoint, peer: Endpoint, tls: boolean, log?: Logger, timeoutMs = 5000): Promise<PeerLink> {
  return connectPeerWith(await keptCredentials(root, tls), self, peer, log, timeoutMs);
}

export async function connectPeerWith(credentials: PeerCredentials, self: Endpoint, peer: Endpoint, log?: Logger, timeoutMs = 5000): Promise<PeerLink> {
  const { password, ca } = credentials;
  log?.addSecret(password);
  const tls = ca !== undefined;
  const url: DatabaseUrl = {
    host: peer.host,
    port: peer.port,
    hosts: [{ host: peer.host, port: peer.port }],
    targetSessionAttrs: 'any',
    user: REPLICATION_ROLE,
    password,
    database: 'postgres',
    sslmode: tls ? 'verify-full' : 'disable',
    sslrootcert: undefined,
    connectTimeoutSeconds: undefined,
    applicationName: 'knocker-standby',
  };
  try {
    const client = await connect(url, { sourceAddress: self.host, connectTimeoutMs: timeoutMs, queryTimeoutMs: 90_000, ca });
    client.on('error', () => {});
    return { client, close: () => client.end().catch(() => {}) };
  } catch (error) {
    const problem = describeConnectError(error, url);
    throw new PreflightError(`cannot reach the other database host ${peer.host}:${peer.port}: ${problem.message}`, problem.hints);
  }
}

/** Like connectPeer, but a peer that does not answer is `undefined` (promote, status). */
export async function tryPeer(root: Root, self: Endpoint, peer: Endpoint, tls: boolean, log?: Logger, timeoutMs = 3000): Promise<PeerLink | undefined> {
  return connectPeer(root, self, peer, tls, log, timeoutMs).catch((error: Error) => {
    log?.info(`peer ${peer.host}:${peer.port} does not answer: ${error.message}`);
    return undefined;
  });
}

export async function peerFacts(link: PeerLink): Promise<PeerFacts> {
  const { rows } = await link.client.query<{
    in_recovery: boolean;
    read_only: string;
    lsn: string | null;
    replay: string | null;
    tli: number | null;
    version: number;
    fpw: string;
    fenced: boolean;
  }>(
    `SELECT pg_is_in_recovery() AS in_recovery, current_setting('transaction_read_only') AS read_only,
            CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()::text ELSE pg_current_wal_lsn()::text END AS lsn,
            pg_last_wal_replay_lsn()::text AS replay,
            CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli FROM pg_stat_wal_receiver)
                 ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS tli,
            current_setting('server_version_num')::int AS version, current_setting('full_page_writes') AS fpw,
            (SELECT setting = 'on' AND source = 'configuration file' FROM pg_settings WHERE name = 'default_transaction_read_only')
              AND NOT EXISTS (SELECT 1 FROM pg_db_role_setting WHERE 'default_transaction_read_only=off' = ANY(setconfig)) AS fenced`,
  );
  const row = rows[0]!;
  const receiver = row.in_recovery
    ? (await link.client.query<{ status: string; sender_host: string | null }>('SELECT status, sender_host FROM pg_stat_wal_receiver')).rows[0]
    : undefined;
  const timeline = row.tli ?? (await link.client.query<{ t: number }>('SELECT timeline_id AS t FROM pg_control_checkpoint()')).rows[0]!.t;
  return {
    inRecovery: row.in_recovery,
    // Read-only for every web node: the server's own setting (knocker's fence, from a configuration
    // file), not one database's or role's (another database set read-only fences nothing), and no
    // database or role turning it off again.
    readOnly: row.fenced,
    timeline,
    lsn: row.lsn ?? undefined,
    replayLsn: row.replay ?? undefined,
    receiver: receiver ? { status: receiver.status, senderHost: receiver.sender_host } : undefined,
    serverVersionNum: row.version,
    fullPageWrites: row.fpw === 'on',
  };
}

/** The timeline in the peer's control file: what pg_rewind compares (after a CHECKPOINT). */
export async function peerControlTimeline(link: PeerLink): Promise<number> {
  return (await link.client.query<{ t: number }>('SELECT timeline_id AS t FROM pg_control_checkpoint()')).rows[0]!.t;
}

/** A physical slot on the peer for this node (a standby may hold one: it survives promotion). */
export async function ensurePeerSlot(link: PeerLink, slot: string): Promise<boolean> {
  const existing = await link.client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot]);
  if (existing.rowCount) return false;
  await link.client.query('SELECT pg_create_physical_replication_slot($1, true)', [slot]);
  return true;
}

export async function dropPeerSlot(link: PeerLink, slot: string): Promise<void> {
  await link.client.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active', [slot]);
}

/**
 * The fence of a primary that should no longer take writes but cannot be stopped from here:
 * knocker.set_fence(true) on it turns default_transaction_read_only on in that server's own
 * postgresql.auto.conf (it never replicates; it stays across restarts), reloads, and ends the open
 * sessions. Done once a fresh session there says so (the reload is asynchronous), then again to end
 * the sessions that came in meanwhile. Clients with target_session_attrs=read-write skip it.
 * (A session could still SET default_transaction_read_only off: stopping it is the stronger fence.)
 */
export async function fencePeer(link: PeerLink, again: () => Promise<PeerLink>): Promise<{ ended: number; lsn: string }> {
  const { rows } = await link.client.query<{ ended: number }>('SELECT knocker.set_fence(true) AS ended');
  await until(
    'the fence to be in force on the old primary (a new session read-only)',
    async () => {
      const fresh = await again();
      try {
        return (await peerFacts(fresh)).readOnly ? true : undefined;
      } finally {
        await fresh.close();
      }
    },
    10_000,
    50,
  );
  const late = (await link.client.query<{ ended: number }>('SELECT knocker.set_fence(true) AS ended')).rows[0]?.ended ?? 0;
  const at = (await link.client.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l;
  return { ended: (rows[0]?.ended ?? 0) + late, lsn: at };
}

/** Takes the fence away again (the undo of the step that set it, before any promotion was asked for). */
export async function unfencePeer(link: PeerLink): Promise<void> {
  await link.client.query('SELECT knocker.set_fence(false)');
}

/** Whether the peer has knocker's local fence (made by exposedb --add-standby of this version). */
export async function peerHasFence(link: PeerLink): Promise<boolean> {
  const { rows } = await link.client.query<{ ok: boolean }>(`SELECT to_regprocedure('knocker.set_fence(boolean)') IS NOT NULL AS ok`);
  return Boolean(rows[0]?.ok);
}
