// Events the shared database could not take (unreachable, read-only: a standby, a switchover under
// way; a schema without the history table), kept on this host in one 0600 file of JSON lines under
// /var/lib/knocknoc and written to the database by the next run that reaches it. Taking the file
// is a rename, so two runs never write the same lines twice and a line added meanwhile is not lost;
// the table's primary key makes a repeated write harmless anyway.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import type { Root } from '../system/root.js';
import type { HistoryEvent } from './event.js';
import { validated } from './store.js';

export const HISTORY_SPOOL = '/var/lib/knocknoc/history-spool.jsonl';
/** The spool is bounded: past this many events the oldest go (a host cut off for months). */
export const SPOOL_MAX_EVENTS = 10_000;
/** A spool file is a few MB at most; a bigger one is not ours. */
const SPOOL_MAX_BYTES = 16 * 1024 * 1024;

function line(event: HistoryEvent): string {
  return `${JSON.stringify({ ...event, startedAt: event.startedAt.toISOString(), finishedAt: event.finishedAt.toISOString() })}\n`;
}

/** Adds events to the spool (created 0600); its folder must exist (ENOENT otherwise). */
export async function spoolEvents(root: Root, events: HistoryEvent[]): Promise<void> {
  const file = root.path(HISTORY_SPOOL);
  const handle = await fs.open(file, 'a', 0o600);
  try {
    await handle.chmod(0o600);
    await handle.writeFile(events.map(line).join(''), 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function readLines(file: string): Promise<{ events: HistoryEvent[]; skipped: number }> {
  const stat = await fs.stat(file).catch(() => undefined);
  if (!stat) return { events: [], skipped: 0 };
  if (!stat.isFile() || stat.size > SPOOL_MAX_BYTES) return { events: [], skipped: 1 };
  const text = await fs.readFile(file, 'utf8');
  const rows: unknown[] = [];
  let unparsable = 0;
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    try {
      rows.push(JSON.parse(raw));
    } catch {
      unparsable += 1;
    }
  }
  const read = validated(rows);
  return { events: read.events.slice(-SPOOL_MAX_EVENTS), skipped: unparsable + read.skipped };
}

/** The events waiting in the spool, oldest first (for `knocker history`, which shows them too). */
export async function spooledEvents(root: Root): Promise<HistoryEvent[]> {
  return (await readLines(root.path(HISTORY_SPOOL))).events;
}

/**
 * Takes the spool's events to `write` them; they are gone from the spool once `write` succeeded
 * and back in it when it failed. Returns how many were written (0 with an empty spool).
 */
export async function flushSpool(root: Root, write: (events: HistoryEvent[]) => Promise<void>): Promise<{ written: number; skipped: number }> {
  const file = root.path(HISTORY_SPOOL);
  const taken = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.flushing`;
  try {
    await fs.rename(file, taken);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { written: 0, skipped: 0 };
    throw error;
  }
  const { events, skipped } = await readLines(taken);
  try {
    await write(events);
  } catch (error) {
    await spoolEvents(root, events);
    await fs.rm(taken, { force: true });
    throw error;
  }
  await fs.rm(taken, { force: true });
  return { written: events.length, skipped };
}
