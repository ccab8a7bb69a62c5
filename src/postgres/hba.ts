// pg_hba.conf: knocker only ever edits its own managed blocks, delimited by BEGIN/END comment
// lines, and leaves every other byte of the file as it was. A new block goes before the first rule
// (first match wins). Candidate files are validated with pg_hba_file_rules before a reload.
import { writeFileAtomic } from '../system/files.js';
import type { AdminSession } from './admin.js';

export function blockMarkers(name: string): { begin: string; end: string } {
  return {
    begin: `# BEGIN ${name} managed block (do not edit by hand)`,
    end: `# END ${name} managed block`,
  };
}

export interface ManagedBlock {
  /** The rule lines inside the block (comments excluded). */
  rules: string[];
  /** The block's text exactly as in the file, markers included. */
  text: string;
}

/** The managed block called `name`, if the file has one. Throws if its markers are damaged. */
export function readManagedBlock(fileText: string, name: string): ManagedBlock | undefined {
  const { begin, end } = blockMarkers(name);
  const lines = fileText.split('\n');
  const start = lines.indexOf(begin);
  const stop = lines.indexOf(end);
  if (start < 0 && stop < 0) return undefined;
  if (start < 0 || stop < start || lines.indexOf(begin, start + 1) >= 0 || lines.indexOf(end, stop + 1) >= 0) {
    throw new Error(`the ${name} managed block in pg_hba.conf is damaged (its BEGIN/END lines are missing or repeated); fix it by hand`);
  }
  const inner = lines.slice(start + 1, stop);
  return {
    rules: inner.filter((l) => l.trim() !== '' && !l.trim().startsWith('#')),
    text: lines.slice(start, stop + 1).join('\n'),
  };
}

export function renderManagedBlock(name: string, body: string[]): string {
  const { begin, end } = blockMarkers(name);
  return [begin, ...body, end].join('\n');
}

const ANY_BLOCK_BEGIN = /^# BEGIN .+ managed block \(do not edit by hand\)$/;

/**
 * The file with the block replaced, or inserted when absent before the first rule line, or before
 * another managed block that comes first (never inside it: the installer and exposedb each have one).
 */
export function withManagedBlock(fileText: string, name: string, body: string[]): string {
  const block = renderManagedBlock(name, body);
  const existing = readManagedBlock(fileText, name);
  if (existing) return fileText.replace(existing.text, block);
  const lines = fileText.split('\n');
  const firstRule = lines.findIndex((l) => ANY_BLOCK_BEGIN.test(l) || (l.trim() !== '' && !l.trim().startsWith('#')));
  const at = firstRule < 0 ? lines.length : firstRule;
  return [...lines.slice(0, at), block, '', ...lines.slice(at)].join('\n');
}

export interface HbaError {
  line: number;
  error: string;
}

/** Errors PostgreSQL finds in the pg_hba.conf on disk now (superuser only). */
export async function hbaErrors(session: AdminSession): Promise<HbaError[]> {
  const result = await session.query<{ line_number: number; error: string }>(
    'SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL ORDER BY line_number',
  );
  return result.rows.map((r) => ({ line: r.line_number, error: r.error }));
}

/** Asks the server to re-read its configuration. (It returns true even for a broken file: validate first.) */
export async function reloadConfig(session: AdminSession): Promise<void> {
  await session.query('SELECT pg_reload_conf()');
}

const HBA_KEYWORDS = new Set(['all', 'sameuser', 'samerole', 'samegroup', 'replication']);

/**
 * A database or role name as a pg_hba.conf field: bare when it is a plain word, else in double
 * quotes (so a keyword like `all`, a leading `+`/`@` or a comma loses its special meaning).
 * pg_hba.conf cannot hold a double quote or a line break inside a name: such names are refused.
 */
export function hbaName(name: string): string {
  if (/["\r\n\0]/.test(name)) throw new Error(`the name ${JSON.stringify(name)} cannot be written into pg_hba.conf (it holds a double quote or a line break)`);
  return /^[A-Za-z0-9_][A-Za-z0-9_.$-]*$/.test(name) && !HBA_KEYWORDS.has(name) ? name : `"${name}"`;
}

/** The fields of one pg_hba.conf line, quotes kept, comment dropped (PostgreSQL's own tokenising). */
export function hbaFields(line: string): string[] {
  const fields: string[] = [];
  let current = '';
  let quoted = false;
  for (const char of line) {
    if (char === '"') quoted = !quoted;
    if (!quoted && char === '#') break;
    if (!quoted && /\s/.test(char)) {
      if (current !== '') fields.push(current);
      current = '';
      continue;
    }
    current += char;
  }
  if (current !== '') fields.push(current);
  return fields;
}

export class HbaRejectedError extends Error {
  readonly errors: HbaError[];
  constructor(file: string, errors: HbaError[]) {
    super(
      `PostgreSQL rejects the new ${file} (${errors.map((e) => `line ${e.line}: ${e.error}`).join('; ')}); ` +
        'the previous file was put back and the server keeps its current rules',
    );
    this.errors = errors;
  }
}

/**
 * Replaces pg_hba.conf (atomically, keeping `<file>.bak`), has PostgreSQL check the new file, and
 * reloads only when it has no errors. On any failure the previous text is put back before the
 * error is thrown, so the file on disk always matches rules the server accepts.
 */
export async function replaceHbaFile(session: AdminSession, file: string, previous: string, next: string): Promise<void> {
  await writeFileAtomic(file, next);
  try {
    const errors = await hbaErrors(session);
    if (errors.length > 0) throw new HbaRejectedError(file, errors);
    await reloadConfig(session);
  } catch (error) {
    await writeFileAtomic(file, previous, { backup: false });
    throw error;
  }
}
