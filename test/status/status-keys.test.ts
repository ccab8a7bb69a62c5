// The dashboard's one key table (src/screens/keys.ts): the keys it lists are the keys the handler
// obeys, and the footer and the help say the same.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Key } from 'ink';
import { expect, test } from 'vitest';
import { DASHBOARD_KEYS, dashboardCommand, dashboardFooter, dashboardHelp, dashboardKeysMarkdown, type DashboardCommand } from '../../src/screens/keys.js';
import { packageRoot } from '../../src/system/package.js';

const none: Key = {
  upArrow: false,
  downArrow: false,
  leftArrow: false,
  rightArrow: false,
  pageDown: false,
  pageUp: false,
  return: false,
  escape: false,
  ctrl: false,
  shift: false,
  tab: false,
  backspace: false,
  delete: false,
  meta: false,
} as Key;

const pressed: Array<[string, Partial<Key>, DashboardCommand]> = [
  ['', { upArrow: true }, 'up'],
  ['k', {}, 'up'],
  ['', { downArrow: true }, 'down'],
  ['j', {}, 'down'],
  ['', { pageUp: true }, 'page-up'],
  ['', { pageDown: true }, 'page-down'],
  ['g', {}, 'top'],
  ['G', {}, 'bottom'],
  ['/', {}, 'filter'],
  ['', { escape: true }, 'back'],
  ['', { return: true }, 'open'],
  ['l', {}, 'log'],
  ['D', {}, 'database'],
  ['s', {}, 'sort'],
  ['p', {}, 'pause'],
  [' ', {}, 'pause'],
  ['+', {}, 'slower'],
  ['-', {}, 'faster'],
  ['r', {}, 'refresh'],
  ['?', {}, 'help'],
  ['q', {}, 'quit'],
  ['c', { ctrl: true }, 'quit'],
  ['d', {}, 'drain'],
  ['m', {}, 'maint'],
  ['R', {}, 'ready'],
  ['S', {}, 'switchover'],
  ['P', {}, 'promote'],
];

test('each key runs the command of its row; the admin ones are marked as needing --admin', () => {
  for (const [input, key, command] of pressed) {
    expect(dashboardCommand(input, { ...none, ...key }), `${JSON.stringify(input)} ${JSON.stringify(key)}`).toEqual({
      command,
      admin: ['drain', 'maint', 'ready', 'switchover', 'promote'].includes(command),
    });
  }
  expect(dashboardCommand('x', none)).toBeUndefined();
  // In a detail view the moves scroll it (the same commands, by the scroll row); the servers list's own keys do nothing there.
  for (const [input, key, command] of pressed.filter(([, , c]) => ['up', 'down', 'page-up', 'page-down', 'top', 'bottom'].includes(c))) {
    expect(dashboardCommand(input, { ...none, ...key }, 'detail')).toEqual({ command, admin: false });
  }
  for (const [input, key] of [
    ['', { return: true }],
    ['s', {}],
    ['/', {}],
    ['d', {}],
    ['S', {}],
  ] as Array<[string, Partial<Key>]>) {
    expect(dashboardCommand(input, { ...none, ...key }, 'detail'), input).toBeUndefined();
  }
  expect(dashboardCommand('l', none, 'detail')).toEqual({ command: 'log', admin: false });
  // Every command of the table is reached by some key above.
  expect(new Set(pressed.map(([, , c]) => c))).toEqual(new Set(DASHBOARD_KEYS.flatMap((row) => row.bind.map(([c]) => c))));
});

test('the footer and the help list every row, the admin keys only with --admin', () => {
  expect(dashboardFooter(false)).toBe(
    '↑/↓ select · Enter detail · l log · D database · Esc back · s sort · / filter · p pause · +/- interval · r refresh · ? help · q quit',
  );
  expect(dashboardFooter(true)).toBe(
    '↑/↓ select · Enter detail · l log · D database · Esc back · s sort · / filter · p pause · +/- interval · r refresh · ? help · q quit · d drain · m maint · R ready · S switchover · P promote',
  );
  // In a detail view, only the keys that work there.
  expect(dashboardFooter(true, 'detail')).toBe(
    '↑/↓ PgUp/PgDn g/G scroll · l log · D database · Esc back · p pause · +/- interval · r refresh · ? help · q quit',
  );
  expect([...dashboardHelp(false), ...dashboardHelp(true)].map(([keys]) => keys)).toEqual(DASHBOARD_KEYS.map((row) => row.keys));
  expect(dashboardHelp(true).map(([keys]) => keys)).toEqual(['d', 'm', 'R', 'S', 'P']);
});

test("README's key table is the one the screen and `--help` read", async () => {
  const readme = await fs.readFile(path.join(packageRoot(), 'README.md'), 'utf8');
  const shown = /<!-- dashboard-keys -->\n([\s\S]*?)\n<!-- \/dashboard-keys -->/.exec(readme);
  expect(shown, 'README has the dashboard-keys markers').not.toBeNull();
  expect(shown![1]).toBe(dashboardKeysMarkdown());
});
