// Connection strings between the two database hosts: libpq keyword strings (primary_conninfo,
// pg_basebackup -d, pg_rewind --source-server), passfile lines, and the multi-host URL the web
// nodes use once a standby exists. Pure functions: no secret ever goes into a conninfo string,
// only the passfile's path.
import { buildDatabaseUrl } from '../postgres/url.js';

/** A value in a libpq keyword string: single-quoted, with \ and ' escaped. */
export function conninfoValue(value: string): string {
  return /^[A-Za-z0-9_./:-]+$/.test(value) && value !== '' ? value : `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function conninfo(fields: Record<string, string | number | undefined>): string {
  return Object.entries(fields)
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${conninfoValue(String(v))}`)
    .join(' ');
}

export interface PeerTarget {
  host: string;
  port: number;
  /** Path of the passfile (never the password). */
  passfile: string;
  /** The CA file verifying the peer's certificate; absent: TLS off (sslmode=disable). */
  caFile: string | undefined;
}

/** What pg_basebackup, the walreceiver and pg_rewind connect with. `dbname` is for pg_rewind (a normal connection). */
export function peerConninfo(peer: PeerTarget, user: string, applicationName: string, dbname?: string): string {
  return conninfo({
    host: peer.host,
    port: peer.port,
    user,
    dbname,
    passfile: peer.passfile,
    application_name: applicationName,
    sslmode: peer.caFile ? 'verify-full' : 'disable',
    sslrootcert: peer.caFile,
    connect_timeout: 10,
  });
}

/** A passfile field: `:` and `\` escaped (libpq's rule). */
function passField(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
}

/** One passfile line per host (both peers: the roles swap), any database. */
export function passfileText(hosts: Array<{ host: string; port: number }>, user: string, password: string): string {
  return `${hosts.map((h) => [passField(h.host), String(h.port), '*', passField(user), passField(password)].join(':')).join('\n')}\n`;
}

/** The password for `user` in a passfile's text (the first line naming it), or undefined. */
export function passwordFrom(text: string, user: string): string | undefined {
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const fields: string[] = [];
    let current = '';
    for (let i = 0; i < line.length; i += 1) {
      const c = line[i]!;
      if (c === '\\' && i + 1 < line.length) {
        current += line[i + 1];
        i += 1;
      } else if (c === ':') {
        fields.push(current);
        current = '';
      } else current += c;
    }
    fields.push(current);
    if (fields.length >= 5 && fields[3] === user) return fields.slice(4).join(':');
  }
  return undefined;
}

export interface MultiHostParts {
  hosts: Array<{ host: string; port: number }>;
  user: string;
  password: string | undefined;
  database: string;
  /** The CA file the nodes verify the database with (sslmode=verify-full). */
  caFile?: string;
}

/**
 * libpq's multi-host form, which pgx and knocknoc-server read: the nodes try the hosts in order and
 * keep the one that takes writes.
 * postgres://u:p@h1:5432,h2:5432/knocknoc?target_session_attrs=read-write&sslmode=verify-full&sslrootcert=…
 */
export function multiHostUrl(parts: MultiHostParts): string {
  // Built by the same module that parses it (src/postgres/url.ts), which knocknoc-server and the
  // installer read it with.
  const params: Record<string, string> = { target_session_attrs: 'read-write' };
  if (parts.caFile) Object.assign(params, { sslmode: 'verify-full', sslrootcert: parts.caFile });
  const [first] = parts.hosts;
  return buildDatabaseUrl({
    host: first?.host ?? '',
    port: first?.port ?? 5432,
    hosts: parts.hosts,
    user: parts.user,
    password: parts.password,
    database: parts.database,
    params,
  });
}
