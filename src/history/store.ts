// The history table in the shared database: events written (idempotently, by id) and read back,
// newest last. Reading validates every row (any holder of the nodes' role could have written it)
// and counts what it had to leave out.
import type pg from 'pg';
import { bounded, parseEvent, type HistoryEvent } from './event.js';

type Queryable = Pick<pg.Client, 'query'>;

/** Writes events in one transaction; an event already there (same id) is left as it is. */
export async function writeEvents(client: Queryable, events: HistoryEvent[]): Promise<void> {
  if (events.length === 0) return;
  await client.query('BEGIN');
  try {
    for (const event of events.map(bounded)) {
      await client.query(
        `INSERT INTO history (id, started_at, finished_at, host, server, command, action, outcome, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING`,
        [event.id, event.startedAt, event.finishedAt, event.host, event.server, event.command, event.action, event.outcome, event.detail],
      );
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}

export interface ReadOptions {
  /** At most this many, the newest. */
  limit: number;
  /** Only events that finished at or after this time. */
  since?: Date;
}

export interface ReadHistory {
  /** Oldest first. */
  events: HistoryEvent[];
  /** Rows left out because they are not events (and why, for the first few). */
  skipped: number;
  problems: string[];
}

/** The newest events, oldest first. */
export async function readEvents(client: Queryable, options: ReadOptions): Promise<ReadHistory> {
  const result = await client.query(
    `SELECT id::text AS id, started_at AS "startedAt", finished_at AS "finishedAt", host, server, command, action, outcome, detail
       FROM history
      WHERE $1::timestamptz IS NULL OR finished_at >= $1::timestamptz
      ORDER BY finished_at DESC, recorded_at DESC
      LIMIT $2`,
    [options.since ?? null, options.limit],
  );
  return validated(result.rows as unknown[]);
}

/** Parsed events (oldest first) and what was left out. */
export function validated(rows: unknown[]): ReadHistory {
  const events: HistoryEvent[] = [];
  const problems: string[] = [];
  for (const row of rows) {
    const parsed = parseEvent(row);
    if (typeof parsed === 'string') problems.push(parsed);
    else events.push(parsed);
  }
  events.sort((a, b) => a.finishedAt.getTime() - b.finishedAt.getTime());
  return { events, skipped: problems.length, problems: problems.slice(0, 3) };
}

/** SQLSTATE 42P01: the database's schema has no history table yet (nodes on an older release). */
export function isMissingTable(error: unknown): boolean {
  return (error as { code?: string } | undefined)?.code === '42P01';
}
