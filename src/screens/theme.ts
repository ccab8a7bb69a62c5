// Named colours and symbols: screens never use a literal colour, and every state has a symbol or
// word as well, so NO_COLOR and screen readers lose nothing.
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
