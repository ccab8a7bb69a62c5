// The key bindings of the screens, in one place.
import type { Key } from 'ink';
import { confirmAnswer } from '../shared/confirm.js';

export const bindings = {
  back: (_input: string, key: Key) => key.escape,
  submit: (_input: string, key: Key) => key.return,
  /** The one confirm style (src/shared/confirm.ts): y yes; n or Esc no; Enter is no answer. */
  confirm: (input: string, key: Key) => confirmAnswer(input, key.escape) === 'yes',
  decline: (input: string, key: Key) => !key.ctrl && confirmAnswer(input, key.escape) === 'no',
  quit: (input: string) => input === 'q' || input === 'Q',
  interrupt: (input: string, key: Key) => key.ctrl && input === 'c',
  erase: (_input: string, key: Key) => key.backspace || key.delete,
  clearLine: (input: string, key: Key) => key.ctrl && input === 'u',
};

/**
 * Keys typed faster than the screen redraws (or pasted) reach a handler as one chunk: "Ry",
 * "127.0.0.1:87", "abc\r". This hands each character over as a key of its own, Enter and Backspace
 * included, in order; a handler returns false to drop the rest of the chunk.
 */
export function eachKey(input: string, key: Key, handle: (input: string, key: Key) => boolean | void): void {
  const plain = !key.ctrl && !key.meta && !key.escape && !key.return && !key.upArrow && !key.downArrow && !key.leftArrow && !key.rightArrow && !key.tab;
  if (!plain || input.length <= 1) {
    handle(input, key);
    return;
  }
  for (const char of input) {
    const enter = char === '\r' || char === '\n';
    const erase = char === '\u007F' || char === '\b';
    if (handle(enter || erase ? '' : char, { ...key, return: enter, backspace: erase, shift: char !== char.toLowerCase() }) === false) return;
  }
}

/** What a key does on the dashboard (`knocker status`). */
export type DashboardCommand =
  | 'up'
  | 'down'
  | 'page-up'
  | 'page-down'
  | 'top'
  | 'bottom'
  | 'open'
  | 'log'
  | 'database'
  | 'back'
  | 'sort'
  | 'filter'
  | 'pause'
  | 'slower'
  | 'faster'
  | 'refresh'
  | 'help'
  | 'quit'
  | 'drain'
  | 'maint'
  | 'ready'
  | 'switchover'
  | 'promote';

/** The two kinds of place on the dashboard: the servers list, and a detail (a server's, the database's, a log). */
export type DashboardPlace = 'servers' | 'detail';

export interface DashboardKey {
  /** The keys as the help shows them. */
  keys: string;
  /** The footer's shorter spelling of `keys`, when there is one. */
  short?: string;
  /** The footer's word for it. */
  label: string;
  /** What it does, as the help (the overlay and `knocker status --help`) says it. */
  does: string;
  /** Needs --admin (a change through HAProxy). */
  admin: boolean;
  /** Where the footer offers it (default: everywhere). */
  places?: DashboardPlace[];
  /** Each key of the row and the command it runs. */
  bind: Array<[DashboardCommand, (input: string, key: Key) => boolean]>;
}

const typed =
  (...chars: string[]) =>
  (input: string) =>
    chars.includes(input);

/** The same keys move the selection on the servers list and scroll a detail (its row says which, by place). */
const MOVES: DashboardKey['bind'] = [
  ['up', (input, key) => key.upArrow || input === 'k'],
  ['down', (input, key) => key.downArrow || input === 'j'],
  ['page-up', (_input, key) => key.pageUp],
  ['page-down', (_input, key) => key.pageDown],
  ['top', typed('g')],
  ['bottom', typed('G')],
];

/**
 * The dashboard's one key table: the key handler (status-app.tsx), the footer and the help overlay
 * (status-screen.tsx) and `knocker status --help` all read it, so they cannot disagree.
 */
export const DASHBOARD_KEYS: DashboardKey[] = [
  {
    keys: '↑/↓ j/k',
    short: '↑/↓',
    label: 'select',
    does: 'select a server (PgUp/PgDn: a page, g/G: the first or last)',
    admin: false,
    places: ['servers'],
    bind: MOVES,
  },
  {
    keys: '↑/↓ j/k PgUp/PgDn g/G',
    short: '↑/↓ PgUp/PgDn g/G',
    label: 'scroll',
    does: 'in a detail or log taller than the terminal: scroll a line, a page, to the top or the bottom (where a log follows)',
    admin: false,
    places: ['detail'],
    bind: MOVES,
  },
  {
    keys: 'Enter',
    label: 'detail',
    does: "the selected server's detail: address, registry row, /_status answer, HAProxy check and counters",
    admin: false,
    places: ['servers'],
    bind: [['open', (_input, key) => key.return]],
  },
  { keys: 'l', label: 'log', does: "the selected server's log, followed (this host's own node)", admin: false, bind: [['log', typed('l')]] },
  {
    keys: 'D',
    label: 'database',
    does: "the database's detail: each host of DatabaseURL and its role, standbys, slots, lag",
    admin: false,
    bind: [['database', typed('D')]],
  },
  {
    keys: 'Esc',
    label: 'back',
    does: 'back to the servers from a detail or log; on the servers, clears the filter',
    admin: false,
    bind: [['back', (_input, key) => key.escape]],
  },
  {
    keys: 's',
    label: 'sort',
    does: 'sort the servers by health (problems first), name, version or last seen; the header marks it',
    admin: false,
    places: ['servers'],
    bind: [['sort', typed('s')]],
  },
  {
    keys: '/',
    label: 'filter',
    does: 'filter the servers (text anywhere in the row; start with ! to show the rows NOT matching)',
    admin: false,
    places: ['servers'],
    bind: [['filter', typed('/')]],
  },
  { keys: 'p', label: 'pause', does: 'pause or resume refreshing', admin: false, bind: [['pause', typed('p', ' ')]] },
  {
    keys: '+ / -',
    short: '+/-',
    label: 'interval',
    does: 'refresh less or more often (0.5 s to 60 s)',
    admin: false,
    bind: [
      ['slower', typed('+')],
      ['faster', typed('-')],
    ],
  },
  { keys: 'r', label: 'refresh', does: 'refresh now', admin: false, bind: [['refresh', typed('r')]] },
  {
    keys: '?',
    label: 'help',
    does: 'this help (the scroll keys scroll it where it is taller than the screen; any other key closes it)',
    admin: false,
    bind: [['help', typed('?')]],
  },
  {
    keys: 'q, Ctrl+C',
    short: 'q',
    label: 'quit',
    does: 'quit',
    admin: false,
    bind: [['quit', (input, key) => input === 'q' || bindings.interrupt(input, key)]],
  },
  {
    keys: 'd',
    label: 'drain',
    does: 'drain the selected server in HAProxy: no new sessions, cookie holders stay',
    admin: true,
    places: ['servers'],
    bind: [['drain', typed('d')]],
  },
  { keys: 'm', label: 'maint', does: 'maintenance: no traffic at all, checks paused', admin: true, places: ['servers'], bind: [['maint', typed('m')]] },
  { keys: 'R', label: 'ready', does: 'ready: back into rotation once a health check passes', admin: true, places: ['servers'], bind: [['ready', typed('R')]] },
  {
    keys: 'S',
    label: 'switchover',
    does: "on the primary's host: switch over to its standby (knocker standby switchover; its plan is shown first)",
    admin: true,
    places: ['servers'],
    bind: [['switchover', typed('S')]],
  },
  {
    keys: 'P',
    label: 'promote',
    does: "on the standby's host, the primary lost: promote it (knocker standby promote; its plan is shown first)",
    admin: true,
    places: ['servers'],
    bind: [['promote', typed('P')]],
  },
];

const offeredIn = (row: DashboardKey, place: DashboardPlace) => (row.places ?? ['servers', 'detail']).includes(place);

/** The command a key runs on the dashboard in `place`, and whether it needs --admin; undefined: none there. */
export function dashboardCommand(input: string, key: Key, place: DashboardPlace = 'servers'): { command: DashboardCommand; admin: boolean } | undefined {
  for (const row of DASHBOARD_KEYS) {
    if (!offeredIn(row, place)) continue;
    const bound = row.bind.find(([, matches]) => matches(input, key));
    if (bound) return { command: bound[0], admin: row.admin };
  }
  return undefined;
}

/** The footer's line: "↑/↓ select · / filter · … · q quit", the admin keys after them with --admin; only the keys that work in `place`. */
export function dashboardFooter(admin: boolean, place: DashboardPlace = 'servers'): string {
  return DASHBOARD_KEYS.filter((row) => (admin || !row.admin) && offeredIn(row, place))
    .map((row) => `${row.short ?? row.keys} ${row.label}`)
    .join(' · ');
}

/** The help's rows, the keys and what they do: of the read-only keys, or (admin) of those that need --admin. */
export function dashboardHelp(admin: boolean): Array<[string, string]> {
  return DASHBOARD_KEYS.filter((row) => row.admin === admin).map((row) => [row.keys, row.does]);
}

/** The width of the help's key column: the widest `keys` of the table. */
export function dashboardKeyWidth(): number {
  return Math.max(...DASHBOARD_KEYS.map((row) => row.keys.length));
}

/** The key table as README's "Console" section shows it (a test keeps the two the same). */
export function dashboardKeysMarkdown(): string {
  const cell = (text: string) => text.replace(/\|/g, '\\|');
  return [
    '| keys | what they do | needs |',
    '|---|---|---|',
    ...DASHBOARD_KEYS.map((row) => `| \`${cell(row.keys)}\` | ${cell(row.does)} | ${row.admin ? '`--admin`' : ''} |`),
  ].join('\n');
}
