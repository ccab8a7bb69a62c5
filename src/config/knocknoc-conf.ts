// knocknoc.conf: plain `Key = value` lines and `#` comments (CONTRACTS.md). Rewriting keeps every
// comment, blank line and key we do not know, in place; known keys are updated where they stand and
// new ones are appended.
import { quoted } from '../shared/printable.js';

export const CONF_KEYS = ['Listen', 'TrustedForwarders', 'DatabaseOption', 'DatabaseURL', 'ServerName'] as const;
export type ConfKey = (typeof CONF_KEYS)[number];

type ConfLine = { kind: 'other'; text: string } | { kind: 'entry'; key: string; value: string; text: string; line: number };

export interface ConfProblem {
  line: number;
  message: string;
}

export class KnocknocConf {
  private readonly lines: ConfLine[];
  /** Lines that are neither comments, blank nor `Key = value`. */
  readonly problems: ConfProblem[];

  private constructor(lines: ConfLine[], problems: ConfProblem[]) {
    this.lines = lines;
    this.problems = problems;
  }

  static parse(text: string): KnocknocConf {
    const lines: ConfLine[] = [];
    const problems: ConfProblem[] = [];
    const raw = text.split('\n');
    if (raw.length > 0 && raw[raw.length - 1] === '') raw.pop();
    raw.forEach((text, i) => {
      const trimmed = text.trim();
      if (trimmed === '' || trimmed.startsWith('#')) {
        lines.push({ kind: 'other', text });
        return;
      }
      const match = /^([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(trimmed);
      if (!match) {
        problems.push({ line: i + 1, message: `not a "Key = value" line: ${quoted(trimmed, 60)}` });
        lines.push({ kind: 'other', text });
        return;
      }
      lines.push({ kind: 'entry', key: match[1]!, value: match[2]!, text, line: i + 1 });
    });
    return new KnocknocConf(lines, problems);
  }

  static empty(): KnocknocConf {
    return new KnocknocConf([], []);
  }

  get(key: string): string | undefined {
    let value: string | undefined;
    for (const line of this.lines) if (line.kind === 'entry' && line.key === key) value = line.value;
    return value;
  }

  /** The line number a key was read from (for --explain). */
  lineOf(key: string): number | undefined {
    let found: number | undefined;
    for (const line of this.lines) if (line.kind === 'entry' && line.key === key) found = line.line;
    return found;
  }

  keys(): string[] {
    return this.lines.flatMap((l) => (l.kind === 'entry' ? [l.key] : []));
  }

  /** A copy with `values` set; keys not mentioned and all comments stay as they are. */
  with(values: Partial<Record<string, string>>): KnocknocConf {
    const lines = this.lines.map((l) => ({ ...l }));
    const pending = new Map(Object.entries(values).filter((e): e is [string, string] => e[1] !== undefined));
    for (const line of lines) {
      if (line.kind !== 'entry' || !pending.has(line.key)) continue;
      line.value = pending.get(line.key)!;
      line.text = `${line.key} = ${line.value}`;
    }
    // Later duplicates win on read, so update every occurrence and append only unknown ones.
    for (const line of lines) if (line.kind === 'entry') pending.delete(line.key);
    for (const [key, value] of pending) lines.push({ kind: 'entry', key, value, text: `${key} = ${value}`, line: 0 });
    return new KnocknocConf(lines, this.problems);
  }

  toString(): string {
    return `${this.lines.map((l) => l.text).join('\n')}\n`;
  }
}

export const CONF_HEADER = [
  '# Knocknoc server configuration, written by knocker.',
  '# Comments and keys knocker does not know are kept when it rewrites this file.',
];

/** A new file with the header comment. */
export function newConf(): KnocknocConf {
  return KnocknocConf.parse(`${CONF_HEADER.join('\n')}\n`);
}
