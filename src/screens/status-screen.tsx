// The live cluster dashboard, drawn from a snapshot: a summary line and the age of each source,
// the servers (problems first, or the order chosen; the selected one's problems spelled out), the
// database panel, the events pane and the keys; or, instead of the lower part, a server's or the
// database's detail, or a node's log. The summary, the sources line and the servers table are
// pinned: the database panel and the events get what is left of the terminal, measured from what
// is drawn (the wrapped head and footer measured by Ink, every other line cut to the width), so
// nothing pushes the head off the screen. A source that fails is drawn dimmed with its age and its
// error. Health is always a word and a symbol as well as a colour. It only displays.
import { useLayoutEffect, useRef, useState } from 'react';
import { Box, type DOMElement, measureElement, Text } from 'ink';
import {
  checkCell,
  databaseHostCell,
  databaseLines,
  formationLines,
  inStateCell,
  roleLines,
  showsDatabaseHosts,
  HEALTH_SYMBOL,
  haproxyCell,
  probeCell,
  seenCell,
  sourceAge,
  summaryLine,
  versionCell,
} from '../status/format.js';
import { age } from '../system/units.js';
import { settled, type Health, type ServerRow, type Snapshot, type SourceName, type StatusEvent } from '../status/model.js';
import { dashboardFooter, dashboardHelp, dashboardKeyWidth, type DashboardPlace } from './keys.js';
import { fitLine, wrapLines } from './lines.js';
import { serverDetail, databaseDetail, type DetailSection } from '../status/detail.js';
import type { SortKey } from '../status/sort.js';
import { confirmQuestion } from '../shared/confirm.js';
import { symbols, theme } from './theme.js';

/** What the lower part of the screen shows: the servers, or one of the views Enter, l and D open. */
export type DashboardView = { kind: 'servers' } | { kind: 'server'; name: string } | { kind: 'log'; name: string } | { kind: 'database' };

/** Where a detail view is scrolled to: the index of its first line shown, or 'end' (its last lines, kept there as it grows). */
export type Scroll = number | 'end';

/** What a detail view showed: from line `start`, about `page` lines; `last`: the start that shows its end. */
export interface ScrollWindow {
  start: number;
  page: number;
  last: number;
}

export interface StatusScreenProps {
  snapshot: Snapshot;
  /** The rows after the filter, in the order chosen. */
  rows: ServerRow[];
  events: StatusEvent[];
  now: number;
  intervalMs: number;
  staleAfterMs: number;
  paused: boolean;
  filter: string;
  /** Set while the filter is being typed. */
  filterDraft: string | undefined;
  selected: string | undefined;
  sort: SortKey;
  view: DashboardView;
  /** Where the detail view is scrolled to (the servers list ignores it). */
  scroll: Scroll;
  /** Told what the detail view shows, so that a key scrolls from there. */
  onDetailWindow?: (shown: ScrollWindow) => void;
  /** This host's own node (ServerName of its knocknoc.conf). */
  localName: string | undefined;
  /** The followed log of this host's node, newest last, when a view shows it. */
  log: { lines: string[]; error: string | undefined; source: string | undefined };
  admin: boolean;
  /** The question of an admin action, and the plan it applies when it has one (a standby's move). */
  confirm: { question: string; plan?: string[] } | undefined;
  help: boolean;
  /** Where the help overlay is scrolled to, when it is taller than the room under the head. */
  helpScroll?: Scroll;
  /** Told what the help overlay shows, so that a key scrolls it from there. */
  onHelpWindow?: (shown: ScrollWindow) => void;
  width: number;
  /** The terminal's height: the screen never draws more than this less one line. */
  height: number;
  /** Told how many server rows the table shows (for PgUp/PgDn). */
  onTableRoom?: (rows: number) => void;
}

const COLOR: Record<Health, string> = { ok: theme.ok, warn: theme.warn, fail: theme.error };

interface Column {
  title: string;
  width: number;
  source: SourceName;
  cell: (row: ServerRow, now: number) => string;
  /** Dropped first when the terminal is narrow (higher goes first). */
  drop: number;
}

function fitCell(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, Math.max(0, width - 1))}…` : text.padEnd(width);
}

/** The column each sort order is marked on. */
const SORTED_COLUMN: Record<SortKey, string> = { health: 'HEALTH', name: 'SERVER', version: 'VERSION', seen: 'SEEN' };

function columns(rows: ServerRow[], width: number, databaseHosts: boolean): { name: number; list: Column[] } {
  const all: Column[] = [
    { title: 'HEALTH', width: 12, source: 'registry', cell: (r) => r.word, drop: 0 },
    { title: 'VERSION', width: 9, source: 'registry', cell: (r) => versionCell(r), drop: 0 },
    { title: '/_STATUS', width: 9, source: 'probes', cell: (r) => probeCell(r.probe), drop: 0 },
    ...(databaseHosts ? [{ title: 'DATABASE', width: 21, source: 'probes' as const, cell: (r: ServerRow) => databaseHostCell(r), drop: 2 }] : []),
    { title: 'HAPROXY', width: 10, source: 'haproxy', cell: (r) => haproxyCell(r.haproxy, r.backup), drop: 0 },
    { title: 'FOR', width: 6, source: 'haproxy', cell: (r) => inStateCell(r.haproxy), drop: 2 },
    { title: 'CHECK', width: 13, source: 'haproxy', cell: (r) => checkCell(r.haproxy), drop: 3 },
    { title: 'SESS', width: 5, source: 'haproxy', cell: (r) => (r.haproxy ? String(r.haproxy.sessions) : '-'), drop: 4 },
    { title: 'SEEN', width: 6, source: 'registry', cell: (r, now) => seenCell(r, now), drop: 1 },
  ];
  // Room for the title and its sort mark (SERVER↓).
  const name = Math.min(20, Math.max(7, ...rows.map((r) => r.name.length)));
  const used = (list: Column[]) => 4 + name + list.reduce((sum, c) => sum + c.width + 1, 0);
  let list = all;
  for (let level = 4; level > 0 && used(list) > width; level -= 1) list = list.filter((c) => c.drop < level);
  return { name, list };
}

type SourcesProps = Pick<StatusScreenProps, 'snapshot' | 'now' | 'staleAfterMs' | 'intervalMs' | 'paused'>;

/** Each source's words (its age, STALE, FAILING) and whether they are a warning, then the refresh's. */
function sourceLabels({ snapshot, now, staleAfterMs, intervalMs, paused }: SourcesProps): Array<{ key: string; text: string; color: string }> {
  return [
    ...Object.values(snapshot.sources).map((s, i) => {
      const a = sourceAge(s, now, staleAfterMs);
      const label = s.absent
        ? `${s.name} n/a`
        : s.error
          ? `${s.name} ${symbols.fail} FAILING ${a.text}${s.updatedAt ? ' old' : ''}`
          : `${s.name} ${a.text}${a.stale ? ' STALE' : ''}`;
      return { key: s.name, text: `${i > 0 ? ' · ' : ''}${label}`, color: s.error || a.stale ? theme.error : theme.muted };
    }),
    { key: 'refresh', text: paused ? ' · PAUSED' : ` · every ${intervalMs / 1000}s`, color: paused ? theme.warn : theme.muted },
  ];
}

function SourcesLine(props: SourcesProps) {
  return (
    <Text wrap="wrap">
      {sourceLabels(props).map((label) => (
        <Text key={label.key} color={label.color}>
          {label.text}
        </Text>
      ))}
    </Text>
  );
}

/** The rows that fit, keeping the selected one in view. */
export function visibleWindow(count: number, selectedIndex: number, room: number): { start: number; end: number } {
  if (count <= room) return { start: 0, end: count };
  const lines = Math.max(1, room - 2);
  const start = Math.min(Math.max(0, selectedIndex - Math.floor(lines / 2)), count - lines);
  return { start, end: start + lines };
}

const title = (column: string, sort: SortKey) => (SORTED_COLUMN[sort] === column ? `${column}↓` : column);

function ServersTable({
  snapshot,
  rows: all,
  now,
  staleAfterMs,
  selected,
  width,
  sort,
  window,
}: Pick<StatusScreenProps, 'snapshot' | 'rows' | 'now' | 'staleAfterMs' | 'selected' | 'width' | 'sort'> & { window: { start: number; end: number } }) {
  const { name, list } = columns(all, width, showsDatabaseHosts(snapshot));
  const stale = (source: SourceName) => sourceAge(snapshot.sources[source], now, staleAfterMs).stale;
  const rows = all.slice(window.start, window.end);
  const scrolled = window.end - window.start < all.length;
  const shown = SORTED_COLUMN[sort] === 'SERVER' || list.some((c) => c.title === SORTED_COLUMN[sort]);
  const header = `    ${fitCell(title('SERVER', sort), name)} ${list.map((c) => fitCell(title(c.title, sort), c.width)).join(' ')}${shown ? '' : ` (sorted by ${sort})`}`;
  return (
    <Box flexDirection="column">
      <Text bold wrap="truncate-end">
        {fitLine(header.trimEnd(), width)}
      </Text>
      {scrolled && <Text color={theme.muted}>{window.start > 0 ? `  ↑ ${window.start} more above` : ' '}</Text>}
      {rows.map((row) => {
        const isSelected = row.name === selected;
        return (
          <Text key={row.name} inverse={isSelected} wrap="truncate-end">
            {isSelected ? symbols.pointer : ' '} <Text color={COLOR[row.health]}>{HEALTH_SYMBOL[row.health]}</Text> {fitCell(row.name, name)}{' '}
            {list.map((c, i) => (
              <Text key={c.title} dimColor={stale(c.source)} color={c.title === 'HEALTH' ? COLOR[row.health] : undefined}>
                {fitCell(c.cell(row, now), c.width)}
                {i < list.length - 1 ? ' ' : ''}
              </Text>
            ))}
          </Text>
        );
      })}
      {scrolled && <Text color={theme.muted}>{window.end < all.length ? `  ↓ ${all.length - window.end} more below` : ' '}</Text>}
    </Box>
  );
}

/** The footer's words, as Footer draws them. */
function footerText(props: Pick<StatusScreenProps, 'admin' | 'filterDraft' | 'filter' | 'confirm'>, place: DashboardPlace): string {
  const { admin, filterDraft, filter, confirm } = props;
  if (confirm) return [...(confirm.plan ?? []), confirmQuestion(confirm.question)].join('\n');
  if (filterDraft !== undefined) return `/${filterDraft}  Enter apply · Esc cancel · ! in front: rows NOT matching`;
  return `${filter && place === 'servers' ? `filter /${filter} (Esc clears) · ` : ''}${dashboardFooter(admin, place)}`;
}

function Footer({
  admin,
  filterDraft,
  filter,
  confirm,
  place,
}: Pick<StatusScreenProps, 'admin' | 'filterDraft' | 'filter' | 'confirm'> & { place: DashboardPlace }) {
  if (confirm) {
    return (
      <Box flexDirection="column">
        {(confirm.plan ?? []).map((line, i) => (
          <Text key={i} wrap="truncate">
            {line}
          </Text>
        ))}
        <Text color={theme.warn}>{confirmQuestion(confirm.question)}</Text>
      </Box>
    );
  }
  if (filterDraft !== undefined) {
    return (
      <Text>
        <Text color={theme.accent}>/</Text>
        {filterDraft}
        <Text inverse> </Text>
        <Text color={theme.muted}> Enter apply · Esc cancel · ! in front: rows NOT matching</Text>
      </Text>
    );
  }
  return (
    <Text color={theme.muted} wrap="wrap">
      {filter && place === 'servers' ? <Text color={theme.accent}>filter /{filter} (Esc clears) · </Text> : null}
      {dashboardFooter(admin, place)}
    </Text>
  );
}

/** Help lines: each key row, its text wrapped under its own column; then the notes. */
function helpLines(admin: boolean, width: number): Line[] {
  const keys = [...dashboardHelp(false), ...(admin ? dashboardHelp(true) : [])];
  const column = dashboardKeyWidth();
  const lines: Line[] = [];
  for (const [key, what] of keys) {
    const [first = '', ...more] = wrapLines(`${key.padEnd(column)} ${what}`, width, { indent: column + 1 });
    lines.push({ text: first.slice(column), key: key.padEnd(column) });
    for (const text of more) lines.push({ text });
  }
  const notes = [
    ...(admin ? [] : ['Read-only: start with --admin to drain, maint or ready a server through HAProxy.']),
    `Health: ${HEALTH_SYMBOL.ok} ok · ${HEALTH_SYMBOL.warn} attention (draining, maint, checks failing) · ${HEALTH_SYMBOL.fail} failing (offline, down, out of step)`,
  ];
  for (const note of notes) for (const text of wrapLines(note, width, { indent: 2 })) lines.push({ text, color: theme.muted });
  return lines;
}

/**
 * The keys and what they do, in `room` lines: in a box when all of it fits; else the title pinned and
 * the rest scrolled (to `scroll`, with the detail views' scroll keys) saying what is above and below.
 */
function helpView(admin: boolean, room: number, width: number, scroll: Scroll): { body: React.ReactNode; window: ScrollWindow } {
  const boxed = helpLines(admin, width - 4);
  if (room >= 1 + boxed.length + 2) {
    return {
      body: (
        <Box flexDirection="column" borderStyle="round" paddingX={1}>
          <Text bold>Keys</Text>
          <Lines lines={boxed} />
        </Box>
      ),
      window: { start: 0, page: Math.max(1, room), last: 0 },
    };
  }
  const shown = scrollLines(helpLines(admin, width), room - 1, scroll);
  return {
    body: (
      <>
        <Text bold>Keys</Text>
        <Lines lines={shown.lines} />
      </>
    ),
    window: shown.window,
  };
}

function clock(at: number): string {
  return new Date(at).toTimeString().slice(0, 8);
}

/** A line as drawn: its text (already cut to the width) and how. */
interface Line {
  text: string;
  color?: string;
  bold?: boolean;
  dim?: boolean;
  /** An event's first line: its clock muted and its symbol in its health's colour. */
  event?: { clock: string; health: Health };
  /** A help row's first line: its keys (padded to the key column) in the accent colour before `text`. */
  key?: string;
}

const lineColor = (health: Health | undefined) => (health === undefined || health === 'ok' ? undefined : COLOR[health]);

/** Lines in a box of `budget` lines; cut, the last one says how many more there are and where they are. */
function cut(lines: Line[], budget: number, more: (count: number) => string): Line[] {
  if (lines.length <= budget) return lines;
  if (budget <= 0) return [];
  const kept = lines.slice(0, budget - 1);
  return [...kept, { text: `  … ${more(lines.length - kept.length)}`, color: theme.muted }];
}

function databasePanelLines(props: StatusScreenProps): Line[] {
  const { snapshot, now, staleAfterMs, width } = props;
  const db = snapshot.sources.database;
  const dbStale = sourceAge(db, now, staleAfterMs).stale;
  const wrap = (text: string) => wrapLines(`  ${text}`, width, { indent: 4 });
  const lines: Line[] = [];
  for (const role of roleLines(snapshot.roles))
    for (const text of wrap(role.text)) lines.push({ text, color: lineColor(role.health), bold: role.health === 'fail' });
  for (const line of formationLines(snapshot))
    for (const text of wrap(line.text)) lines.push({ text, color: lineColor(line.health), bold: line.health === 'fail' });
  if (db.data) for (const line of databaseLines(db.data)) for (const text of wrap(line)) lines.push({ text, dim: dbStale });
  if (db.error) {
    const text = `${symbols.fail} not answering${db.updatedAt ? ` (data above is ${age((now - db.updatedAt) / 1000)} old)` : ''}: ${db.error}`;
    for (const line of wrap(text)) lines.push({ text: line, color: theme.error });
  }
  if (!db.data && !db.error) lines.push({ text: '  Loading…', color: theme.muted });
  return lines;
}

/**
 * The events pane's lines: the newest events that fit in `budget` lines, newest last, each wrapped
 * to at most two lines. Receives the events as the monitor lists them; draws, decides nothing else.
 */
export function eventLines(events: StatusEvent[], width: number, budget: number): { lines: Line[]; older: number } {
  const picked: Line[][] = [];
  let used = 0;
  let i = events.length - 1;
  for (; i >= 0 && used < budget; i -= 1) {
    const event = events[i]!;
    const prefix = `  ${clock(event.at)} ${HEALTH_SYMBOL[event.level]} `;
    const wrapped = wrapLines(`${prefix}${event.text}`, width, { indent: prefix.length, maxLines: Math.min(2, budget - used) });
    picked.push(wrapped.map((text, n) => (n === 0 ? { text, event: { clock: clock(event.at), health: event.level } } : { text })));
    used += wrapped.length;
  }
  return { lines: picked.reverse().flat(), older: i + 1 };
}

function Lines({ lines }: { lines: Line[] }) {
  return (
    <>
      {lines.map((line, i) =>
        line.event ? (
          <Text key={i} wrap="truncate-end">
            {'  '}
            <Text color={theme.muted}>{line.event.clock}</Text> <Text color={COLOR[line.event.health]}>{HEALTH_SYMBOL[line.event.health]}</Text>
            {line.text.slice(2 + line.event.clock.length + 2)}
          </Text>
        ) : line.key !== undefined ? (
          <Text key={i} wrap="truncate-end">
            <Text color={theme.accent}>{line.key}</Text>
            {line.text}
          </Text>
        ) : (
          <Text key={i} wrap="truncate-end" color={line.color} bold={line.bold} dimColor={line.dim}>
            {line.text || ' '}
          </Text>
        ),
      )}
    </>
  );
}

function sectionLines(sections: DetailSection[], width: number): Line[] {
  const lines: Line[] = [];
  for (const section of sections) {
    for (const text of wrapLines(section.title, width, { indent: 2 })) lines.push({ text, bold: true });
    for (const line of section.lines)
      for (const text of wrapLines(`  ${line.text}`, width, { indent: 4 })) lines.push({ text, color: lineColor(line.health), bold: line.health === 'fail' });
  }
  return lines;
}

/**
 * `lines` in `budget` lines from line `scroll` on: when they do not all fit, a line above and one
 * below (where there is more) say how many are beyond and which keys reach them (the keys of
 * DASHBOARD_KEYS' scroll row).
 */
function scrollLines(lines: Line[], budget: number, scroll: Scroll): { lines: Line[]; window: ScrollWindow } {
  if (lines.length <= budget || budget < 3) {
    // All of it, or a screen too short to scroll in (then what fits, and nothing to scroll).
    return { lines: lines.slice(0, Math.max(0, budget)), window: { start: 0, page: Math.max(1, budget), last: 0 } };
  }
  // At the top or the bottom one line says what is beyond; in between, two.
  const last = lines.length - (budget - 1);
  const start = scroll === 'end' ? last : Math.min(Math.max(0, scroll), last);
  const room = start === 0 || start === last ? budget - 1 : budget - 2;
  const below = lines.length - start - room;
  const more = (count: number, where: string, keys: string): Line => ({
    text: `  ${where === 'above' ? '↑' : '↓'} ${count} more line${count === 1 ? '' : 's'} ${where} (${keys})`,
    color: theme.muted,
  });
  return {
    lines: [
      ...(start > 0 ? [more(start, 'above', 'k, PgUp, g')] : []),
      ...lines.slice(start, start + room),
      ...(below > 0 ? [more(below, 'below', 'j, PgDn, G')] : []),
    ],
    window: { start, page: budget - 2, last },
  };
}

/** The lines of a detail view, all of them (scrollLines picks what fits); the log view's title is pinned above them. */
function detailContent(props: StatusScreenProps, budget: number): { title?: Line; lines: Line[] } {
  const { view, snapshot, now, width, localName, log } = props;
  if (view.kind === 'database') return { lines: sectionLines(databaseDetail(snapshot, now), width) };
  if (view.kind === 'servers') return { lines: [] };
  const local = view.name === localName;
  const logLines = (count: number): Line[] => {
    if (!local) return [{ text: `  ${view.name} is not this host's node: its log is on its host (knocker service logs server -f there)`, color: theme.muted }];
    if (log.error) return [{ text: `  ${symbols.fail} ${log.error}`, color: theme.error }];
    if (log.lines.length === 0) return [{ text: '  (nothing logged yet)', color: theme.muted }];
    return log.lines.slice(-Math.max(1, count)).map((text) => ({ text: fitLine(`  ${text}`, width) }));
  };
  if (view.kind === 'log') {
    const title = {
      text: fitLine(`Log of ${view.name}${local ? ` (this host's node)${log.source ? `: ${log.source}` : ''}, followed` : ''}`, width),
      bold: true,
    };
    return { title, lines: logLines(log.lines.length) };
  }
  const row = snapshot.servers.find((r) => r.name === view.name);
  if (!row) return { lines: [{ text: `  ${view.name} is no longer listed`, color: theme.muted }] };
  const lines = sectionLines(serverDetail(row, snapshot, now, localName), width);
  if (!local) return { lines };
  // Its last log lines under the detail: what the screen has room for, and at least a few (scrolled to).
  const logCount = Math.max(LOG_TAIL, budget - lines.length - 1);
  return {
    lines: [...lines, { text: fitLine(`Log (last lines; l: the whole log)${log.source ? `: ${log.source}` : ''}`, width), bold: true }, ...logLines(logCount)],
  };
}

/** The fewest log lines a server's detail shows under it. */
const LOG_TAIL = 5;

/** The lower part in a detail view in `budget` lines: a server's or the database's detail, or a log, scrolled to `props.scroll`. */
function detailLines(props: StatusScreenProps, budget: number): { lines: Line[]; window: ScrollWindow } {
  const { title, lines } = detailContent(props, budget);
  const shown = scrollLines(lines, budget - (title ? 1 : 0), props.scroll);
  return { lines: title ? [title, ...shown.lines] : shown.lines, window: shown.window };
}

/** Lines measured as drawn (Ink's layout of the wrapped parts), kept between frames. */
function useMeasured(initial: { head: number; foot: number }) {
  const head = useRef<DOMElement>(null);
  const foot = useRef<DOMElement>(null);
  const [size, setSize] = useState(initial);
  useLayoutEffect(() => {
    const next = {
      head: head.current ? measureElement(head.current).height : size.head,
      foot: foot.current ? measureElement(foot.current).height : size.foot,
    };
    if (next.head !== size.head || next.foot !== size.foot) setSize(next);
  });
  return { head, foot, size };
}

/** The database panel and the events pane, in the `rest` lines under the servers' part. */
function DatabaseAndEvents(props: StatusScreenProps & { rest: number }) {
  const { events, width, rest } = props;
  const dbAll = databasePanelLines(props);
  const eventsWanted = 1 + Math.max(1, Math.min(events.length * 2, rest));
  const dbBudget = Math.min(Math.max(0, rest), Math.max(Math.min(1 + dbAll.length, 2), Math.min(1 + dbAll.length, rest - Math.min(eventsWanted, 3))));
  const eventsBudget = rest - dbBudget;
  const shown = eventLines(events, width, eventsBudget - 1);
  return (
    <>
      {dbBudget > 0 && (
        <Box flexDirection="column" marginTop={1}>
          <Text bold>Database</Text>
          <Lines lines={cut(dbAll, dbBudget - 1, (n) => `${n} more lines: D shows the database`)} />
        </Box>
      )}
      {eventsBudget > 0 && (
        <Box flexDirection="column" marginTop={1}>
          <Text bold wrap="truncate-end">
            Events{shown.older > 0 ? <Text color={theme.muted}> ({shown.older} older not shown)</Text> : null}
          </Text>
          {events.length === 0 && eventsBudget > 1 ? <Text color={theme.muted}> none yet: state changes appear here</Text> : null}
          <Lines lines={shown.lines} />
        </Box>
      )}
    </>
  );
}

export function StatusScreen(props: StatusScreenProps) {
  const { snapshot, rows, selected, width, height, help, view, onTableRoom, onDetailWindow, onHelpWindow } = props;
  const { total, healthy } = snapshot.summary;
  const verdict: Health =
    snapshot.summary.databaseUnreachable || snapshot.roles?.health === 'fail'
      ? 'fail'
      : healthy === total && total > 0
        ? 'ok'
        : healthy === 0
          ? 'fail'
          : 'warn';
  const selectedRow = rows.find((r) => r.name === selected);
  const hidden = snapshot.servers.length - rows.length;
  const place: DashboardPlace = view.kind === 'servers' ? 'servers' : 'detail';
  const measured = useMeasured({ head: 2, foot: 1 });
  const summary = `${HEALTH_SYMBOL[verdict]} knocker status ${settled(snapshot) ? summaryLine(snapshot) : 'checking every source…'}`;
  // Ink's measure is of the frame before: where this frame's head or footer wraps to more lines
  // (a source failing, a confirmation), the estimate counts them before Ink has drawn them.
  const estimate = {
    head:
      wrapLines(summary, width).length +
      wrapLines(
        sourceLabels(props)
          .map((l) => l.text)
          .join(''),
        width,
      ).length,
    foot: wrapLines(footerText(props, place), width).length,
  };
  const head = Math.max(measured.size.head, estimate.head);
  const foot = Math.max(measured.size.foot, estimate.foot);
  // What is left under the head and above the footer (each with a blank line between), the last line of the terminal kept free.
  const room = Math.max(0, height - 1 - head - 1 - 1 - foot);

  let body: React.ReactNode;
  if (help) {
    const shown = helpView(props.admin, room, width, props.helpScroll ?? 0);
    onHelpWindow?.(shown.window);
    body = shown.body;
  } else if (view.kind !== 'servers') {
    const detail = detailLines(props, room);
    onDetailWindow?.(detail.window);
    body = <Lines lines={detail.lines} />;
  } else if (snapshot.servers.length === 0) {
    // No server to list (the registry unreadable in an incident, or empty): the database panel and
    // the events still say what is going on, and what the operator's own moves did.
    const message = snapshot.summary.databaseUnreachable ? (
      <Text color={theme.error} wrap="truncate-end">
        {symbols.fail} cannot read the servers registry: {snapshot.sources.registry.error}
      </Text>
    ) : (
      <Text color={theme.muted}>
        {snapshot.sources.registry.busy || snapshot.sources.registry.updatedAt === undefined ? 'Loading…' : 'No server is registered in this database.'}
      </Text>
    );
    body = (
      <>
        {message}
        <DatabaseAndEvents {...props} rest={room - 3} />
      </>
    );
  } else {
    const problemLines =
      selectedRow && selectedRow.problems.length > 0
        ? wrapLines(`  ${selectedRow.name}: ${selectedRow.problems.join('; ')}`, width, { indent: 4, maxLines: 2 })
        : [];
    // The pinned part: the table's header, its rows, the filter's note and the selected row's problems.
    const pinned = 1 + (hidden > 0 ? 1 : 0) + problemLines.length;
    // The database panel and the events keep at least a title and a line each, with a blank line before each.
    const tableRoom = Math.max(3, room - pinned - 6);
    const window = visibleWindow(
      rows.length,
      Math.max(
        0,
        rows.findIndex((r) => r.name === selected),
      ),
      tableRoom,
    );
    const tableLines = window.end - window.start + (window.end - window.start < rows.length ? 2 : 0);
    onTableRoom?.(window.end - window.start);
    const rest = room - pinned - tableLines - 2;
    body = (
      <>
        <ServersTable {...props} window={window} />
        {hidden > 0 && <Text color={theme.muted}> {hidden} more hidden by the filter</Text>}
        {problemLines.map((line) => (
          <Text key={line} color={COLOR[selectedRow!.health]} wrap="truncate-end">
            {line}
          </Text>
        ))}
        <DatabaseAndEvents {...props} rest={rest} />
      </>
    );
  }
  return (
    <Box flexDirection="column" width={width}>
      <Box ref={measured.head} flexDirection="column" flexShrink={0}>
        <Text wrap="wrap">
          <Text bold color={COLOR[verdict]}>
            {HEALTH_SYMBOL[verdict]} knocker status
          </Text>{' '}
          {settled(snapshot) ? summaryLine(snapshot) : 'checking every source…'}
        </Text>
        <SourcesLine {...props} />
      </Box>
      <Box flexDirection="column" marginTop={1} flexShrink={0}>
        {body}
      </Box>
      <Box ref={measured.foot} marginTop={1} flexShrink={0}>
        <Footer {...props} place={place} />
      </Box>
    </Box>
  );
}
