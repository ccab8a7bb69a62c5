// The installer's answers: resolving every value from flags > environment > answers file >
// existing knocknoc.conf > default, remembering where each came from (--explain). Reading and
// writing the answers file itself is in answers-file.ts (it needs a YAML parser and a schema
// validator, loaded only when a file is involved).
import type { KnocknocConf } from '../config/knocknoc-conf.js';
import {
  DEFAULTS,
  parseDatabaseOption,
  parseListen,
  parseServerName,
  parseTrustedForwarders,
  formatListen,
  serverNameFromHostname,
  type DatabaseOption,
  type Parsed,
} from '../config/values.js';
import path from 'node:path';
import type { HaproxyAnswers } from '../haproxy/config.js';
import { parseDatabaseUrl } from '../postgres/url.js';

export interface Answers {
  listen: string;
  trustedForwarders: string[];
  serverName: string;
  databaseOption: DatabaseOption;
  /** Options 2 and 3 only. */
  databaseUrl?: string;
  /** Options 2 and 3: the CA that verifies the database's certificate, a file (absolute path) or PEM text. */
  databaseCa?: string;
  haproxy?: HaproxyAnswers;
}

export type Field = 'listen' | 'trustedForwarders' | 'serverName' | 'databaseOption' | 'databaseUrl' | 'databaseCa';
export const FIELDS: Field[] = ['listen', 'trustedForwarders', 'databaseOption', 'databaseUrl', 'databaseCa', 'serverName'];

/** The key an operator writes for a field in the answers file. */
export const FILE_KEY: Record<Field, string> = {
  listen: 'listen',
  trustedForwarders: 'trustedForwarders',
  serverName: 'serverName',
  databaseOption: 'database.option',
  databaseUrl: 'database.url',
  databaseCa: 'database.ca',
};
export const FLAG: Record<Field, string> = {
  listen: '--listen',
  trustedForwarders: '--trusted-forwarders',
  serverName: '--server-name',
  databaseOption: '--database-option',
  databaseUrl: '--database-url',
  databaseCa: '--database-ca',
};
export const ENV: Record<Field, string> = {
  listen: 'KNOCKNOC_LISTEN',
  trustedForwarders: 'KNOCKNOC_TRUSTED_FORWARDERS',
  serverName: 'KNOCKNOC_SERVER_NAME',
  databaseOption: 'KNOCKNOC_DATABASE_OPTION',
  databaseUrl: 'KNOCKNOC_DATABASE_URL',
  databaseCa: 'KNOCKNOC_DATABASE_CA',
};
/** knocknoc.conf's key for a field (the CA has none: DatabaseURL's sslrootcert names knocker's copy of it). */
const CONF_KEY: Partial<Record<Field, string>> = {
  listen: 'Listen',
  trustedForwarders: 'TrustedForwarders',
  serverName: 'ServerName',
  databaseOption: 'DatabaseOption',
  databaseUrl: 'DatabaseURL',
};

export type Source =
  | { kind: 'flag'; name: string }
  | { kind: 'env'; name: string }
  | { kind: 'file'; file: string; line: number; col: number }
  | { kind: 'conf'; file: string; line: number }
  | { kind: 'default'; note?: string }
  | { kind: 'answered' }
  | { kind: 'join'; id: string };

export function describeSource(source: Source): string {
  switch (source.kind) {
    case 'flag':
      return `flag ${source.name}`;
    case 'env':
      return `environment ${source.name}`;
    case 'file':
      return `answers file ${source.file}:${source.line}:${source.col}`;
    case 'conf':
      return `existing ${source.file}:${source.line}`;
    case 'default':
      return source.note ? `default (${source.note})` : 'default';
    case 'answered':
      return 'answered interactively';
    case 'join':
      return `join invitation ${source.id} (knocker install --join)`;
  }
}

export interface FileValue<T> {
  value: T;
  line: number;
  col: number;
}

export interface LoadedAnswersFile {
  file: string;
  values: Partial<{ [F in Field]: FileValue<string | string[]> }>;
  haproxy?: HaproxyAnswers;
  /** `join:` a join token (it holds a secret). */
  join?: string;
}

/** The longest value any answer can need (a connection string with a long password, many CIDRs). */
export const MAX_ANSWER_LENGTH = 8192;

/** Validates and normalises one field's raw value. */
export function validateField(field: Field, raw: string | string[]): Parsed<string | string[] | number> {
  const text = Array.isArray(raw) ? raw.join(',') : raw;
  // Checked before parsing, and never echoed: a huge value costs nothing and fills no screen.
  if (text.length > MAX_ANSWER_LENGTH) {
    return {
      ok: false,
      error: `the value is ${text.length.toLocaleString('en')} characters long; at most ${MAX_ANSWER_LENGTH.toLocaleString('en')} are taken`,
    };
  }
  switch (field) {
    case 'listen': {
      const parsed = parseListen(text);
      return parsed.ok ? { ok: true, value: formatListen(parsed.value) } : parsed;
    }
    case 'trustedForwarders':
      return parseTrustedForwarders(raw);
    case 'serverName':
      return parseServerName(text);
    case 'databaseOption':
      return parseDatabaseOption(text);
    case 'databaseUrl': {
      const parsed = parseDatabaseUrl(text);
      return parsed.ok ? { ok: true, value: text.trim() } : parsed;
    }
    case 'databaseCa':
      return parseCaSource(text);
  }
}

/** The CA: PEM text as it is, or a file (made absolute; it is read, and checked, by the preflight). */
function parseCaSource(text: string): Parsed<string> {
  const value = text.trim();
  if (value === '') return { ok: false, error: 'give the file of the CA certificate that verifies the database server (PEM)' };
  if (value.startsWith('-----BEGIN')) {
    // Only the PEM markers here: the certificate itself is read (node:crypto, not needed for the
    // first screen) and verified against the database by the preflight, before anything is changed.
    if (!/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.test(value)) {
      return { ok: false, error: 'the CA given holds no PEM certificate (-----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----)' };
    }
    return { ok: true, value: `${value}\n` };
  }
  if (value.includes('\0') || value.includes('\n')) return { ok: false, error: 'not a file name, nor a PEM certificate' };
  return { ok: true, value: path.resolve(value) };
}

// ---------------------------------------------------------------------------------------------
// Resolution

export interface ResolveInputs {
  flags: Partial<Record<Field, string>>;
  env: Partial<Record<Field, string>>;
  answersFile?: LoadedAnswersFile;
  conf?: { conf: KnocknocConf; file: string };
  hostname: string;
  /** What a redeemed join invitation gave: the database answers (nothing else may give them), and a default name. */
  joined?: JoinedAnswers;
}

export interface JoinedAnswers {
  id: string;
  databaseUrl: string;
  databaseCa: string;
  serverName?: string;
}

const JOIN_FIELDS: Field[] = ['databaseOption', 'databaseUrl', 'databaseCa'];
/** The answers-file keys of the answers a join gives (a problem with one of them names it first). */
export const JOIN_FILE_KEYS = JOIN_FIELDS.map((f) => FILE_KEY[f]);

export interface Resolved<T> {
  value: T;
  source: Source;
}

export interface Resolution {
  /** Every field that has a value, with where it came from. */
  values: Partial<{ [F in Field]: Resolved<F extends 'trustedForwarders' ? string[] : F extends 'databaseOption' ? DatabaseOption : string> }>;
  haproxy?: Resolved<HaproxyAnswers>;
  /** Invalid values from flags, environment or knocknoc.conf. */
  problems: string[];
  /** Answers that are required and have no value. */
  missing: string[];
}

function describeOrigin(field: Field, source: Source): string {
  switch (source.kind) {
    case 'flag':
      return FLAG[field];
    case 'env':
      return ENV[field];
    case 'conf':
      return `${source.file}:${source.line} (${CONF_KEY[field] ?? FILE_KEY[field]})`;
    case 'file':
      return `${source.file}:${source.line}:${source.col}`;
    default:
      return FILE_KEY[field];
  }
}

/** Resolves every answer by precedence: flag > environment > answers file > knocknoc.conf > default. */
export function resolveAnswers(inputs: ResolveInputs): Resolution {
  const resolution: Resolution = { values: {}, problems: [], missing: [] };
  if (inputs.joined) {
    // The invitation gives the database; an answer for it from elsewhere is a mistake, not a preference.
    for (const field of JOIN_FIELDS) {
      const given = [inputs.flags[field], inputs.env[field], inputs.answersFile?.values[field]].some((v) => v !== undefined && v !== '');
      if (given) resolution.problems.push(`${FILE_KEY[field]}: --join gives the database; leave out ${FLAG[field]}, ${ENV[field]} and ${FILE_KEY[field]}`);
    }
  }
  const candidates = (field: Field): Array<{ raw: string | string[]; source: Source }> => {
    const list: Array<{ raw: string | string[]; source: Source }> = [];
    const joined = inputs.joined;
    if (joined && JOIN_FIELDS.includes(field)) {
      const raw = field === 'databaseOption' ? '3' : field === 'databaseUrl' ? joined.databaseUrl : joined.databaseCa;
      return [{ raw, source: { kind: 'join', id: joined.id } }];
    }
    const flag = inputs.flags[field];
    if (flag !== undefined) list.push({ raw: flag, source: { kind: 'flag', name: FLAG[field] } });
    const env = inputs.env[field];
    if (env !== undefined && env !== '') list.push({ raw: env, source: { kind: 'env', name: ENV[field] } });
    const fromFile = inputs.answersFile?.values[field];
    if (fromFile) list.push({ raw: fromFile.value, source: { kind: 'file', file: inputs.answersFile!.file, line: fromFile.line, col: fromFile.col } });
    if (field === 'serverName' && joined?.serverName) list.push({ raw: joined.serverName, source: { kind: 'join', id: joined.id } });
    const conf = inputs.conf;
    const confKey = CONF_KEY[field];
    const confValue = confKey === undefined ? undefined : conf?.conf.get(confKey);
    if (conf && confKey && confValue !== undefined && confValue !== '') {
      list.push({ raw: confValue, source: { kind: 'conf', file: conf.file, line: conf.conf.lineOf(confKey) ?? 0 } });
    }
    return list;
  };
  const set = (field: Field, value: unknown, source: Source) => {
    (resolution.values as Record<string, Resolved<unknown>>)[field] = { value, source };
  };
  const resolveField = (field: Field, allowed: (source: Source) => boolean = () => true): boolean => {
    const first = candidates(field).find((c) => allowed(c.source));
    if (!first) return false;
    const result = validateField(field, first.raw);
    if (!result.ok) {
      // Answers-file values were already checked with their positions.
      if (first.source.kind !== 'file') resolution.problems.push(`${describeOrigin(field, first.source)}: ${result.error}`);
      return true;
    }
    set(field, result.value, first.source);
    return true;
  };

  if (!resolveField('listen')) set('listen', DEFAULTS.listen, { kind: 'default' });
  if (!resolveField('trustedForwarders')) set('trustedForwarders', DEFAULTS.trustedForwarders, { kind: 'default' });
  if (!resolveField('serverName')) set('serverName', serverNameFromHostname(inputs.hostname), { kind: 'default', note: 'the host name' });
  if (!resolveField('databaseOption')) set('databaseOption', DEFAULTS.databaseOption, { kind: 'default' });

  const option = resolution.values.databaseOption?.value;
  const confOption = inputs.conf?.conf.get('DatabaseOption');
  // knocknoc.conf's DatabaseURL only counts for the option it was written for.
  const fromSameOption = (source: Source) => source.kind !== 'conf' || confOption === String(option);
  if (option === 1) {
    for (const field of ['databaseUrl', 'databaseCa'] as const) {
      const given = candidates(field).find((c) => c.source.kind !== 'conf');
      if (given) {
        resolution.problems.push(
          `${describeOrigin(field, given.source)}: ${field === 'databaseUrl' ? 'a connection string' : 'a CA certificate'} was given, but option 1 creates its own local database; remove it or choose option 2 or 3`,
        );
      }
    }
  } else if (option !== undefined && !resolveField('databaseUrl', fromSameOption)) {
    resolution.missing.push(
      `database.url: the connection string for option ${option} (${FLAG.databaseUrl}, ${ENV.databaseUrl}, or database.url / database.urlFile in the answers file)`,
    );
  }
  if (option !== undefined && option !== 1) resolveField('databaseCa');
  if (inputs.answersFile?.haproxy) {
    resolution.haproxy = { value: inputs.answersFile.haproxy, source: { kind: 'file', file: inputs.answersFile.file, line: 0, col: 0 } };
  }
  return resolution;
}

/** The complete answers, once there are no problems and nothing is missing. */
export function answersFrom(resolution: Resolution): Answers {
  const v = resolution.values;
  return {
    listen: v.listen!.value,
    trustedForwarders: v.trustedForwarders!.value,
    serverName: v.serverName!.value,
    databaseOption: v.databaseOption!.value,
    ...(v.databaseUrl && v.databaseOption!.value !== 1 ? { databaseUrl: v.databaseUrl.value } : {}),
    ...(v.databaseCa && v.databaseOption!.value !== 1 ? { databaseCa: v.databaseCa.value } : {}),
    ...(resolution.haproxy ? { haproxy: resolution.haproxy.value } : {}),
  };
}
