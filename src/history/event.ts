// One event of the cluster's history (`knocker history`, table `history`, migrations/002_history.sql):
// a change a knocker command applied on a host, with when, where, which command and the outcome.
// Rows come back from the shared database (any holder of the nodes' role can write one) and from a
// local spool file: both are outside input, so every event is validated here before it is used.

export const OUTCOMES = ['ok', 'failed', 'rolled-back', 'incomplete'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export interface HistoryEvent {
  /** Made by the recording host: the same event written twice (a spool flushed by two runs) is one row. */
  id: string;
  startedAt: Date;
  finishedAt: Date;
  /** The host's name. */
  host: string;
  /** The web node's ServerName on that host, when it has one. */
  server: string | null;
  /** The command as the operator typed it: `knocker standby switchover`. */
  command: string;
  /** The plan it applied, in its own words: "Switch over to 127.0.0.3". */
  action: string;
  outcome: Outcome;
  /** Why a run did not succeed (scrubbed of secrets), else null. */
  detail: string | null;
}

/** Longest text kept in a field: a command line and a plan title are short; an error may be long. */
const MAX_TEXT = 1_000;
const MAX_DETAIL = 4_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An event's fields, text cut to what a row may hold: for writing (the database checks the rest). */
export function bounded(event: HistoryEvent): HistoryEvent {
  return {
    ...event,
    host: event.host.slice(0, MAX_TEXT),
    server: event.server?.slice(0, MAX_TEXT) ?? null,
    command: event.command.slice(0, MAX_TEXT),
    action: event.action.slice(0, MAX_TEXT),
    detail: event.detail?.slice(0, MAX_DETAIL) ?? null,
  };
}

function dateOf(value: unknown): Date | undefined {
  const date = value instanceof Date ? value : typeof value === 'string' && value.length <= 40 ? new Date(value) : undefined;
  return date && Number.isFinite(date.getTime()) ? date : undefined;
}

function textOf(value: unknown, max: number): string | undefined {
  return typeof value === 'string' && value.length > 0 && value.length <= max ? value : undefined;
}

/**
 * An event from a database row or a spooled line (dates as Date or ISO text), or why it is not one.
 * Text is kept as it is (printed escaped, never obeyed); only its shape and size are checked.
 */
export function parseEvent(value: unknown): HistoryEvent | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'not an object';
  const v = value as Record<string, unknown>;
  const id = typeof v.id === 'string' && UUID.test(v.id) ? v.id.toLowerCase() : undefined;
  if (!id) return 'no valid id';
  const startedAt = dateOf(v.startedAt);
  const finishedAt = dateOf(v.finishedAt);
  if (!startedAt || !finishedAt) return `event ${id}: a time is missing or not a time`;
  if (finishedAt < startedAt) return `event ${id}: it finished before it started`;
  const host = textOf(v.host, MAX_TEXT);
  const command = textOf(v.command, MAX_TEXT);
  const action = textOf(v.action, MAX_TEXT);
  if (!host || !command || !action) return `event ${id}: host, command or action missing or too long`;
  const server = v.server === null || v.server === undefined ? null : textOf(v.server, MAX_TEXT);
  if (server === undefined) return `event ${id}: server is not a name`;
  if (typeof v.outcome !== 'string' || !(OUTCOMES as readonly string[]).includes(v.outcome)) return `event ${id}: unknown outcome`;
  const detail = v.detail === null || v.detail === undefined ? null : textOf(v.detail, MAX_DETAIL);
  if (detail === undefined) return `event ${id}: detail is not text`;
  return { id, startedAt, finishedAt, host, server, command, action, outcome: v.outcome as Outcome, detail };
}

/** Where an event happened, in one word: the node's name and its host when they differ. */
export function whereOf(event: Pick<HistoryEvent, 'host' | 'server'>): string {
  return event.server && event.server !== event.host ? `${event.server} (${event.host})` : event.host;
}

/** What happened, in one line: the command, and the plan's title when it says more. */
export function whatOf(event: Pick<HistoryEvent, 'command' | 'action'>): string {
  return event.action === event.command ? event.command : `${event.command}: ${event.action}`;
}

/** The outcome in words an operator reads (the symbol is the caller's). */
export const OUTCOME_WORDS: Record<Outcome, string> = {
  ok: 'done',
  failed: 'failed',
  'rolled-back': 'failed, rolled back',
  incomplete: 'failed, rollback incomplete',
};

/**
 * `--since`: a duration back from now (`90s`, `30m`, `2h`, `7d`) or a date/time
 * (`2026-12-07`, `2026-12-07T15:00:00Z`); undefined when it is neither.
 */
export function parseSince(text: string, now = Date.now()): Date | undefined {
  const trimmed = text.trim();
  const ago = /^(\d{1,6})([smhd])$/.exec(trimmed);
  if (ago) {
    const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[ago[2] as 's' | 'm' | 'h' | 'd'];
    return new Date(now - Number(ago[1]) * unit);
  }
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(trimmed)) return undefined;
  const date = new Date(trimmed);
  return Number.isFinite(date.getTime()) ? date : undefined;
}
