// Text from outside knocker (the database's registry, HAProxy, HTTP answers, files, argv) shown on
// a terminal or written to a log: its control characters are escaped, so that they are seen and
// never obeyed (an ESC or BEL in a server's name cannot clear or retitle an operator's terminal),
// and a value echoed in a message is cut to a length a screen can take.

// C0 controls but tab and line feed, DEL, C1 controls (0x9B is a CSI on some terminals), and the
// bidirectional overrides that make text read differently from what it is, and the Unicode line and
// paragraph separators (a line break to some readers of a log).
const CONTROL = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u2028-\u202E\u2066-\u2069]/g;
const CONTROL_OR_BREAK = /[\u0000-\u001F\u007F-\u009F\u2028-\u202E\u2066-\u2069]/g;

function escapeChar(char: string): string {
  const code = char.codePointAt(0)!;
  if (char === '\n') return '\\n';
  if (char === '\t') return '\\t';
  return code <= 0xff ? `\\x${code.toString(16).toUpperCase().padStart(2, '0')}` : `\\u${code.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** The text with its control characters written out (`\x1B`); line breaks and tabs are kept. */
export function printable(text: string): string {
  return text.replace(CONTROL, escapeChar);
}

/** One line: line breaks and tabs are written out too. */
export function printableLine(text: string): string {
  return text.replace(CONTROL_OR_BREAK, escapeChar);
}

/** Whether the text holds anything `printableLine` would write out. */
export function hasControl(text: string): boolean {
  return new RegExp(CONTROL_OR_BREAK.source).test(text);
}

/** The longest stretch of a value echoed in a message. */
export const ECHO_LIMIT = 80;

/** A value for a message: in quotes, on one line, and cut when long ("…" and its length follow). */
export function quoted(value: string, limit = ECHO_LIMIT): string {
  const head = [...value.slice(0, limit * 2)];
  if (head.length <= limit && value.length <= limit * 2) return `"${printableLine(value)}"`;
  return `"${printableLine(head.slice(0, limit).join(''))}…" (${value.length.toLocaleString('en')} characters)`;
}

/**
 * A copy of plain data (a dashboard snapshot, an upgrade journal) with every string printable,
 * for screens that draw outside text. Dates and other objects that are not plain are kept.
 * `oneLine`: line breaks are written out too, for views where each value has one line (a table
 * row): a name holding a newline never splits its row or forges another.
 */
export function printableData<T>(value: T, oneLine = false): T {
  if (typeof value === 'string') return (oneLine ? printableLine(value) : printable(value)) as T;
  if (Array.isArray(value)) return value.map((v) => printableData(v, oneLine)) as T;
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [k, printableData(v, oneLine)])) as T;
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, printableData(v, oneLine)])) as T;
  }
  return value;
}
