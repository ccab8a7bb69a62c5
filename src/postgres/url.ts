// PostgreSQL connection strings (postgres:// and postgresql:// URIs): parsing with clear errors,
// building with percent-encoding, and redaction so a password is never shown.
import type { Parsed } from '../config/values.js';
import { quoted } from '../shared/printable.js';

export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** Query parameters we understand; anything else is refused rather than silently ignored. */
const KNOWN_PARAMS = new Set(['sslmode', 'sslrootcert', 'connect_timeout', 'application_name', 'uselibpqcompat', 'target_session_attrs']);

/** libpq's target_session_attrs: which of the listed servers a connection may settle on. */
export const TARGET_SESSION_ATTRS = ['any', 'read-write', 'read-only', 'primary', 'standby', 'prefer-standby'] as const;
export type TargetSessionAttrs = (typeof TARGET_SESSION_ATTRS)[number];

/** One server of a connection string's host list. */
export interface HostPort {
  host: string;
  port: number;
}

export interface DatabaseUrl {
  /** The first host of the list (the only one, usually). */
  host: string;
  port: number;
  /** Every host of the list, in the order they are tried (libpq's multi-host form `h1:p1,h2:p2`). */
  hosts: HostPort[];
  targetSessionAttrs: TargetSessionAttrs;
  user: string;
  password: string | undefined;
  database: string;
  sslmode: SslMode;
  sslrootcert: string | undefined;
  connectTimeoutSeconds: number | undefined;
  applicationName: string | undefined;
}

function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new Error(`the ${what} has a bad percent-encoding`);
  }
}

/**
 * A postgres:// text cut where the one parser reads it (indexes into `text` as given): the scheme,
 * the authority up to the first "/", "?" or "#", its user information up to the last "@" in it (an
 * "@" in a password need not be encoded), the comma-separated host list after that, and the rest.
 */
interface UrlCuts {
  /** Index after "postgres://". */
  from: number;
  /** Index of the "@" ending the user information, or -1. */
  at: number;
  /** Index where the authority ends (the path, query or fragment starts, or the end). */
  authorityEnd: number;
}

const SCHEME = /^\s*postgres(?:ql)?:\/\//i;

function cut(text: string): UrlCuts | undefined {
  const scheme = SCHEME.exec(text);
  if (!scheme) return undefined;
  const from = scheme[0].length;
  const rest = text.slice(from);
  const end = rest.search(/[/?#]/);
  const authorityEnd = end < 0 ? text.length : from + end;
  const at = text.slice(from, authorityEnd).lastIndexOf('@');
  return { from, at: at < 0 ? -1 : from + at, authorityEnd };
}

/**
 * The WHATWG URL of the text with only its first host (node's URL parser knows no host list), and
 * each host entry parsed on its own. Undefined when any part does not parse.
 */
function structure(text: string): { url: URL; cuts: UrlCuts; hosts: URL[] } | undefined {
  const cuts = cut(text);
  if (!cuts) return undefined;
  const hostList = text.slice(cuts.at < 0 ? cuts.from : cuts.at + 1, cuts.authorityEnd);
  const entries = hostList.split(',');
  if (entries.some((e) => e === '')) return undefined;
  const single = text.slice(0, cuts.at < 0 ? cuts.from : cuts.at + 1) + entries[0] + text.slice(cuts.authorityEnd);
  let url: URL;
  const hosts: URL[] = [];
  try {
    url = new URL(single.trim());
    for (const entry of entries) hosts.push(new URL(`postgres://${entry}/`));
  } catch {
    return undefined;
  }
  return { url, cuts, hosts };
}

function hostPortOf(url: URL): Parsed<HostPort> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (host === '') return { ok: false, error: 'the connection string has no host (postgres://user:password@HOST:5432/database)' };
  if (host.startsWith('%2f') || host.startsWith('%2F')) return { ok: false, error: 'Unix-socket connection strings are not supported; use a TCP host' };
  const port = url.port === '' ? 5432 : Number(url.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return { ok: false, error: `port ${url.port} is out of range (1–65535)` };
  return { ok: true, value: { host, port } };
}

export function parseDatabaseUrl(input: string): Parsed<DatabaseUrl> {
  const text = input.trim();
  if (text === '') return { ok: false, error: 'enter a connection string, e.g. postgres://knocknoc:PASSWORD@192.0.2.10:5432/knocknoc' };
  if (!/^postgres(ql)?:\/\//i.test(text)) {
    return { ok: false, error: 'a connection string starts with postgres:// or postgresql://' };
  }
  const cuts = cut(text)!;
  const hostList = text.slice(cuts.at < 0 ? cuts.from : cuts.at + 1, cuts.authorityEnd);
  if (hostList.includes(',') && hostList.split(',').some((e) => e === '')) {
    return { ok: false, error: 'the host list has an empty entry (postgres://user:password@HOST1:5432,HOST2:5432/database)' };
  }
  const parts = structure(text);
  if (!parts) {
    return { ok: false, error: 'not a valid connection string (special characters in the user or password must be percent-encoded, e.g. @ as %40)' };
  }
  const { url } = parts;
  try {
    const hosts: HostPort[] = [];
    for (const entry of parts.hosts) {
      const hp = hostPortOf(entry);
      if (!hp.ok) return hp;
      hosts.push(hp.value);
    }
    const user = decode(url.username, 'user name');
    if (user === '') return { ok: false, error: 'the connection string has no user (postgres://USER:password@host/database)' };
    const rawDatabase = url.pathname.replace(/^\//, '');
    const database = decode(rawDatabase, 'database name');
    if (database === '' || rawDatabase.includes('/')) {
      return { ok: false, error: 'the connection string has no database name (postgres://user:password@host:5432/DATABASE)' };
    }
    const password = url.password === '' ? undefined : decode(url.password, 'password');
    for (const key of url.searchParams.keys()) {
      if (!KNOWN_PARAMS.has(key)) {
        return { ok: false, error: `unknown connection parameter ${quoted(key)} (known: ${[...KNOWN_PARAMS].join(', ')})` };
      }
    }
    const sslmode = (url.searchParams.get('sslmode') ?? 'prefer') as SslMode;
    if (!SSL_MODES.includes(sslmode)) return { ok: false, error: `sslmode ${quoted(sslmode)} is not one of ${SSL_MODES.join(', ')}` };
    const timeoutText = url.searchParams.get('connect_timeout');
    const connectTimeoutSeconds = timeoutText === null ? undefined : Number(timeoutText);
    if (connectTimeoutSeconds !== undefined && !(Number.isInteger(connectTimeoutSeconds) && connectTimeoutSeconds >= 0)) {
      return { ok: false, error: `connect_timeout ${quoted(timeoutText ?? '')} is not a whole number of seconds` };
    }
    const attrs = (url.searchParams.get('target_session_attrs') ?? 'any') as TargetSessionAttrs;
    if (!TARGET_SESSION_ATTRS.includes(attrs)) {
      return { ok: false, error: `target_session_attrs ${quoted(attrs)} is not one of ${TARGET_SESSION_ATTRS.join(', ')}` };
    }
    return {
      ok: true,
      value: {
        host: hosts[0]!.host,
        port: hosts[0]!.port,
        hosts,
        targetSessionAttrs: attrs,
        user,
        password,
        database,
        sslmode,
        sslrootcert: url.searchParams.get('sslrootcert') ?? undefined,
        connectTimeoutSeconds,
        applicationName: url.searchParams.get('application_name') ?? undefined,
      },
    };
  } catch (error) {
    return { ok: false, error: (error as Error).message };
  }
}

/** The same connection with only this one of its hosts (what one connection attempt uses). */
export function atHost(url: DatabaseUrl, at: HostPort): DatabaseUrl {
  return { ...url, host: at.host, port: at.port, hosts: [at] };
}

/** "host:port" ("[v6]:port"), as the host list writes it and /_status reports it. */
export function formatHostPort(at: HostPort): string {
  return `${hostForUrl(at.host)}:${at.port}`;
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

export interface UrlParts {
  host: string;
  port: number;
  /** Several hosts (libpq's multi-host form); `host` and `port` are then ignored. */
  hosts?: HostPort[];
  user: string;
  password?: string;
  database: string;
  params?: Record<string, string>;
}

/**
 * Builds a connection string; user, password and database are percent-encoded. Parameter values
 * too, but a path keeps its slashes, as withRootCert writes it (libpq decodes either way): the
 * installer then writes a printed string with the same CA path unchanged.
 */
export function buildDatabaseUrl(parts: UrlParts): string {
  const auth = encodeURIComponent(parts.user) + (parts.password !== undefined ? `:${encodeURIComponent(parts.password)}` : '');
  const query = queryText(Object.entries(parts.params ?? {}));
  const hosts = (parts.hosts ?? [{ host: parts.host, port: parts.port }]).map(formatHostPort).join(',');
  return `postgres://${auth}@${hosts}/${encodeURIComponent(parts.database)}${query ? `?${query}` : ''}`;
}

/** A query string: keys and values percent-encoded, a path keeping its slashes. */
function queryText(entries: Array<[string, string]>): string {
  return entries.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v).replace(/%2F/gi, '/')}`).join('&');
}

/**
 * The connection string verifying its server with this CA file: sslrootcert set to `caFile`, and
 * sslmode verify-full unless it asks for verify-ca or verify-full already. Everything else is kept.
 */
export function withRootCert(text: string, caFile: string): string {
  const trimmed = text.trim();
  const parts = structure(trimmed);
  if (!parts) throw new Error('not a valid connection string');
  const params = parts.url.searchParams;
  const mode = params.get('sslmode');
  if (mode !== 'verify-ca' && mode !== 'verify-full') params.set('sslmode', 'verify-full');
  params.set('sslrootcert', caFile);
  // Percent-encoded where it must be, but a path keeps its slashes (libpq decodes either way).
  const query = queryText([...params]);
  // Everything before the query as written (the host list included); the fragment is dropped.
  const tail = trimmed.slice(parts.cuts.authorityEnd);
  const pathEnd = tail.search(/[?#]/);
  return `${trimmed.slice(0, parts.cuts.authorityEnd)}${pathEnd < 0 ? tail : tail.slice(0, pathEnd)}?${query}`;
}

/**
 * Where the password of a postgres:// URL text is, as the URL parser that connects
 * (parseDatabaseUrl) reads it: the authority runs to the first "/", "?" or "#"; its user
 * information to the last "@" in it (an "@" in a password need not be encoded); the password
 * from the first ":" of that; the host list (one host or several) after the "@". Undefined when
 * the text has no password. A text parseDatabaseUrl refuses (it never connects) is masked up to
 * its last "@", whatever lies before it.
 */
function passwordSpan(text: string): { start: number; end: number } | undefined {
  const cuts = cut(text);
  if (!cuts) return undefined;
  // Only a text that connects is cut where the parser cuts it; any other (it never connects, and
  // may hold a password the parser stopped short of, e.g. one with a "/") up to its last "@".
  const parses = parseDatabaseUrl(text).ok;
  const at = parses ? cuts.at : text.lastIndexOf('@');
  if (at < cuts.from) return undefined;
  const colon = text.slice(cuts.from, at).indexOf(':');
  if (colon < 0) return undefined;
  return { start: cuts.from + colon + 1, end: at };
}

/** The same URL text with the password replaced by ****. */
export function redactUrl(text: string): string {
  const span = passwordSpan(text);
  return span ? `${text.slice(0, span.start)}****${text.slice(span.end)}` : text;
}

/** The same URL text with the password removed (for files that must not hold it). */
export function urlWithoutPassword(text: string): string {
  const span = passwordSpan(text);
  return span ? `${text.slice(0, span.start - 1)}${text.slice(span.end)}` : text;
}

/** "host:port/database as user", for messages. */
export function describeTarget(url: DatabaseUrl): string {
  return `${url.hosts.map(formatHostPort).join(',')}/${url.database} as ${url.user}`;
}
