// The live dashboard: owns the keys, the filter, the selection, the confirmation of an admin
// action and the exit. The cluster's data comes from a StatusMonitor (src/status/), the changes
// (with --admin) from the services it is given; the screen only draws.
import { useCallback, useEffect, useRef, useState } from 'react';
import { useInput, type Key } from 'ink';
import { errorMessage } from './errors.js';
import { runApp, type OnExit } from './screens/app-exit.js';
import { bindings, dashboardCommand, eachKey, type DashboardCommand } from './screens/keys.js';
import { StatusScreen, type DashboardView, type Scroll, type ScrollWindow } from './screens/status-screen.js';
import { useNow } from './screens/use-now.js';
import { ACTION_TITLE, STANDBY_TITLE, type AdminAction, type StandbyAction } from './status/actions.js';
import { confirmAnswer } from './shared/confirm.js';
import { foldEvents } from './status/fold.js';
import type { StatusEvent } from './status/model.js';
import { useTerminalSize } from './screens/use-terminal-size.js';
import { nextSort, sortServers, type SortKey } from './status/sort.js';
import { matchesFilter } from './status/model.js';
import { printableData } from './shared/printable.js';
import { nextInterval, type StatusMonitor } from './status/monitor.js';
import type { ServerStat } from './haproxy/runtime.js';

export interface DashboardServices {
  monitor: StatusMonitor;
  /** Set with --admin: drain, maint or ready one server through HAProxy. */
  rotate?: (name: string, action: AdminAction, onStatus: (stat: ServerStat) => void) => Promise<string>;
  /** Set with --admin on a host of a standby pair: the plan `--dry-run` shows, and the move itself. */
  standby?: {
    plan: (action: StandbyAction) => Promise<string[]>;
    apply: (action: StandbyAction, onLine: (line: string) => void) => Promise<number>;
  };
  staleAfterMs: () => number;
  /** The recent part of the cluster's history, loaded at start: the events pane begins with it. */
  earlier?: StatusEvent[];
  /** Follows this host's node's log (its last lines, then each new one) until `stop` aborts. */
  followLog?: (onLines: (lines: string[]) => void, stop: AbortSignal) => Promise<void>;
}

/** What the operator is asked to confirm: a server's rotation, or a standby's move with its plan. */
type Confirm =
  | { kind: 'rotate'; action: AdminAction; name: string; question: string }
  | { kind: 'standby'; action: StandbyAction; question: string; plan: string[] };

/** How far a move key moves the selection on the servers list, given a page's rows. */
const MOVE_BY: Record<'up' | 'down' | 'page-up' | 'page-down' | 'top' | 'bottom', (page: number) => number> = {
  up: () => -1,
  down: () => 1,
  'page-up': (page) => -page,
  'page-down': (page) => page,
  top: () => -Number.MAX_SAFE_INTEGER,
  bottom: () => Number.MAX_SAFE_INTEGER,
};

/** The log lines the dashboard keeps for its log view. */
const LOG_LINES = 500;

interface UiState {
  filter: string;
  filterDraft: string | undefined;
  selected: string | undefined;
  help: boolean;
  /** Where the help overlay is scrolled to (it opens at its top). */
  helpScroll: Scroll;
  confirm: Confirm | undefined;
  sort: SortKey;
  view: DashboardView;
  /** Where a detail view is scrolled to: its first line shown, or 'end' (the bottom, kept there as the content grows). */
  scroll: Scroll;
}

type UiAction =
  | { type: 'filter-start' }
  | { type: 'filter-type'; text: string }
  | { type: 'filter-erase' }
  | { type: 'filter-apply' }
  | { type: 'filter-cancel' }
  | { type: 'filter-clear' }
  | { type: 'select'; name: string | undefined }
  | { type: 'help'; open: boolean }
  | { type: 'confirm'; action: AdminAction; name: string }
  | { type: 'confirm-standby'; action: StandbyAction; plan: string[] }
  | { type: 'confirm-close' }
  | { type: 'sort' }
  | { type: 'view'; view: DashboardView }
  | { type: 'scroll'; to: Scroll }
  | { type: 'help-scroll'; to: Scroll };

function uiReducer(state: UiState, action: UiAction): UiState {
  switch (action.type) {
    case 'filter-start':
      return { ...state, filterDraft: state.filter };
    case 'filter-type':
      return state.filterDraft === undefined ? state : { ...state, filterDraft: state.filterDraft + action.text };
    case 'filter-erase':
      return state.filterDraft === undefined ? state : { ...state, filterDraft: state.filterDraft.slice(0, -1) };
    case 'filter-apply':
      return { ...state, filter: (state.filterDraft ?? state.filter).trim(), filterDraft: undefined };
    case 'filter-cancel':
      return { ...state, filterDraft: undefined };
    case 'filter-clear':
      return { ...state, filter: '' };
    case 'select':
      return { ...state, selected: action.name };
    case 'help':
      return { ...state, help: action.open, helpScroll: 0 };
    case 'confirm':
      return { ...state, confirm: { kind: 'rotate', action: action.action, name: action.name, question: ACTION_TITLE[action.action](action.name) } };
    case 'confirm-standby':
      return { ...state, confirm: { kind: 'standby', action: action.action, question: STANDBY_TITLE[action.action], plan: action.plan } };
    case 'confirm-close':
      return { ...state, confirm: undefined };
    case 'sort':
      return { ...state, sort: nextSort(state.sort) };
    case 'view':
      // A log opens at its end (followed), a detail at its top.
      return { ...state, view: action.view, scroll: action.view.kind === 'log' ? 'end' : 0 };
    case 'scroll':
      return { ...state, scroll: action.to };
    case 'help-scroll':
      return { ...state, helpScroll: action.to };
  }
}

/**
 * A reducer whose latest state the key handler can read at once: two keys that arrive before a
 * re-render ("R" then "y") must see each other's effect, which a state captured by the handler's
 * closure would not.
 */
function useLatestReducer<S, A>(reducer: (state: S, action: A) => S, initial: S): [{ readonly current: S }, (action: A) => void] {
  const ref = useRef(initial);
  const [, rerender] = useState(0);
  const dispatch = useCallback(
    (action: A) => {
      ref.current = reducer(ref.current, action);
      rerender((n) => n + 1);
    },
    [reducer],
  );
  return [ref, dispatch];
}

/** Re-renders whenever the monitor has news. */
function useMonitor(monitor: StatusMonitor): number {
  const [version, setVersion] = useState(0);
  useEffect(() => monitor.subscribe(() => setVersion((v) => v + 1)), [monitor]);
  return version;
}

/** The node's log while a view shows it: followed from when the view opens until it closes. */
function useNodeLog(follow: DashboardServices['followLog'], active: boolean): { lines: string[]; error: string | undefined } {
  const [log, setLog] = useState<{ lines: string[]; error: string | undefined }>({ lines: [], error: undefined });
  useEffect(() => {
    if (!active || !follow) return undefined;
    const stop = new AbortController();
    setLog({ lines: [], error: undefined });
    follow((lines) => setLog((was) => ({ lines: [...was.lines, ...lines].slice(-LOG_LINES), error: undefined })), stop.signal).catch((error: unknown) =>
      setLog((was) => ({ ...was, error: errorMessage(error) })),
    );
    return () => stop.abort();
  }, [follow, active]);
  return log;
}

export function Dashboard({ services, onExit }: { services: DashboardServices; onExit: OnExit }) {
  const { monitor, rotate, standby } = services;
  const admin = Boolean(rotate || standby);
  const size = useTerminalSize({ columns: 100, rows: 40 });
  // The rows the table showed last (PgUp/PgDn move by about that much).
  const tableRoom = useRef(10);
  // Where the detail view drawn last was: a scroll starts from there.
  const detailWindow = useRef<ScrollWindow>({ start: 0, page: 1, last: 0 });
  // Where the help overlay drawn last was, the same way.
  const helpWindow = useRef<ScrollWindow>({ start: 0, page: 1, last: 0 });
  useMonitor(monitor);
  // Ages move with each refresh; a clock of its own is needed only when refreshes are rarer than a second.
  const now = useNow(monitor.paused || monitor.intervalMs > 1_000, 1_000);
  const [uiRef, dispatch] = useLatestReducer(uiReducer, {
    filter: '',
    filterDraft: undefined,
    selected: undefined,
    help: false,
    helpScroll: 0,
    confirm: undefined,
    sort: 'health',
    view: { kind: 'servers' },
    scroll: 0,
  } as UiState);
  const ui = uiRef.current;
  // Names, versions and errors come from the database, HTTP answers and HAProxy: drawn, never obeyed.
  const snapshot = printableData(monitor.current(), true);
  const filter = ui.filterDraft ?? ui.filter;
  const rows = sortServers(
    snapshot.servers.filter((row) => matchesFilter(row, filter)),
    ui.sort,
  );
  const selected = rows.some((r) => r.name === ui.selected) ? ui.selected : rows[0]?.name;

  // The key handler reads the latest state and data, never the render's.
  const visible = () =>
    sortServers(
      monitor.current().servers.filter((row) => matchesFilter(row, uiRef.current.filterDraft ?? uiRef.current.filter)),
      uiRef.current.sort,
    );
  const selectedOf = (list: typeof rows) => (list.some((r) => r.name === uiRef.current.selected) ? uiRef.current.selected : list[0]?.name);
  const move = (by: number) => {
    const list = visible();
    if (list.length === 0) return;
    const at = Math.max(
      0,
      list.findIndex((r) => r.name === selectedOf(list)),
    );
    dispatch({ type: 'select', name: list[Math.min(list.length - 1, Math.max(0, at + by))]!.name });
  };

  const act = (action: AdminAction, name: string) => {
    if (!rotate) return;
    monitor.note({ at: Date.now(), level: 'warn', text: `${action} ${name}: requested through HAProxy` });
    rotate(name, action, (stat) =>
      monitor.note({ at: Date.now(), level: 'warn', text: `${name}: HAProxy ${stat.status.text} (waiting for a passing check)` }),
    ).then(
      (result) => {
        monitor.note({ at: Date.now(), level: 'ok', text: `${action} ${name}: done, now ${result}` });
        monitor.refreshNow();
      },
      (error: unknown) => monitor.note({ at: Date.now(), level: 'fail', text: `${action} ${name} failed: ${errorMessage(error)}` }),
    );
  };

  const planStandby = (action: StandbyAction) => {
    if (!standby) return;
    monitor.note({ at: Date.now(), level: 'warn', text: `${action}: planning (as knocker standby ${action} --dry-run)` });
    standby.plan(action).then(
      (plan) => dispatch({ type: 'confirm-standby', action, plan }),
      (error: unknown) => monitor.note({ at: Date.now(), level: 'fail', text: `${action}: cannot plan: ${errorMessage(error)}` }),
    );
  };

  const applyStandby = (action: StandbyAction) => {
    if (!standby) return;
    monitor.note({ at: Date.now(), level: 'warn', text: `${action}: started` });
    standby
      .apply(action, (line) => monitor.note({ at: Date.now(), level: 'warn', text: `${action}: ${line.trim()}` }))
      .then(
        (code) => monitor.note({ at: Date.now(), level: code === 0 ? 'ok' : 'fail', text: `${action}: ${code === 0 ? 'done' : `ended with exit ${code}`}` }),
        (error: unknown) => monitor.note({ at: Date.now(), level: 'fail', text: `${action} failed: ${errorMessage(error)}` }),
      )
      .finally(() => monitor.refreshNow());
  };

  const page = () => Math.max(1, tableRoom.current - 1);
  /**
   * The scroll keys of a detail view or the help overlay (`help`): from the window drawn last, by a
   * line, a page, to the top or the bottom (clamped; at the last page a detail sticks to the end).
   */
  const scroller = (help: boolean) => {
    const shown = help ? helpWindow : detailWindow;
    const to = (line: number) => dispatch({ type: help ? 'help-scroll' : 'scroll', to: line >= shown.current.last ? 'end' : Math.max(0, line) });
    const by = (lines: number) => to(shown.current.start + lines);
    const page = Math.max(1, shown.current.page - 1);
    return { to, by, page };
  };
  /** Runs a move key as a scroll; false when `command` is not one. */
  const scrollWith = (command: DashboardCommand, scroll: ReturnType<typeof scroller>): boolean => {
    const moves: Partial<Record<DashboardCommand, () => void>> = {
      up: () => scroll.by(-1),
      down: () => scroll.by(1),
      'page-up': () => scroll.by(-scroll.page),
      'page-down': () => scroll.by(scroll.page),
      top: () => scroll.to(0),
      bottom: () => scroll.to(Number.MAX_SAFE_INTEGER),
    };
    const run = moves[command];
    run?.();
    return run !== undefined;
  };
  const handleKey = (input: string, key: Key) => {
    const ui = uiRef.current;
    if (bindings.interrupt(input, key)) return onExit(0);
    if (ui.confirm) {
      // The one confirm style (src/shared/confirm.ts): y yes, n or Esc no; another key is no answer.
      const answer = confirmAnswer(input, key.escape);
      if (!answer) return;
      const { confirm } = ui;
      const what = confirm.kind === 'rotate' ? `${confirm.action} ${confirm.name}` : confirm.action;
      if (answer === 'no') monitor.note({ at: Date.now(), level: 'ok', text: `${what}: cancelled` });
      else if (confirm.kind === 'rotate') act(confirm.action, confirm.name);
      else applyStandby(confirm.action);
      dispatch({ type: 'confirm-close' });
      return;
    }
    if (ui.filterDraft !== undefined) {
      if (key.return) dispatch({ type: 'filter-apply' });
      else if (key.escape) dispatch({ type: 'filter-cancel' });
      else if (key.backspace || key.delete) dispatch({ type: 'filter-erase' });
      else if (!key.ctrl && !key.meta && !key.upArrow && !key.downArrow && !key.leftArrow && !key.rightArrow && !key.tab && input) {
        dispatch({ type: 'filter-type', text: input.replace(/[\r\n]/g, '') });
      }
      return;
    }
    // In a detail view only the keys offered there work (the moves scroll it); the rest wait for Esc.
    const inDetail = ui.view.kind !== 'servers';
    const found = dashboardCommand(input, key, inDetail ? 'detail' : 'servers');
    if (ui.help) {
      // The scroll keys scroll the help; any other key closes it, q also quits.
      if (found && scrollWith(found.command, scroller(true))) return;
      dispatch({ type: 'help', open: false });
      if (found?.command !== 'quit') return;
    }
    if (!found) return;
    // An admin key without --admin is not passed over without a word.
    if (found.admin && !admin) {
      monitor.note({ at: Date.now(), level: 'warn', text: 'read-only: start with --admin to drain, maint or ready a server, or switch over' });
      return;
    }
    switch (found.command) {
      case 'quit':
        return onExit(0);
      case 'help':
        return dispatch({ type: 'help', open: true });
      case 'filter':
        return dispatch({ type: 'filter-start' });
      case 'back':
        if (inDetail) return dispatch({ type: 'view', view: { kind: 'servers' } });
        return ui.filter ? dispatch({ type: 'filter-clear' }) : undefined;
      case 'open': {
        const target = selectedOf(visible());
        return target ? dispatch({ type: 'view', view: { kind: 'server', name: target } }) : undefined;
      }
      case 'log': {
        const target = ui.view.kind === 'server' || ui.view.kind === 'log' ? ui.view.name : selectedOf(visible());
        return target ? dispatch({ type: 'view', view: { kind: 'log', name: target } }) : undefined;
      }
      case 'database':
        return dispatch({ type: 'view', view: { kind: 'database' } });
      case 'sort':
        return dispatch({ type: 'sort' });
      case 'pause':
        return monitor.setPaused(!monitor.paused);
      case 'slower':
        return monitor.setInterval(nextInterval(monitor.intervalMs, 1));
      case 'faster':
        return monitor.setInterval(nextInterval(monitor.intervalMs, -1));
      case 'refresh':
        return monitor.refreshNow();
      case 'up':
      case 'down':
      case 'page-up':
      case 'page-down':
      case 'top':
      case 'bottom':
        if (inDetail) scrollWith(found.command, scroller(false));
        else move(MOVE_BY[found.command](page()));
        return;
      case 'drain':
      case 'maint':
      case 'ready': {
        const target = selectedOf(visible());
        if (target) dispatch({ type: 'confirm', action: found.command, name: target });
        return;
      }
      case 'switchover':
      case 'promote':
        return planStandby(found.command);
    }
  };

  useInput((input: string, key: Key) => eachKey(input, key, handleKey));

  const width = Math.max(60, size.columns);
  const view = ui.view;
  const localName = monitor.localName;
  const log = useNodeLog(services.followLog, (view.kind === 'log' || view.kind === 'server') && view.name === localName);
  return (
    <StatusScreen
      snapshot={snapshot}
      rows={rows}
      events={printableData(foldEvents([...(services.earlier ?? []), ...monitor.history()]), true)}
      now={Math.max(now, snapshot.at)}
      intervalMs={monitor.intervalMs}
      staleAfterMs={services.staleAfterMs()}
      paused={monitor.paused}
      filter={ui.filter}
      filterDraft={ui.filterDraft}
      selected={selected}
      admin={admin}
      confirm={ui.confirm}
      help={ui.help}
      helpScroll={ui.helpScroll}
      onHelpWindow={(shown) => {
        helpWindow.current = shown;
      }}
      width={width}
      height={size.rows}
      sort={ui.sort}
      view={view}
      scroll={ui.scroll}
      onDetailWindow={(shown) => {
        detailWindow.current = shown;
      }}
      localName={localName}
      log={{ ...log, source: undefined }}
      onTableRoom={(shown) => {
        tableRoom.current = shown;
      }}
    />
  );
}

/** Runs the dashboard until q or Ctrl+C; returns the exit code. */
export async function runDashboard(services: DashboardServices): Promise<number> {
  services.monitor.start();
  try {
    return await runApp((onExit) => <Dashboard services={services} onExit={onExit} />);
  } finally {
    await services.monitor.stop();
  }
}
