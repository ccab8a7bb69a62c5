// Where knocker keeps what a replicated pair needs on each host, and the names it gives things in
// PostgreSQL. Both hosts hold the same kinds of files, because the roles swap (switchover, failover).
import type { Root } from '../system/root.js';

export const STANDBY_PATHS = {
  /** Owned by the database's OS user (0700): its walreceiver reads the passfile from here. */
  dir: '/var/lib/knocknoc/standby',
  /** libpq passfile with the replication role's password (0600, the database's OS user). */
  passfile: '/var/lib/knocknoc/standby/replication.pgpass',
  /** The cluster's CA: each side verifies the other's certificate with it (verify-full). */
  ca: '/var/lib/knocknoc/standby/ca.crt',
  /** This host's view of the pair: its own address, the peer's, what promote recorded (0600). */
  state: '/var/lib/knocknoc/standby/state.json',
  /** pg_basebackup writes here; renamed into the data directory only once complete. */
  clone: '/var/lib/knocknoc/postgresql.clone',
  /** On the primary: what `exposedb --add-standby` hands the standby's host (0600, holds secrets). */
  bundleDir: '/opt/knocknoc/etc',
  log: '/var/log/knocknoc/standby.log',
} as const;

/** The replication role (LOGIN REPLICATION; pg_rewind's reads; pg_promote; CHECKPOINT). */
export const REPLICATION_ROLE = 'knocker_replicator';
export const ROLE_COMMENT = 'Managed by knocker: replication between the primary and its standby.';
/** The managed block of pg_hba.conf with the replication lines for the peer. */
export const STANDBY_BLOCK = 'knocker standby';
/** The schema (in database postgres) holding knocker's fence function. */
export const FENCE_SCHEMA = 'knocker';

/** The replication slot (and application_name) of the node at `address`: knocker_127_0_0_3. */
export function slotName(address: string): string {
  return `knocker_${address.toLowerCase().replace(/[^a-z0-9]/g, '_')}`.slice(0, 63);
}

export function bundleFile(root: Root, standbyAddress: string): string {
  return root.path(`${STANDBY_PATHS.bundleDir}/standby-${standbyAddress.replace(/[^A-Za-z0-9.]/g, '_')}.json`);
}

export function standbyPath(root: Root, key: keyof typeof STANDBY_PATHS): string {
  return root.path(STANDBY_PATHS[key]);
}
