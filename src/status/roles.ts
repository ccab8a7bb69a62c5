// Which host of DatabaseURL is the primary, decided from one refresh: every host asked on a new
// session (src/status/hosts.ts) and the session status keeps on the host it selected (the
// database source). Two hosts accepting writes is the failure the pair must never show. A server
// is told to move, stop or be fenced only when both views name the same primary in the same
// refresh: right after a promotion they disagree for a moment (the pooled session still on the
// old primary, the nodes already on the new one), and advice then would name the wrong host.
// Pure functions of their input: no I/O here.
import type { DatabaseData, Health } from './model.js';

/** What a new session on a host finds: `read-only` is a primary that does not accept writes (fenced). */
export type HostRole = 'primary' | 'read-only' | 'standby' | 'unreachable';

export interface HostAnswer {
  /** host:port as DatabaseURL lists it. */
  host: string;
  role: HostRole;
  inRecovery: boolean | null;
  /** Not in recovery and `transaction_read_only` off for a new session. */
  acceptsWrites: boolean | null;
  error: string | null;
}

/**
 * What status knows of the primary: the names it answers to (the host of the list, its own
 * address), and the hosts known to be another server (the other hosts of the list, the addresses
 * its standbys stream from). A name in neither is not judged: the same server may be reached by
 * another address (a node's 198.18.0.11 is status's 127.0.0.1).
 */
export interface PrimaryView {
  names: string[];
  others: string[];
}

export interface RolesInput {
  /** Every host's answer and the refresh it was asked in; undefined with a one-host DatabaseURL (or before the first answer). */
  survey: { answers: HostAnswer[]; round: number } | undefined;
  /** The database source's last data and the refresh it was read in. */
  database: { data: DatabaseData; round: number } | undefined;
  /** The database host each server's /_status names. */
  usedBy: Array<{ server: string; host: string }>;
}

export interface RolesVerdict {
  /** Each host of the list as a new session finds it (undefined: one host, or not asked yet). */
  hosts: HostAnswer[] | undefined;
  /** The hosts that accept writes. */
  writable: string[];
  twoPrimaries: boolean;
  /** The primary both views agree on in this refresh; undefined when they do not (then no server is told to move). */
  primary: PrimaryView | undefined;
  /** Why the primary is not settled in this refresh, in words. */
  unsettled: string | undefined;
  health: Health;
  /** About the database as a whole, worst first; the first of a failure says what to do. */
  problems: string[];
}

/** The hosts standbys stream from (pg_stat_replication's client addresses, without a /32). */
function standbyAddresses(db: DatabaseData): string[] {
  return (db.standbys ?? []).map((s) => s.clientAddress?.replace(/\/\d+$/, '')).filter((a): a is string => !!a);
}

function viewOf(db: DatabaseData): PrimaryView {
  const names = [db.host, ...(db.serverAddress ? [db.serverAddress] : [])];
  const others = (db.hosts ?? []).filter((h) => !names.includes(h));
  return { names, others: [...others, ...standbyAddresses(db)] };
}

function serversOn(usedBy: RolesInput['usedBy'], host: string): string {
  const names = usedBy.filter((u) => u.host === host).map((u) => u.server);
  return names.length === 0 ? 'no web node' : names.join(', ');
}

export function rolesVerdict(input: RolesInput): RolesVerdict {
  const { survey, database, usedBy } = input;
  const hosts = survey?.answers;
  const writable = (hosts ?? []).filter((h) => h.acceptsWrites).map((h) => h.host);
  const db = database?.data;
  if (writable.length >= 2) {
    const [first, ...rest] = writable;
    return {
      hosts,
      writable,
      twoPrimaries: true,
      primary: undefined,
      unsettled: `${writable.join(' and ')} both accept writes`,
      health: 'fail',
      problems: [
        `TWO PRIMARIES: ${rest.length === 1 ? `${first} and ${rest[0]}` : writable.join(', ')} all accept writes (each asked on a new session); writes split between them are on one host only`,
        `web nodes on each: ${writable.map((h) => `${h}: ${serversOn(usedBy, h)}`).join('; ')}`,
        'stop writes on the one that must follow now: on its host `knocker service stop postgres` (or stop PostgreSQL there), then `knocker standby rejoin` on that host to make it a standby of the other; decide with `knocker standby status` on each host which one holds the writes to keep',
      ],
    };
  }
  const problems: string[] = [];
  let health: Health = 'ok';
  if (hosts && hosts.length > 0 && writable.length === 0 && hosts.some((h) => h.role !== 'unreachable')) {
    health = 'fail';
    problems.push(`no host of DatabaseURL accepts writes: ${hosts.map((h) => `${h.host} ${h.role}`).join(', ')}`);
  }
  for (const h of hosts ?? []) {
    if (h.role === 'unreachable') {
      if (health === 'ok') health = 'warn';
      problems.push(`${h.host} does not answer (${h.error ?? 'no answer'}): whether it accepts writes is not known here`);
    }
  }
  // One host: the session status keeps is the only view; it names the primary when it is one.
  if (!survey) {
    return { hosts, writable, twoPrimaries: false, primary: db?.role === 'primary' ? viewOf(db) : undefined, unsettled: undefined, health, problems };
  }
  let unsettled: string | undefined;
  if (survey.answers.length === 0) unsettled = 'the hosts have not all been asked yet';
  else if (!db) unsettled = 'the database did not answer in this refresh';
  else if (database!.round !== survey.round) unsettled = 'the hosts and the database answered in different refreshes';
  else if (writable.length === 0) unsettled = 'no host accepts writes';
  else if (db.role !== 'primary') unsettled = `status's session on ${db.host} finds a standby there, a new session on ${writable[0]} a primary`;
  else if (db.host !== writable[0]) {
    const there = hosts?.find((h) => h.host === db.host);
    unsettled = `status's session on ${db.host} finds a primary there, a new session ${there ? `finds ${there.role === 'standby' ? 'a standby' : there.role}` : 'was not asked'}; ${writable[0]} accepts writes`;
  }
  return { hosts, writable, twoPrimaries: false, primary: unsettled ? undefined : viewOf(db!), unsettled, health, problems };
}

/** Whether `on` (host:port from a /_status) is known to be another server than the primary. */
function onAnotherServer(view: PrimaryView, on: string): boolean {
  if (view.names.includes(on)) return false;
  const host = on.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  return view.others.includes(on) || view.others.includes(host);
}

export interface DatabaseHostProblem {
  word: string;
  health: Health;
  text: string;
}

/** What is wrong with a server using the database on `on`, from the verdict of one refresh; undefined: nothing. */
export function databaseHostProblem(on: string, verdict: RolesVerdict, database: DatabaseData | undefined): DatabaseHostProblem | undefined {
  if (verdict.twoPrimaries) {
    const others = verdict.writable.filter((h) => h !== on);
    return {
      word: 'two-primaries',
      health: 'fail',
      text: verdict.writable.includes(on)
        ? `writes to ${on} while ${others.join(' and ')} accepts writes too (two primaries: see Database)`
        : `uses the database on ${on} while ${verdict.writable.join(' and ')} both accept writes (two primaries: see Database)`,
    };
  }
  const view = verdict.primary;
  const answer = verdict.hosts?.find((h) => h.host === on);
  if (!view) {
    // Not settled: say what a new session finds on its host, tell nobody to stop anything.
    if (!verdict.unsettled || answer?.acceptsWrites) return undefined;
    if (!answer && !(database && onAnotherServer(viewOf(database), on))) return undefined;
    return {
      word: 'unsettled',
      health: 'warn',
      text: `uses the database on ${on}${answer ? `, which a new session finds ${answer.role}` : ''}; which host is the primary is not settled in this refresh (${verdict.unsettled}): no advice until it is`,
    };
  }
  if (!onAnotherServer(view, on)) return undefined;
  const primary = view.names[0]!;
  const text =
    answer?.role === 'standby'
      ? `uses the database on ${on}, now a standby, not the primary ${primary}: its writes fail there; it moves to ${primary} when it reconnects`
      : answer?.role === 'read-only'
        ? `uses the database on ${on}, a primary that no longer accepts new writes (read-only), not the primary ${primary}; it moves to ${primary} when it reconnects`
        : answer?.role === 'unreachable'
          ? `uses the database on ${on}, which does not answer knocker status (${answer.error ?? 'no answer'}), not the primary ${primary}: if ${on} still accepts writes there are two primaries; ask on its host: knocker standby status`
          : `uses the database on ${on}, not the primary ${primary} (a standby, or another server)`;
  return { word: 'old-primary', health: 'fail', text };
}
