// What to do instead, when a knocker command that would fight pg_autoctl's keeper is refused on a
// data host of an automatic pair (node-state.ts refuseOnAutomaticPair): one place for the words, so
// every refusal names pg_auto_failover's own way.
import type { Root } from '../system/root.js';
import { readHaNodeState, refuseOnAutomaticPair } from './node-state.js';

export const INSTEAD = {
  promote:
    'pg_auto_failover promotes the standby by itself when the primary is lost (knocker standby status shows it); for a planned move: knocker standby switchover',
  rejoin: 'the old primary comes back as the standby by itself once its keeper runs (pg_autoctl run); knocker standby status shows when it has',
  standby: "this pair's standby is pg_auto_failover's; leave the automatic pair first to make a knocker standby",
  remove: "leave the automatic pair first (the standby is pg_auto_failover's to remove)",
  uninstall:
    "the way back to knocker's manual pair comes first, and it is not in this release: until then this host's PostgreSQL stays pg_auto_failover's (to retire the node by hand: pg_autoctl drop node on this host in its keeper's environment, then remove node.json)",
  upgrade:
    "knocker upgrade does not yet follow an automatic pair's order (pg_auto_failover's packages on all three hosts before the monitor restarts, then each data node under pg_autoctl enable maintenance, the standby first): upgrade this host by hand in that order",
  preStart: "PostgreSQL here is started by its keeper (pg_autoctl run), never by knocker's fence: start the keeper instead",
} as const;

/** The keeper's service as an operator starts or stops it (its unit on a host, its pid file under a sandbox root). */
export async function keeperServiceHint(root: Root, verb: string): Promise<string> {
  const state = await readHaNodeState(root);
  const unit = state?.unit ?? 'pgautofailover.service';
  const how = root.isSandbox && state?.pidFile ? `the keeper daemon of this root (pid file ${state.pidFile})` : `systemctl ${verb} ${unit}`;
  return `PostgreSQL here is run by its keeper: ${how}${verb === 'stop' || verb === 'restart' ? '; on the primary that fails over: knocker standby switchover first' : ''}`;
}

/** Refuses `knocker service ACTION postgres|all` here when this host is a data node of an automatic pair. */
export async function refuseServiceOnAutomaticPair(root: Root, action: string, which: string): Promise<void> {
  if (action === 'status' || (which !== 'postgres' && which !== 'all')) return;
  if (!(await readHaNodeState(root))) return;
  const rest = which === 'all' ? `; the others one by one: knocker service ${action} server, knocker service ${action} haproxy` : '';
  await refuseOnAutomaticPair(root, `knocker service ${action} ${which}`, `${await keeperServiceHint(root, action)}${rest}`);
}
