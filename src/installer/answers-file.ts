// The answers file (YAML or JSON, CONTRACTS.md): read with every problem reported at once, each
// with file:line:column and a "did you mean" for unknown keys; and written back (after an
// interactive run, or for --print-answers) without the database password.
import path from 'node:path';
import { isMap, isPair, isScalar, LineCounter, parseDocument, stringify, visit, type Document, type Node } from 'yaml';
import { z } from 'zod';
import { didYouMean } from '../config/suggest.js';
import { parseListen, parseNodeSpec } from '../config/values.js';
import { nodeSetIssues, type HaproxyAnswers, type HaproxyNode } from '../haproxy/config.js';
import { redactUrl, urlWithoutPassword } from '../postgres/url.js';
import { printableLine, quoted } from '../shared/printable.js';
import { readRegularFileSync } from '../system/files.js';
import { describeSource, FIELDS, FILE_KEY, validateField, type Answers, type Field, type LoadedAnswersFile, type Source } from './answers.js';

const fileSchema = z.strictObject({
  version: z.literal(1, { error: 'version must be 1' }),
  listen: z.string().optional(),
  trustedForwarders: z.union([z.string(), z.array(z.string())]).optional(),
  serverName: z.string().optional(),
  join: z.string().optional(),
  database: z
    .strictObject({
      option: z.union([z.number(), z.string()]),
      url: z.string().optional(),
      urlFile: z.string().optional(),
      ca: z.string().optional(),
    })
    .optional(),
  haproxy: z
    .strictObject({
      bind: z.string(),
      nodes: z.array(z.string()).min(1, { error: 'list at least one node, NAME=HOST:PORT' }),
    })
    .optional(),
});

const KNOWN_KEYS: Record<string, string[]> = {
  '': ['version', 'listen', 'trustedForwarders', 'serverName', 'join', 'database', 'haproxy'],
  database: ['option', 'url', 'urlFile', 'ca'],
  haproxy: ['bind', 'nodes'],
};

/** The types the schema asks for, in the operator's words. */
const TYPE_WORDS: Record<string, string> = {
  array: 'a list',
  object: 'a map of keys and values',
  string: 'a string',
  number: 'a number',
};

class Positions {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  private at(offset: number | undefined): { line: number; col: number } {
    if (offset === undefined) return { line: 1, col: 1 };
    const pos = this.lines.linePos(offset);
    return { line: pos.line, col: pos.col };
  }

  /** Position of the value at `keys`, or of the nearest existing parent. */
  ofValue(keys: (string | number)[]): { line: number; col: number } {
    for (let n = keys.length; n >= 0; n -= 1) {
      const node = this.doc.getIn(keys.slice(0, n), true) as Node | undefined;
      if (node && typeof node === 'object' && 'range' in node && node.range) return this.at(node.range[0]);
    }
    return { line: 1, col: 1 };
  }

  /** Position of the key `key` inside the map at `parent`. */
  ofKey(parent: (string | number)[], key: string): { line: number; col: number } {
    const map = parent.length === 0 ? this.doc.contents : this.doc.getIn(parent, true);
    if (isMap(map)) {
      for (const item of map.items) {
        if (isPair(item) && isScalar(item.key) && String(item.key.value) === key) return this.at(item.key.range?.[0]);
      }
    }
    return this.ofValue(parent);
  }
}

type WellTyped = {
  listen?: string;
  trustedForwarders?: string | string[];
  serverName?: string;
  database?: { option?: string | number; url?: string; urlFile?: string; ca?: string };
  haproxy?: { bind: string; nodes: string[] };
};

/** The parts of the parsed file that have the right types (the others are reported by the schema). */
function wellTyped(data: unknown): WellTyped {
  const record = (v: unknown) => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const texts = (v: unknown) => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined);
  const root = record(data) ?? {};
  const database = record(root.database);
  const haproxy = record(root.haproxy);
  const option = database?.option;
  const bind = text(haproxy?.bind);
  const nodes = texts(haproxy?.nodes);
  return {
    listen: text(root.listen),
    trustedForwarders: text(root.trustedForwarders) ?? texts(root.trustedForwarders),
    serverName: text(root.serverName),
    database: database && {
      option: typeof option === 'number' || typeof option === 'string' ? option : undefined,
      url: text(database.url),
      urlFile: text(database.urlFile),
      ca: text(database.ca),
    },
    haproxy: bind !== undefined && nodes !== undefined ? { bind, nodes } : undefined,
  };
}

/** An answers file is a few hundred bytes; anything near this is not one. */
export const MAX_ANSWERS_BYTES = 1024 * 1024;
/** database.urlFile holds one connection string. */
export const MAX_URL_FILE_BYTES = 64 * 1024;
/** More aliases than an answers file can need: the YAML library stops there (an alias bomb). */
const MAX_ALIASES = 50;

function why(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return printableLine(message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')).slice(0, 200);
}

/** Problems in file order (line, then column). */
function byPosition(problems: string[]): string[] {
  const key = (p: string) => {
    const match = /:(\d+):(\d+): /.exec(p);
    return match ? Number(match[1]) * 100_000 + Number(match[2]) : 0;
  };
  return [...problems].sort((a, b) => key(a) - key(b));
}

/**
 * Reads an answers file. Returns its values with positions, or throws a UsageError-ready list of
 * every problem found (syntax, unknown keys with suggestions, wrong types, invalid values).
 */
export function loadAnswersFile(file: string): { loaded?: LoadedAnswersFile; problems: string[] } {
  const shown = file;
  let text: string;
  try {
    // Never a FIFO, a device (/dev/zero) or a huge file: read at most the cap, without blocking.
    text = readRegularFileSync(file, MAX_ANSWERS_BYTES);
  } catch (error) {
    return { problems: [`${shown}: cannot read the answers file: ${why(error)}`] };
  }
  const lines = new LineCounter();
  // logLevel 'error': the library's own warnings become problems here, never Node warnings on stderr.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, logLevel: 'error' });
  const problems: string[] = [];
  for (const error of [...doc.errors, ...doc.warnings]) {
    const pos = error.linePos?.[0] ?? lines.linePos(error.pos[0]);
    problems.push(`${shown}:${pos.line}:${pos.col}: ${why(error)}`);
  }
  // Keys are plain names: a !!binary or a list as a key is no answer (and JavaScript objects cannot hold it).
  visit(doc, {
    Pair(_key, pair) {
      const key = pair.key;
      if (isScalar(key) && typeof key.value === 'string') return;
      const pos = lines.linePos((key as Node | null)?.range?.[0] ?? 0);
      problems.push(`${shown}:${pos.line}:${pos.col}: a key must be a plain name`);
    },
  });
  if (problems.length > 0) return { problems: byPosition(problems) };
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (error) {
    // The library's limits (an alias bomb) are invalid input, not a failure of knocker.
    return { problems: [`${shown}:1:1: ${why(error)}`] };
  }
  if (data === null || data === undefined) return { problems: [`${shown}:1:1: the answers file is empty (it needs at least "version: 1")`] };
  const positions = new Positions(doc, lines);
  const at = (pos: { line: number; col: number }) => `${shown}:${pos.line}:${pos.col}`;

  const parsed = fileSchema.safeParse(data);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const keys = issue.path.filter((k): k is string | number => typeof k !== 'symbol');
      if (issue.code === 'unrecognized_keys') {
        const known = KNOWN_KEYS[keys.join('.')] ?? [];
        for (const key of issue.keys) {
          const suggestion = didYouMean(key, known);
          const where = keys.length === 0 ? '' : ` in ${keys.join('.')}`;
          problems.push(`${at(positions.ofKey(keys, key))}: unknown key ${quoted(key)}${where}${suggestion ? ` (did you mean "${suggestion}"?)` : ''}`);
        }
        continue;
      }
      const name = keys.length === 0 ? 'the answers file' : keys.join('.');
      const present =
        keys.reduce<unknown>(
          (value, key) => (value === null || typeof value !== 'object' ? undefined : (value as Record<string | number, unknown>)[key]),
          data,
        ) !== undefined;
      let message = issue.message;
      if (!present) message = 'is required';
      else if (issue.code === 'invalid_type') message = `must be ${TYPE_WORDS[issue.expected] ?? `a ${issue.expected}`}`;
      else if (issue.code === 'invalid_union')
        message = name === 'trustedForwarders' ? 'must be a list of CIDRs or one comma-separated string' : 'must be 1, 2 or 3';
      problems.push(`${at(positions.ofValue(keys))}: ${name} ${message}`.replace(`: ${name} ${name} `, `: ${name} `));
    }
  }
  // Values are checked even when the structure has problems (wherever their type is right), so
  // that every problem in the file is reported in one go.
  const answers = wellTyped(data);
  const values: LoadedAnswersFile['values'] = {};
  const take = (field: Field, keys: string[], value: string | string[] | number | undefined) => {
    if (value === undefined) return;
    const pos = positions.ofValue(keys);
    values[field] = { value: typeof value === 'number' ? String(value) : value, ...pos };
  };
  take('listen', ['listen'], answers.listen);
  take('trustedForwarders', ['trustedForwarders'], answers.trustedForwarders);
  take('serverName', ['serverName'], answers.serverName);
  take('databaseOption', ['database', 'option'], answers.database?.option);
  if (answers.database?.url !== undefined && answers.database.urlFile !== undefined) {
    problems.push(`${at(positions.ofKey(['database'], 'urlFile'))}: give database.url or database.urlFile, not both`);
  } else if (answers.database?.urlFile !== undefined) {
    const urlFile = path.resolve(path.dirname(file), answers.database.urlFile);
    try {
      const url = readRegularFileSync(urlFile, MAX_URL_FILE_BYTES).trim();
      values.databaseUrl = { value: url, ...positions.ofValue(['database', 'urlFile']) };
    } catch (error) {
      problems.push(`${at(positions.ofValue(['database', 'urlFile']))}: cannot read database.urlFile ${urlFile}: ${why(error)}`);
    }
  } else {
    take('databaseUrl', ['database', 'url'], answers.database?.url);
  }
  // A CA file is found from the answers file's folder, as database.urlFile is.
  const ca = answers.database?.ca;
  take('databaseCa', ['database', 'ca'], ca === undefined || ca.trim().startsWith('-----BEGIN') ? ca : path.resolve(path.dirname(file), ca.trim()));
  for (const field of FIELDS) {
    const entry = values[field];
    if (!entry) continue;
    const result = validateField(field, entry.value);
    if (!result.ok) problems.push(`${shown}:${entry.line}:${entry.col}: ${FILE_KEY[field]}: ${result.error}`);
  }
  let haproxy: HaproxyAnswers | undefined;
  if (answers.haproxy) {
    const bind = parseListen(answers.haproxy.bind);
    if (!bind.ok) problems.push(`${at(positions.ofValue(['haproxy', 'bind']))}: haproxy.bind: ${bind.error}`);
    const parsed: HaproxyNode[] = [];
    const indexOf: number[] = [];
    answers.haproxy.nodes.forEach((node, i) => {
      const spec = parseNodeSpec(node);
      if (!spec.ok) problems.push(`${at(positions.ofValue(['haproxy', 'nodes', i]))}: haproxy.nodes[${i}]: ${spec.error}`);
      else {
        parsed.push({ ...spec.value, backup: false });
        indexOf.push(i);
      }
    });
    // The set as a whole (two nodes with one name or address), at the node where it shows.
    for (const issue of nodeSetIssues(parsed)) {
      if (issue.node === undefined) continue;
      const i = indexOf[issue.node]!;
      problems.push(`${at(positions.ofValue(['haproxy', 'nodes', i]))}: haproxy.nodes[${i}]: ${issue.message}`);
    }
    haproxy = { bind: answers.haproxy.bind, nodes: answers.haproxy.nodes };
  }
  // A join token (knocker exposedb --invite): checked when it is used; never echoed (it holds a secret).
  const join = typeof (data as Record<string, unknown>).join === 'string' ? ((data as Record<string, unknown>).join as string) : undefined;
  if (problems.length > 0) return { problems: byPosition(problems) };
  return { loaded: { file: shown, values, haproxy, ...(join !== undefined ? { join } : {}) }, problems };
}

export interface AnswersYamlOptions {
  /** How the password of the connection string is shown: redacted (****) or left out. */
  password: 'redact' | 'omit';
  /** Comments naming where each value came from (--print-answers --explain). */
  sources?: Partial<Record<Field, Source>>;
  header?: string[];
}

/** The answers as an answers file (version 1), never with the database password. */
export function answersToYaml(answers: Answers, options: AnswersYamlOptions): string {
  const url =
    answers.databaseUrl === undefined ? undefined : options.password === 'redact' ? redactUrl(answers.databaseUrl) : urlWithoutPassword(answers.databaseUrl);
  const data: Record<string, unknown> = {
    version: 1,
    listen: answers.listen,
    trustedForwarders: answers.trustedForwarders,
    serverName: answers.serverName,
    database: {
      option: answers.databaseOption,
      ...(url !== undefined ? { url } : {}),
      ...(answers.databaseCa !== undefined ? { ca: answers.databaseCa } : {}),
    },
    ...(answers.haproxy ? { haproxy: answers.haproxy } : {}),
  };
  let text = stringify(data, { lineWidth: 0 });
  if (options.sources) {
    const comment = (field: Field) => (options.sources![field] ? `  # ${describeSource(options.sources![field]!)}` : '');
    text = text
      .split('\n')
      .map((line) => {
        const key = /^(\s*)(listen|trustedForwarders|serverName|option|url|ca):/.exec(line)?.[2];
        const field: Field | undefined =
          key === 'option' ? 'databaseOption' : key === 'url' ? 'databaseUrl' : key === 'ca' ? 'databaseCa' : (key as Field | undefined);
        return field ? line + comment(field) : line;
      })
      .join('\n');
  }
  const notes: string[] = [...(options.header ?? [])];
  if (url !== undefined) {
    notes.push(
      options.password === 'redact'
        ? 'The database password is shown as ****; give the real one with --database-url, KNOCKNOC_DATABASE_URL or database.urlFile.'
        : 'The database password is not stored here; give it with --database-url, KNOCKNOC_DATABASE_URL or database.urlFile.',
    );
  }
  return notes.map((n) => `# ${n}\n`).join('') + text;
}
