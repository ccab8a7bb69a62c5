// Named colours and symbols: screens never use a literal colour, and every state has a symbol or
// word as well, so NO_COLOR and screen readers lose nothing.
import chalk from 'chalk';

/**
 * No colour from here on (NO_COLOR, --no-color: decided by src/cli.ts): every screen draws through
 * Ink, and Ink through this one chalk, so nothing it draws carries an escape sequence.
 */
export function turnColourOff(): void {
  chalk.level = 0;
}
export const theme = {
  accent: 'cyan',
  ok: 'green',
  warn: 'yellow',
  error: 'red',
  muted: 'gray',
  added: 'green',
  removed: 'red',
} as const;

export const symbols = {
  ok: '✔',
  fail: '✗',
  running: '▸',
  pending: '·',
  undone: '↺',
  unchanged: '=',
  change: '+',
  pointer: '❯',
} as const;
