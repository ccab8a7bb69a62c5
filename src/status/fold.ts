// The events pane's lines: the dashboard's events folded per transition, so that a failover of
// three nodes reads "web-1, web-2, web-3: ok → no-db" on one line instead of one line per node, and
// a recovery (back to a healthy state) is marked ✔ whatever the state it left. Also the cluster's
// history (src/history/) as events, loaded into the pane when the dashboard starts. Pure: no I/O.
import { OUTCOME_WORDS, whatOf, whereOf, type HistoryEvent } from '../history/event.js';
import type { Health, StatusEvent } from './model.js';

/** Transitions of different subjects this close together fold into one line. */
export const FOLD_WINDOW_MS = 60_000;
/** Names shown on one folded line before "and N more". */
const MAX_NAMES = 6;

const RANK: Record<Health, number> = { fail: 0, warn: 1, ok: 2 };

export interface FoldedEvent {
  /** When the last of its events happened (the line's time). */
  at: number;
  level: Health;
  text: string;
  /** How many events the line stands for. */
  count: number;
}

interface Group {
  key: string;
  from: string;
  to: string;
  subjects: string[];
  details: Set<string | undefined>;
  at: number;
  level: Health;
  recovery: boolean;
}

function groupText(group: Group): string {
  const names =
    group.subjects.length > MAX_NAMES
      ? `${group.subjects.slice(0, MAX_NAMES).join(', ')} and ${group.subjects.length - MAX_NAMES} more`
      : group.subjects.join(', ');
  // A detail shared by every subject is said once; details that differ are left to the server's row.
  const [detail] = group.details.size === 1 ? [...group.details] : [undefined];
  return `${names}: ${group.from} → ${group.to}${detail ? `: ${detail}` : ''}`;
}

/**
 * Folds events in order (oldest first) into the pane's lines, oldest first. A transition joins the
 * latest line of the same "from → to" when that line's last event is at most `windowMs` older and
 * does not name the same subject already; a line that grows moves to where its newest event is.
 * Other events stay lines of their own.
 */
export function foldEvents(events: readonly StatusEvent[], windowMs = FOLD_WINDOW_MS): FoldedEvent[] {
  type Line = { group: Group } | { event: StatusEvent };
  const lines: Line[] = [];
  const open = new Map<string, { group: Group }>();
  for (const event of events) {
    const t = event.transition;
    if (!t) {
      lines.push({ event });
      continue;
    }
    const key = `${t.from}\u0000${t.to}`;
    const recovery = event.level === 'ok' && RANK[t.fromLevel] < RANK.ok;
    const found = open.get(key);
    if (found && event.at - found.group.at <= windowMs && !found.group.subjects.includes(t.subject)) {
      const g = found.group;
      g.subjects.push(t.subject);
      g.details.add(t.detail);
      g.at = Math.max(g.at, event.at);
      if (RANK[event.level] < RANK[g.level]) g.level = event.level;
      g.recovery &&= recovery;
      lines.splice(lines.indexOf(found), 1);
      lines.push(found);
      continue;
    }
    const line = { group: { key, from: t.from, to: t.to, subjects: [t.subject], details: new Set([t.detail]), at: event.at, level: event.level, recovery } };
    open.set(key, line);
    lines.push(line);
  }
  return lines.map((line) => {
    if ('event' in line) return { at: line.event.at, level: line.event.level, text: line.event.text, count: 1 };
    const g = line.group;
    return { at: g.at, level: g.recovery ? 'ok' : g.level, text: groupText(g), count: g.subjects.length };
  });
}

const OUTCOME_LEVEL: Record<HistoryEvent['outcome'], Health> = { ok: 'ok', failed: 'fail', 'rolled-back': 'warn', incomplete: 'fail' };

/** The cluster's history as events of the pane: where, what, and how it ended. */
export function historyAsEvents(history: readonly HistoryEvent[]): StatusEvent[] {
  return history.map((e) => ({
    at: e.finishedAt.getTime(),
    level: OUTCOME_LEVEL[e.outcome],
    text: `${whereOf(e)}: ${whatOf(e)} — ${OUTCOME_WORDS[e.outcome]}`,
  }));
}
