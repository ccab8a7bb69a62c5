// The organisation's upgrade command (`--upgrade-command`), run once per server. It is split into
// words the way a shell would split it (quotes group, a backslash escapes), but no shell ever runs
// it: no variables, globs, pipes or redirections, and `{name}`, `{host}` and `{port}` are filled in
// inside each word, so a server's name can never become part of another argument or a command.
// Wanting a shell is explicit: `--upgrade-command "sh -c '…'"`.
import { execa } from 'execa';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import { UsageError } from '../errors.js';
import { isAlive } from '../system/lock.js';
import type { Logger } from '../system/log.js';

export const PLACEHOLDERS = ['name', 'host', 'port'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];

/** Splits a command line into words: '…' literal, "…" with \" and \\ escapes, \x outside quotes. */
export function splitWords(text: string): { ok: true; words: string[] } | { ok: false; error: string } {
  const words: string[] = [];
  let word: string | undefined;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
      i += 1;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) return { ok: false, error: `an unclosed ' at column ${i + 1}` };
      word = (word ?? '') + text.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      let j = i + 1;
      let part = '';
      while (j < text.length && text[j] !== '"') {
        if (text[j] === '\\' && (text[j + 1] === '"' || text[j + 1] === '\\')) {
          part += text[j + 1];
          j += 2;
        } else {
          part += text[j];
          j += 1;
        }
      }
      if (j >= text.length) return { ok: false, error: `an unclosed " at column ${i + 1}` };
      word = (word ?? '') + part;
      i = j + 1;
    } else if (c === '\\') {
      if (i + 1 >= text.length) return { ok: false, error: 'a \\ at the end escapes nothing' };
      word = (word ?? '') + text[i + 1];
      i += 2;
    } else {
      word = (word ?? '') + c;
      i += 1;
    }
  }
  if (word !== undefined) words.push(word);
  return { ok: true, words };
}

export interface UpgradeCommand {
  /** As the operator wrote it. */
  text: string;
  words: string[];
}

/** Checks the template: words, a program, only known placeholders. Throws UsageError. */
export function parseUpgradeCommand(text: string): UpgradeCommand {
  const split = splitWords(text);
  if (!split.ok) throw new UsageError(`--upgrade-command: ${split.error}; nothing was changed`);
  if (split.words.length === 0)
    throw new UsageError('--upgrade-command is empty: give the command that upgrades one server, e.g. "ssh root@{host} apt-get install -y knocknoc"');
  const unknown = new Set<string>();
  for (const word of split.words) {
    for (const match of word.matchAll(/\{(\w*)\}/g)) if (!(PLACEHOLDERS as readonly string[]).includes(match[1]!)) unknown.add(match[0]);
  }
  if (unknown.size > 0) {
    throw new UsageError(`--upgrade-command: unknown placeholder${unknown.size === 1 ? '' : 's'} ${[...unknown].join(', ')}; nothing was changed`, [
      `the command may use ${PLACEHOLDERS.map((p) => `{${p}}`).join(', ')}`,
    ]);
  }
  return { text, words: split.words };
}

export interface Target {
  name: string;
  host: string;
  port: number;
}

/** The argv for one server. */
export function commandFor(command: UpgradeCommand, target: Target): string[] {
  const values: Record<Placeholder, string> = { name: target.name, host: target.host, port: String(target.port) };
  return command.words.map((w) => w.replace(/\{(name|host|port)\}/g, (_all, key: Placeholder) => values[key]));
}

const SECRET_NAME = /pass(word|wd)?|secret|token|api[-_]?key|auth|credential|private[-_]?key/i;
const MASK = '****';
/** Words that name an Authorization scheme: the credentials follow them. */
const AUTH_SCHEME = /^(bearer|basic|token|digest|negotiate|bot|apikey|jwt|hoba|mutual|aws4-hmac-sha256)$/i;

function authorizationCredentials(tail: string, next: string[]): string[] {
  const inWord = tail
    .trim()
    .split(/\s+/)
    .filter((w) => w !== '');
  if (inWord.length >= 2) return [AUTH_SCHEME.test(inWord[0]!) ? inWord.slice(1).join(' ') : inWord.join(' ')];
  if (inWord.length === 1 && !AUTH_SCHEME.test(inWord[0]!)) return [inWord[0]!];
  // The scheme alone, or nothing: the credentials are the next word (after the scheme, if it is one).
  const after = inWord.length === 1 ? next : AUTH_SCHEME.test(next[0] ?? '') ? next.slice(1) : next;
  return after[0] !== undefined ? [after[0]] : [];
}

/**
 * What in a command's words looks like a secret, to be masked wherever the command is shown or
 * logged: the value of NAME=VALUE and --name=VALUE, and the word after --name, where the name
 * says secret (token, password, api-key, …); an Authorization header's credentials, whether the
 * header is one word (quoted) or several (`-H Authorization: Bearer X`); the password of a
 * scheme://user:password@ address.
 */
export function secretsIn(words: string[]): string[] {
  const found: string[] = [];
  for (const [i, word] of words.entries()) {
    const assignment = /^(-{0,2}[A-Za-z0-9_.-]+)=(.+)$/s.exec(word);
    if (assignment && SECRET_NAME.test(assignment[1]!)) found.push(assignment[2]!);
    // The next word is its value, even one starting with "-" (tokens may); only a long option after it is not.
    const next = words[i + 1];
    if (/^--?[A-Za-z0-9_-]+$/.test(word) && SECRET_NAME.test(word) && next !== undefined && !/^--[A-Za-z][A-Za-z0-9-]*$/.test(next)) found.push(next);
    const header = /authorization\s*:\s*(.*)$/is.exec(word);
    if (header) found.push(...authorizationCredentials(header[1]!, words.slice(i + 1)));
    // Up to the last "@" of the word: a token with a "/" in it, written raw, is still masked whole.
    for (const url of word.matchAll(/[a-z][a-z0-9+.-]*:\/\/[^:/?#@\\\s]*:(\S*)@/gi)) found.push(url[1]!);
  }
  return [...new Set(found.map((f) => f.trim()).filter((f) => f !== '' && f !== MASK && !AUTH_SCHEME.test(f)))];
}

/** An argv shown to the operator: secrets masked, words quoted where a shell would need it. */
export function showArgv(argv: string[], secrets: string[] = secretsIn(argv)): string {
  return argv
    .map((word) => secrets.reduce((w, secret) => w.split(secret).join(MASK), word))
    .map((a) => (/^[A-Za-z0-9_./:=@+,%*-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

/**
 * The command as the journal keeps it: its words with any secret masked (a file whose job is not
 * to hold a token never holds one), quoted so that it splits back into the same words.
 */
export function recordableCommand(command: UpgradeCommand): { text: string; masked: boolean } {
  const secrets = secretsIn(command.words);
  return { text: showArgv(command.words, secrets), masked: secrets.length > 0 };
}

export class UpgradeCommandFailed extends Error {}

const MARKER_ENV = 'KNOCKNOC_UPGRADE_MARKER';

/** A new marker for one command run. */
export function newMarker(): string {
  return randomUUID();
}

/**
 * The pid of a live process carrying this marker in its environment (an upgrade command of a run
 * that was cut off, or one of its children), if any. Only the processes this user may read.
 */
export async function findUpgradeCommand(marker: string): Promise<number | undefined> {
  const wanted = Buffer.from(`${MARKER_ENV}=${marker}\0`);
  for (const entry of await fs.readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const environ = await fs.readFile(`/proc/${entry}/environ`).catch(() => undefined);
    if (environ?.includes(wanted) && isAlive(pid)) return pid;
  }
  return undefined;
}

export interface RunCommandOptions {
  log: Logger;
  /** Each line the command prints (stdout and stderr), as it comes. */
  onLine?: (line: string) => void;
  timeoutMs: number;
  /** Environment added for the command: KNOCKNOC_UPGRADE_SERVER and _HOST. */
  target: Target;
  /** In the command's environment as KNOCKNOC_UPGRADE_MARKER: found there by a later run (see findUpgradeCommand). */
  marker?: string;
  /** Told the command's pid once it runs (the journal keeps it: the command outlives a killed knocker). */
  onStart?: (pid: number) => Promise<void>;
}

/** Runs the command for one server; resolves with its last lines, throws UpgradeCommandFailed. */
export async function runUpgradeCommand(argv: string[], options: RunCommandOptions): Promise<string[]> {
  const [program, ...args] = argv as [string, ...string[]];
  const { log } = options;
  // Masked in the log, and in what the command prints (it may echo them).
  for (const secret of secretsIn(argv)) log.addSecret(secret);
  log.info(`upgrade command for ${options.target.name}: ${showArgv(argv)}`);
  const tail: string[] = [];
  const started = Date.now();
  const child = execa(program, args, {
    // Its own session: a Ctrl-C or a hang-up meant for knocker never cuts a package install short
    // (knocker stops after the command instead).
    detached: true,
    stdin: 'ignore',
    all: true,
    reject: false,
    timeout: options.timeoutMs,
    env: {
      KNOCKNOC_UPGRADE_SERVER: options.target.name,
      KNOCKNOC_UPGRADE_HOST: options.target.host,
      KNOCKNOC_UPGRADE_PORT: String(options.target.port),
      ...(options.marker ? { [MARKER_ENV]: options.marker } : {}),
    },
  });
  let pending = '';
  const take = (line: string) => {
    const clean = log.scrub(line.replace(/\r$/, ''));
    log.info(`  ${options.target.name}| ${clean}`);
    tail.push(clean);
    if (tail.length > 20) tail.shift();
    options.onLine?.(clean);
  };
  child.all?.setEncoding('utf8');
  child.all?.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) take(line);
  });
  // After the output is listened to: execa reads it from the start, a listener added later would miss lines.
  if (child.pid !== undefined) await options.onStart?.(child.pid);
  const result = await child;
  if (pending !== '') take(pending);
  const ms = Date.now() - started;
  log.info(`upgrade command for ${options.target.name}: exit ${result.exitCode ?? 'none'} after ${ms} ms`);
  if (result.failed) {
    const why = result.timedOut
      ? `did not finish within ${Math.round(options.timeoutMs / 1000)} s (stopped)`
      : result.exitCode === undefined
        ? `could not start: ${result.shortMessage}`
        : `failed with exit code ${result.exitCode}`;
    const last = tail.slice(-6);
    throw new UpgradeCommandFailed(
      `the upgrade command for ${options.target.name} ${why}${last.length > 0 ? `; its last output:\n${last.map((l) => `    ${l}`).join('\n')}` : ''}`,
    );
  }
  return tail;
}
