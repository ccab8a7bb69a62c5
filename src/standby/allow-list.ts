// The standby's side of the allow-list (src/postgres/allow-list-sync.ts): the primary records its
// block in knocker.allow_list with every change, then asks the standby, once it has replayed that
// change, to write the same block into its own pg_hba.conf. The standby's file is also brought up
// to date where its host's role changes (standby switchover, standby promote) and by hand
// (exposedb --sync); `lagNote` says when it lags.
import { errorMessage } from '../errors.js';
import { withAdminSession, type ClusterAccess } from '../postgres/admin.js';
import { applyAllowList, recordAllowList, type AllowListSync, type ApplyOutcome } from '../postgres/allow-list-sync.js';
import type { Logger } from '../system/log.js';
import type { Root } from '../system/root.js';
import { lsn } from './node.js';
import { readState } from './node.js';
import { connectPeer, type PeerLink } from './peer.js';
import { REPLICATION_ROLE } from './paths.js';
import { until } from './run.js';

/** How long the standby may take to replay the primary's change before the primary stops waiting. */
const REPLAY_WAIT_MS = 15_000;

export function describeOutcome(outcome: ApplyOutcome): string {
  switch (outcome) {
    case 'changed':
      return 'pg_hba.conf allow-list brought up to date (checked by PostgreSQL, reloaded)';
    case 'unchanged':
      return 'pg_hba.conf allow-list already up to date';
    case 'lags':
      return "pg_hba.conf allow-list lags the primary's";
    default:
      return 'no allow-list recorded yet (the primary records it with its next exposedb change)';
  }
}

/** Once the standby has replayed up to `at`, its pg_hba.conf as the table says. */
export async function applyOnPeer(peer: PeerLink, at: string | undefined, what: string): Promise<ApplyOutcome> {
  if (at) {
    const wanted = lsn(at);
    await until(
      `${what} replaying the allow-list (${at})`,
      async () => {
        const r = (await peer.client.query<{ l: string | null }>('SELECT pg_last_wal_replay_lsn()::text AS l')).rows[0]!.l;
        return r === null || lsn(r) >= wanted ? true : undefined;
      },
      REPLAY_WAIT_MS,
      50,
    );
  }
  return applyAllowList(peer.client, true);
}

/** The primary's change taken to its standby, if it has one; a note, never an error (the change here stands). */
export async function pushAllowList(root: Root, log: Logger, at: string): Promise<string | undefined> {
  const state = await readState(root);
  if (!state) return undefined;
  const who = `the standby ${state.peer.host}`;
  let peer: PeerLink | undefined;
  try {
    peer = await connectPeer(root, state.self, state.peer, true, log);
    const outcome = await applyOnPeer(peer, at, who);
    log.info(`allow-list: ${who}: ${outcome}`);
    return `${who}: ${describeOutcome(outcome)}`;
  } catch (error) {
    log.warn(`allow-list: ${who}: ${errorMessage(error)}`);
    return `${who} did not take it (${log.scrub(errorMessage(error))}): its pg_hba.conf lags until it is brought up to date (the next change here, standby switchover or promote, or knocker exposedb --sync on its host)`;
  } finally {
    await peer?.close();
  }
}

/** Records the block on this primary's cluster (database postgres) and takes it to the standby. */
export function allowListSync(root: Root, access: ClusterAccess, log: Logger): AllowListSync {
  return {
    async record(rules) {
      const at = await withAdminSession({ ...access, database: 'postgres' }, log, (session) => recordAllowList(session, rules, REPLICATION_ROLE));
      return pushAllowList(root, log, at);
    },
  };
}

/** Whether the other host's pg_hba.conf lags the table (as it has replayed it), for --list and --invites. */
export async function peerLagNote(root: Root, log: Logger): Promise<string | undefined> {
  const state = await readState(root);
  if (!state) return undefined;
  let peer: PeerLink | undefined;
  try {
    peer = await connectPeer(root, state.self, state.peer, true, log);
    const outcome = await applyAllowList(peer.client, false);
    return outcome === 'lags'
      ? `warning: the allow-list in the pg_hba.conf of ${state.peer.host} lags the primary's: run knocker exposedb --sync on its host (standby switchover and promote bring it up to date first)`
      : undefined;
  } catch (error) {
    return `note: ${state.peer.host} could not be asked whether its allow-list is up to date (${log.scrub(errorMessage(error))})`;
  } finally {
    await peer?.close();
  }
}
