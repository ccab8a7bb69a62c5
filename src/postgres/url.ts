// PostgreSQL connection strings (postgres:// and postgresql:// URIs): parsing with clear errors,
// building with percent-encoding, and redaction so a password is never shown.
import type { Parsed } from '../config/values.js';
import { quoted } from '../shared/printable.js';

export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** Query parameters we understand; anything else is refused rather than silently ignored. */
const KNOWN_PARAMS = new Set(['sslmode', 'sslrootcert', 'connect_timeout', 'application_name', 'uselibpqcompat']);

export interface DatabaseUrl {
  host: string;
  port: number;
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

export function parseDatabaseUrl(input: string): Parsed<DatabaseUrl> {
  const text = input.trim();
  if (text === '') return { ok: false, error: 'enter a connection string, e.g. postgres://knocknoc:PASSWORD@192.0.2.10:5432/knocknoc' };
  if (!/^postgres(ql)?:\/\//i.test(text)) {
    return { ok: false, error: 'a connection string starts with postgres:// or postgresql://' };
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { ok: false, error: 'not a valid connection string (special characters in the user or password must be percent-encoded, e.g. @ as %40)' };
  }
  try {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (host === '') return { ok: false, error: 'the connection string has no host (postgres://user:password@HOST:5432/database)' };
    if (host.startsWith('%2f') || host.startsWith('%2F')) return { ok: false, error: 'Unix-socket connection strings are not supported; use a TCP host' };
    const port = url.port === '' ? 5432 : Number(url.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) return { ok: false, error: `port ${url.port} is out of range (1–65535)` };
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
    return {
      ok: true,
      value: {
        host,
        port,
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

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

export interface UrlParts {
  host: string;
  port: number;
  user: string;
  password?: string;
  database: string;
  params?: Record<string, string>;
}

/** Builds a connection string; user, password and database are percent-encoded. */
export function buildDatabaseUrl(parts: UrlParts): string {
  const auth = encodeURIComponent(parts.user) + (parts.password !== undefined ? `:${encodeURIComponent(parts.password)}` : '');
  const query = new URLSearchParams(parts.params ?? {}).toString();
  return `postgres://${auth}@${hostForUrl(parts.host)}:${parts.port}/${encodeURIComponent(parts.database)}${query ? `?${query}` : ''}`;
}

/**
 * The connection string verifying its server with this CA file: sslrootcert set to `caFile`, and
 * sslmode verify-full unless it asks for verify-ca or verify-full already. Everything else is kept.
 */
export function withRootCert(text: string, caFile: string): string {
  const url = new URL(text.trim());
  const params = url.searchParams;
  const mode = params.get('sslmode');
  if (mode !== 'verify-ca' && mode !== 'verify-full') params.set('sslmode', 'verify-full');
  params.set('sslrootcert', caFile);
  // Percent-encoded where it must be, but a path keeps its slashes (libpq decodes either way).
  const query = [...params].map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v).replace(/%2F/gi, '/')}`).join('&');
  url.search = '';
  return `${url.toString()}?${query}`;
}

/**
 * Where the password of a postgres:// URL text is, as the URL parser that connects
 * (parseDatabaseUrl) reads it: the authority runs to the first "/", "?" or "#"; its user
 * information to the last "@" in it (an "@" in a password need not be encoded); the password
 * from the first ":" of that. Undefined when the text has no password. A text that does not parse
 * (it never connects) is masked up to its last "@", whatever lies before it.
 */
function passwordSpan(text: string): { start: number; end: number } | undefined {
  const scheme = /^\s*postgres(?:ql)?:\/\//i.exec(text);
  if (!scheme) return undefined;
  const from = scheme[0].length;
  const rest = text.slice(from);
  const parses = URL.canParse(text.trim());
  const authorityEnd = parses ? rest.search(/[/?#]/) : -1;
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd);
  const at = authority.lastIndexOf('@');
  if (at < 0) return undefined;
  const colon = authority.slice(0, at).indexOf(':');
  if (colon < 0) return undefined;
  return { start: from + colon + 1, end: from + at };
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
  return `${hostForUrl(url.host)}:${url.port}/${url.database} as ${url.user}`;
}
