// The live cluster dashboard, drawn from a snapshot: a summary line and the age of each source,
// the servers (problems first; the selected one's problems spelled out), the database panel, the
// events pane and the keys. A source that fails is drawn dimmed with its age and its error.
// Health is always a word and a symbol as well as a colour. It only displays.
import { Box, Text } from 'ink';
import {
  checkCell,
  databaseHostCell,
  databaseLines,
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
import { dashboardFooter, dashboardHelp } from './keys.js';
import { confirmQuestion } from '../shared/confirm.js';
import { symbols, theme } from './theme.js';

export interface StatusScreenProps {
  snapshot: Snapshot;
  /** The rows after the filter. */
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
  admin: boolean;
  /** The question of an admin action, and the plan it applies when it has one (a standby's move). */
  confirm: { question: string; plan?: string[] } | undefined;
  help: boolean;
  width: number;
  /** Room for the servers table's rows and for the events pane, in lines. */
  tableLines: number;
  eventLines: number;
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
  const name = Math.min(20, Math.max(6, ...rows.map((r) => r.name.length)));
  const used = (list: Column[]) => 4 + name + list.reduce((sum, c) => sum + c.width + 1, 0);
  let list = all;
  for (let level = 4; level > 0 && used(list) > width; level -= 1) list = list.filter((c) => c.drop < level);
  return { name, list };
}

function SourcesLine({
  snapshot,
  now,
  staleAfterMs,
  intervalMs,
  paused,
}: Pick<StatusScreenProps, 'snapshot' | 'now' | 'staleAfterMs' | 'intervalMs' | 'paused'>) {
  const sources = Object.values(snapshot.sources);
  return (
    <Text wrap="wrap">
      {sources.map((s, i) => {
        const a = sourceAge(s, now, staleAfterMs);
        const label = s.absent
          ? `${s.name} n/a`
          : s.error
            ? `${s.name} ${symbols.fail} FAILING ${a.text}${s.updatedAt ? ' old' : ''}`
            : `${s.name} ${a.text}${a.stale ? ' STALE' : ''}`;
        return (
          <Text key={s.name} color={s.error || a.stale ? theme.error : theme.muted}>
            {i > 0 ? ' · ' : ''}
            {label}
          </Text>
        );
      })}
      <Text color={paused ? theme.warn : theme.muted}>{paused ? ' · PAUSED' : ` · every ${intervalMs / 1000}s`}</Text>
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

function ServersTable({
  snapshot,
  rows: all,
  now,
  staleAfterMs,
  selected,
  width,
  tableLines,
}: Pick<StatusScreenProps, 'snapshot' | 'rows' | 'now' | 'staleAfterMs' | 'selected' | 'width' | 'tableLines'>) {
  const { name, list } = columns(all, width, showsDatabaseHosts(snapshot));
  const stale = (source: SourceName) => sourceAge(snapshot.sources[source], now, staleAfterMs).stale;
  const window = visibleWindow(
    all.length,
    Math.max(
      0,
      all.findIndex((r) => r.name === selected),
    ),
    tableLines,
  );
  const rows = all.slice(window.start, window.end);
  const scrolled = window.end - window.start < all.length;
  return (
    <Box flexDirection="column">
      <Text bold>
        {'    '}
        {fitCell('SERVER', name)} {list.map((c) => fitCell(c.title, c.width)).join(' ')}
      </Text>
      {scrolled && <Text color={theme.muted}>{window.start > 0 ? `  ↑ ${window.start} more above` : ' '}</Text>}
      {rows.map((row) => {
        const isSelected = row.name === selected;
        return (
          <Text key={row.name} inverse={isSelected}>
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

function Footer({ admin, filterDraft, filter, confirm }: Pick<StatusScreenProps, 'admin' | 'filterDraft' | 'filter' | 'confirm'>) {
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
      {filter ? <Text color={theme.accent}>filter /{filter} (Esc clears) · </Text> : null}
      {dashboardFooter(admin)}
    </Text>
  );
}

function Help({ admin }: { admin: boolean }) {
  const lines = [...dashboardHelp(false), ...(admin ? dashboardHelp(true) : [])];
  return (
    <Box flexDirection="column" borderStyle="round" paddingX={1}>
      <Text bold>Keys</Text>
      {lines.map(([key, what]) => (
        <Text key={key}>
          <Text color={theme.accent}>{key.padEnd(10)}</Text> {what}
        </Text>
      ))}
      {!admin && <Text color={theme.muted}>Read-only: start with --admin to drain, maint or ready a server through HAProxy.</Text>}
      <Text color={theme.muted}>
        Health: {HEALTH_SYMBOL.ok} ok · {HEALTH_SYMBOL.warn} attention (draining, maint, checks failing) · {HEALTH_SYMBOL.fail} failing (offline, down, out of
        step)
      </Text>
    </Box>
  );
}

function clock(at: number): string {
  return new Date(at).toTimeString().slice(0, 8);
}

export function StatusScreen(props: StatusScreenProps) {
  const { snapshot, rows, events, now, staleAfterMs, selected, width, help, eventLines } = props;
  const { total, healthy } = snapshot.summary;
  const verdict: Health =
    snapshot.summary.databaseUnreachable || snapshot.roles?.health === 'fail'
      ? 'fail'
      : healthy === total && total > 0
        ? 'ok'
        : healthy === 0
          ? 'fail'
          : 'warn';
  const db = snapshot.sources.database;
  const dbStale = sourceAge(db, now, staleAfterMs).stale;
  const selectedRow = rows.find((r) => r.name === selected);
  const hidden = snapshot.servers.length - rows.length;
  return (
    <Box flexDirection="column" width={width}>
      <Text wrap="wrap">
        <Text bold color={COLOR[verdict]}>
          {HEALTH_SYMBOL[verdict]} knocker status
        </Text>{' '}
        {settled(snapshot) ? summaryLine(snapshot) : 'checking every source…'}
      </Text>
      <SourcesLine {...props} />
      {help ? (
        <Help admin={props.admin} />
      ) : (
        <Box flexDirection="column" marginTop={1}>
          {snapshot.summary.databaseUnreachable && snapshot.servers.length === 0 ? (
            <Text color={theme.error}>
              {symbols.fail} cannot read the servers registry: {snapshot.sources.registry.error}
            </Text>
          ) : snapshot.servers.length === 0 ? (
            <Text color={theme.muted}>
              {snapshot.sources.registry.busy || snapshot.sources.registry.updatedAt === undefined ? 'Loading…' : 'No server is registered in this database.'}
            </Text>
          ) : (
            <ServersTable {...props} />
          )}
          {hidden > 0 && <Text color={theme.muted}> {hidden} more hidden by the filter</Text>}
          {selectedRow && selectedRow.problems.length > 0 && (
            <Text color={COLOR[selectedRow.health]} wrap="wrap">
              {'  '}
              {selectedRow.name}: {selectedRow.problems.join('; ')}
            </Text>
          )}
          <Box flexDirection="column" marginTop={1}>
            <Text bold>Database</Text>
            {roleLines(snapshot.roles).map((line) => (
              <Text key={line.text} color={line.health === 'ok' ? undefined : COLOR[line.health]} bold={line.health === 'fail'} wrap="wrap">
                {'  '}
                {line.text}
              </Text>
            ))}
            {db.data
              ? databaseLines(db.data).map((line) => (
                  <Text key={line} dimColor={dbStale} wrap="wrap">
                    {'  '}
                    {line}
                  </Text>
                ))
              : null}
            {db.error && (
              <Text color={theme.error} wrap="wrap">
                {'  '}
                {symbols.fail} not answering{db.updatedAt ? ` (data above is ${age((now - db.updatedAt) / 1000)} old)` : ''}: {db.error}
              </Text>
            )}
            {!db.data && !db.error && <Text color={theme.muted}> Loading…</Text>}
          </Box>
          <Box flexDirection="column" marginTop={1}>
            <Text bold>Events</Text>
            {events.length === 0 ? <Text color={theme.muted}> none yet: state changes appear here</Text> : null}
            {events.slice(-eventLines).map((event, i) => (
              <Text key={`${event.at}-${i}`} wrap="wrap">
                {'  '}
                <Text color={theme.muted}>{clock(event.at)}</Text> <Text color={COLOR[event.level]}>{HEALTH_SYMBOL[event.level]}</Text> {event.text}
              </Text>
            ))}
          </Box>
        </Box>
      )}
      <Box marginTop={1}>
        <Footer {...props} />
      </Box>
    </Box>
  );
}
