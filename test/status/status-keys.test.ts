// The dashboard's one key table (src/screens/keys.ts): the keys it lists are the keys the handler
// obeys, and the footer and the help say the same.
import type { Key } from 'ink';
import { expect, test } from 'vitest';
import { DASHBOARD_KEYS, dashboardCommand, dashboardFooter, dashboardHelp, type DashboardCommand } from '../../src/screens/keys.js';

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
  ['/', {}, 'filter'],
  ['', { escape: true }, 'clear-filter'],
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
  // Every command of the table is reached by some key above.
  expect(new Set(pressed.map(([, , c]) => c))).toEqual(new Set(DASHBOARD_KEYS.flatMap((row) => row.bind.map(([c]) => c))));
});

test('the footer and the help list every row, the admin keys only with --admin', () => {
  expect(dashboardFooter(false)).toBe('↑/↓ select · / filter · p pause · +/- interval · r refresh · ? help · q quit');
  expect(dashboardFooter(true)).toBe(
    '↑/↓ select · / filter · p pause · +/- interval · r refresh · ? help · q quit · d drain · m maint · R ready · S switchover · P promote',
  );
  expect([...dashboardHelp(false), ...dashboardHelp(true)].map(([keys]) => keys)).toEqual(DASHBOARD_KEYS.map((row) => row.keys));
  expect(dashboardHelp(true).map(([keys]) => keys)).toEqual(['d', 'm', 'R', 'S', 'P']);
});
