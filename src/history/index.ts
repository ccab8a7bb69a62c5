// The cluster's history (`knocker history`): every change a knocker command applied on a host of
// the cluster, recorded by the one runner (record.ts, called from src/system/runner.ts) in the
// shared database's `history` table, or in this host's spool while the database cannot take it
// (spool.ts). Here: reading it back for `knocker history` and for the dashboard's events pane.
import { PreflightError } from '../errors.js';
import { describeConnectError } from '../postgres/connect.js';
import { knockerCommand } from '../shared/hint.js';
import type { Output } from '../shared/output.js';
import { printableLine } from '../shared/printable.js';
import { PATHS, type Root } from '../system/root.js';
import { plural } from '../system/units.js';
import { OUTCOME_WORDS, whatOf, whereOf, type HistoryEvent } from './event.js';
import { isSqlState, nodeDatabase, withNodeDatabase } from './record.js';
import { HISTORY_SPOOL, spooledEvents } from './spool.js';
import { isMissingTable, readEvents, type ReadHistory, type ReadOptions } from './store.js';

export interface ListedEvent extends HistoryEvent {
  /** Still in this host's spool: not in the shared database yet. */
  spooled: boolean;
}

export interface Listed {
  events: ListedEvent[];
  skipped: number;
  problems: string[];
  spooled: number;
}

/** The database's events and this host's spooled ones, newest `limit`, oldest first. */
export async function listHistory(root: Root, options: ReadOptions, applicationName = 'knocker history'): Promise<Listed> {
  const db = await nodeDatabase(root);
  if (!db) {
    throw new PreflightError(`cannot tell which database holds the history: no ${root.path(PATHS.conf)} that loads`, [
      `the history is in the database of DatabaseURL in knocknoc.conf: run this on a web node (or point --root at one)`,
    ]);
  }
  let read: ReadHistory;
  try {
    read = await withNodeDatabase(db, applicationName, (client) => readEvents(client, options));
  } catch (error) {
    if (isMissingTable(error))
      throw new PreflightError('the database has no history table yet: its nodes run a release from before it', [
        `upgrade the nodes (${knockerCommand(root, 'upgrade')}); until then, events wait on each host in ${HISTORY_SPOOL}`,
      ]);
    if (isSqlState(error)) throw new PreflightError(`cannot read the history: ${(error as Error).message}`);
    const problem = describeConnectError(error, db.url);
    throw new PreflightError(`cannot reach the database: ${problem.message}`, problem.hints);
  }
  const stored = new Set(read.events.map((e) => e.id));
  const local = (await spooledEvents(root).catch(() => [])).filter((e) => !stored.has(e.id) && (!options.since || e.finishedAt >= options.since));
  const events = [...read.events.map((e) => ({ ...e, spooled: false })), ...local.map((e) => ({ ...e, spooled: true }))]
    .sort((a, b) => a.finishedAt.getTime() - b.finishedAt.getTime())
    .slice(-options.limit);
  return { events, skipped: read.skipped, problems: read.problems, spooled: local.length };
}

const SYMBOL: Record<HistoryEvent['outcome'], string> = { ok: '✔', failed: '✗', 'rolled-back': '✗', incomplete: '✗' };

/** A time as the list shows it: UTC, to the second. */
function when(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

export async function printHistory(root: Root, options: ReadOptions & { json: boolean }, io: Output): Promise<number> {
  const listed = await listHistory(root, options);
  if (listed.skipped > 0) io.err(`history: ${plural(listed.skipped, 'row')} of the database left out, not events (${listed.problems.join('; ')})`);
  if (listed.spooled > 0) io.err(`history: ${plural(listed.spooled, 'event')} of this host not yet in the database (kept in ${root.path(HISTORY_SPOOL)})`);
  if (options.json) {
    io.out(
      JSON.stringify(
        {
          events: listed.events.map((e) => ({ ...e, startedAt: e.startedAt.toISOString(), finishedAt: e.finishedAt.toISOString() })),
          skipped: listed.skipped,
          spooled: listed.spooled,
        },
        null,
        2,
      ),
    );
    return 0;
  }
  if (listed.events.length === 0) {
    io.err(options.since ? `No event since ${when(options.since)}.` : 'No event recorded yet.');
    return 0;
  }
  // Any holder of the nodes' role can write a row: each cell is shown on one line, escaped.
  const rows = [
    ['WHEN', 'WHERE', 'OUTCOME', 'WHAT'],
    ...listed.events.map((e) => [
      when(e.finishedAt),
      printableLine(whereOf(e)),
      `${SYMBOL[e.outcome]} ${OUTCOME_WORDS[e.outcome]}${e.spooled ? ' (spooled)' : ''}`,
      printableLine(whatOf(e)) + (e.detail ? ` — ${printableLine(e.detail)}` : ''),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows) io.out(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
  return 0;
}
