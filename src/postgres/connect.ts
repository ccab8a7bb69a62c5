// Connecting to PostgreSQL with node-postgres the way libpq would: sslmode keeps libpq's meaning
// (node-postgres alone treats `require` as verify-full), `prefer` falls back to plain text, and a
// connection can leave from a chosen local address. Failures become advice an operator can act on.
import fs from 'node:fs';
import net from 'node:net';
import { TLSSocket, type ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { atHost, describeTarget, formatHostPort, type DatabaseUrl, type HostPort, type TargetSessionAttrs } from './url.js';

export interface ConnectOptions {
  /** Local address the connection leaves from (a loopback "host" in tests and sandboxes). */
  sourceAddress?: string;
  /** Used when the URL has no connect_timeout; default 10 s. */
  connectTimeoutMs?: number;
  applicationName?: string;
  /** Server-side bound on each statement (PostgreSQL's statement_timeout). */
  statementTimeoutMs?: number;
  /** Client-side bound on each query, for a server that stops answering (a network gone quiet). */
  queryTimeoutMs?: number;
  /** The CA certificates (PEM) to verify the server with, instead of reading the URL's sslrootcert. */
  ca?: string;
}

type SslSetting = false | ConnectionOptions;

function sslFor(url: DatabaseUrl, mode: 'plain' | 'encrypted', given?: string): SslSetting {
  if (mode === 'plain') return false;
  const ca = given ?? (url.sslrootcert ? fs.readFileSync(url.sslrootcert, 'utf8') : undefined);
  // libpq: with a root certificate file, `require` verifies the CA like `verify-ca`.
  const sslmode = url.sslmode === 'require' && ca ? 'verify-ca' : url.sslmode;
  switch (sslmode) {
    case 'verify-full':
      return { rejectUnauthorized: true, ca, servername: net.isIP(url.host) ? undefined : url.host };
    case 'verify-ca':
      return { rejectUnauthorized: true, ca, checkServerIdentity: () => undefined };
    default:
      return { rejectUnauthorized: false };
  }
}

function streamFrom(localAddress: string) {
  return () => {
    const socket = new net.Socket();
    const connect = socket.connect.bind(socket) as (options: net.TcpNetConnectOpts) => net.Socket;
    // node-postgres calls connect(port, host); keep its arguments and add the local address.
    (socket as unknown as { connect: (port: number, host: string) => net.Socket }).connect = (port, host) => connect({ port, host, localAddress });
    return socket;
  };
}

export function clientConfig(url: DatabaseUrl, options: ConnectOptions, ssl: SslSetting): pg.ClientConfig {
  // libpq: connect_timeout 0 (or absent) waits indefinitely; we keep a bound whatever the URL says.
  const timeout = url.connectTimeoutSeconds ? url.connectTimeoutSeconds * 1000 : (options.connectTimeoutMs ?? 10_000);
  return {
    host: url.host,
    port: url.port,
    user: url.user,
    password: url.password ?? '',
    database: url.database,
    ssl,
    connectionTimeoutMillis: timeout,
    application_name: options.applicationName ?? url.applicationName ?? 'knocker',
    ...(options.statementTimeoutMs ? { statement_timeout: options.statementTimeoutMs } : {}),
    ...(options.queryTimeoutMs ? { query_timeout: options.queryTimeoutMs } : {}),
    ...(options.sourceAddress ? { stream: streamFrom(options.sourceAddress) } : {}),
  };
}

const NO_SSL = /does not support SSL/i;

/** The order of attempts libpq makes for an sslmode. */
function attemptsFor(url: DatabaseUrl): Array<'plain' | 'encrypted'> {
  switch (url.sslmode) {
    case 'disable':
      return ['plain'];
    case 'allow':
      return ['plain', 'encrypted'];
    case 'prefer':
      return ['encrypted', 'plain'];
    default:
      return ['encrypted'];
  }
}

/** A connected client and the configuration that worked (after libpq's TLS fallbacks). */
async function connectWithConfig(url: DatabaseUrl, options: ConnectOptions): Promise<{ client: pg.Client; config: pg.ClientConfig }> {
  const attempts = attemptsFor(url);
  let lastError: unknown;
  for (const [i, mode] of attempts.entries()) {
    const config = clientConfig(url, options, sslFor(url, mode, options.ca));
    const client = new pg.Client(config);
    // An idle client whose server goes away emits 'error'; without a listener that would crash.
    client.on('error', () => {});
    try {
      await client.connect();
      return { client, config };
    } catch (error) {
      lastError = error;
      await client.end().catch(() => {});
      const message = (error as Error).message ?? '';
      const canFallBack =
        i < attempts.length - 1 && ((mode === 'encrypted' && NO_SSL.test(message)) || (mode === 'plain' && (error as { code?: string }).code === '28000'));
      if (!canFallBack) throw error;
    }
  }
  throw lastError;
}

/**
 * Whether a connected client's connection is TLS. Asked of the socket: pg_stat_ssl hides the row
 * of a session that has SET ROLE to another role (the nodes' role does, to the app's).
 */
export function isEncrypted(client: pg.Client): boolean {
  return (client as unknown as { connection?: { stream?: unknown } }).connection?.stream instanceof TLSSocket;
}

/** One host of a list that was tried and not used, and why. */
export interface HostAttempt {
  at: HostPort;
  /** The server answered but is not what target_session_attrs asks for. */
  role?: 'read-only' | 'read-write' | 'standby' | 'primary';
  error?: unknown;
}

/** No host of the list gave a connection target_session_attrs accepts. */
export class NoSuitableHostError extends Error {
  constructor(
    readonly attrs: TargetSessionAttrs,
    readonly attempts: HostAttempt[],
  ) {
    super(
      `no server of the connection string is ${attrs === 'any' ? 'reachable' : attrs}: ` +
        attempts
          .map(
            (a) =>
              `${formatHostPort(a.at)} ${a.role ? `is ${a.role === 'standby' ? 'a standby' : a.role === 'primary' ? 'a primary' : a.role}` : ((a.error as Error)?.message ?? String(a.error))}`,
          )
          .join('; '),
    );
    this.name = 'NoSuitableHostError';
  }

  /** Some server answered, as a standby or read-only: a promotion may be under way. */
  get standbyOnly(): boolean {
    return this.attempts.some((a) => a.role === 'read-only' || a.role === 'standby');
  }
}

/** The host an error of `connectSelecting` is about (describeConnectError names that one). */
const errorHosts = new WeakMap<object, HostPort>();

/** Errors after which libpq (and pgx) try no further host: the next would refuse the same login. */
function stopsTheWalk(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === '28P01' || code === '28000' || code === '3D000' || code === '42501';
}

/** What a connected server is, as target_session_attrs asks it (libpq's queries). */
async function roleOf(client: pg.Client, attrs: TargetSessionAttrs): Promise<HostAttempt['role']> {
  if (attrs === 'read-write' || attrs === 'read-only') {
    const row = (await client.query<{ transaction_read_only: string }>('SHOW transaction_read_only')).rows[0];
    return row?.transaction_read_only === 'on' ? 'read-only' : 'read-write';
  }
  const row = (await client.query<{ standby: boolean }>('SELECT pg_is_in_recovery() AS standby')).rows[0];
  return row?.standby ? 'standby' : 'primary';
}

function accepts(attrs: TargetSessionAttrs, role: HostAttempt['role']): boolean {
  switch (attrs) {
    case 'read-write':
      return role === 'read-write';
    case 'read-only':
      return role === 'read-only';
    case 'primary':
      return role === 'primary';
    case 'standby':
    case 'prefer-standby':
      return role === 'standby';
    default:
      return true;
  }
}

export interface Selected {
  client: pg.Client;
  config: pg.ClientConfig;
  /** The host of the list it is connected to. */
  at: HostPort;
}

/**
 * Connects as libpq does with a host list: each host in order (connect_timeout for each), the
 * first whose server target_session_attrs accepts (`SHOW transaction_read_only` for read-write
 * and read-only, `pg_is_in_recovery()` for primary and standby; prefer-standby takes any server
 * when no standby answers). A refused login stops the walk, as in libpq. One host and `any`:
 * exactly one attempt, its error as it came.
 */
export async function connectSelecting(url: DatabaseUrl, options: ConnectOptions = {}): Promise<Selected> {
  const attrs = url.targetSessionAttrs;
  if (url.hosts.length <= 1 && attrs === 'any') return { ...(await connectWithConfig(url, options)), at: { host: url.host, port: url.port } };
  const attempts: HostAttempt[] = [];
  const passes: TargetSessionAttrs[] = attrs === 'prefer-standby' ? ['standby', 'any'] : [attrs];
  for (const pass of passes) {
    for (const at of url.hosts) {
      const earlier = attempts.find((a) => a.at === at && a.error !== undefined);
      if (earlier) continue; // an unreachable host is not asked twice
      let connected: { client: pg.Client; config: pg.ClientConfig };
      try {
        connected = await connectWithConfig(atHost(url, at), options);
      } catch (error) {
        if (error !== null && typeof error === 'object') errorHosts.set(error, at);
        if (stopsTheWalk(error)) throw error;
        attempts.push({ at, error });
        continue;
      }
      try {
        const role = pass === 'any' ? undefined : await roleOf(connected.client, pass);
        if (pass === 'any' || accepts(pass, role)) return { ...connected, at };
        if (!attempts.some((a) => a.at === at)) attempts.push({ at, role });
      } catch (error) {
        if (error !== null && typeof error === 'object') errorHosts.set(error, at);
        attempts.push({ at, error });
      }
      await connected.client.end().catch(() => {});
    }
  }
  // One host that could not be reached: its own error, as with `any`.
  if (url.hosts.length === 1 && attempts.length === 1 && attempts[0]!.error !== undefined) throw attempts[0]!.error;
  throw new NoSuitableHostError(attrs, attempts);
}

/** Opens a connected client, or throws node-postgres's error (see `describeConnectError`). */
export async function connect(url: DatabaseUrl, options: ConnectOptions = {}): Promise<pg.Client> {
  return (await connectSelecting(url, options)).client;
}

/**
 * A pool of connections made the way `connect` made its one (same TLS choice, same source
 * address, the same host of a list). Connecting once first also surfaces a bad URL or password
 * here, not on first use. With `at`, the pool is made to that host without asking its role.
 */
export async function openPoolAt(
  url: DatabaseUrl,
  options: ConnectOptions,
  pool: { max: number; idleTimeoutMs: number },
  at?: HostPort,
): Promise<{ pool: pg.Pool; at: HostPort }> {
  const selected = at ? { ...(await connectWithConfig(atHost(url, at), options)), at } : await connectSelecting(url, options);
  await selected.client.end().catch(() => {});
  const result = new pg.Pool({ ...selected.config, max: pool.max, idleTimeoutMillis: pool.idleTimeoutMs });
  // An idle pooled client whose server goes away emits 'error' on the pool.
  result.on('error', () => {});
  return { pool: result, at: selected.at };
}

export async function openPool(url: DatabaseUrl, options: ConnectOptions, pool: { max: number; idleTimeoutMs: number }): Promise<pg.Pool> {
  return (await openPoolAt(url, options, pool)).pool;
}

/**
 * An error that means the server a connection was on is no longer the one to use: the
 * connection was lost (SQLSTATE class 08, a socket error, no code at all), the server is
 * shutting down or terminated the session (57P01–57P03), or it turned read-only (25006: a
 * demoted or fenced primary). The cure is to connect again and select the host again.
 */
export function isSwitchError(error: unknown): boolean {
  const code = (error as { code?: string } | undefined)?.code;
  if (!code) return true;
  return code === '25006' || /^(08|57P0[123])/.test(code) || /^E[A-Z]+$/.test(code);
}

/** Runs `work` with a connected client and always closes it. */
export async function withClient<T>(url: DatabaseUrl, options: ConnectOptions, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(url, options);
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => {});
  }
}

export interface ConnectProblem {
  /** What went wrong, in one sentence. */
  message: string;
  /** What to do about it. */
  hints: string[];
  /** A short class for tests and JSON output. */
  reason: 'refused' | 'timeout' | 'not-allowed' | 'bad-password' | 'no-database' | 'dns' | 'unreachable' | 'tls' | 'no-primary' | 'other';
}

/** Turns a connection failure into a message that tells a refused port, a timeout, pg_hba and a wrong password apart. */
export function describeConnectError(error: unknown, given: DatabaseUrl): ConnectProblem {
  if (error instanceof NoSuitableHostError) return describeNoHost(error, given);
  const at = error !== null && typeof error === 'object' ? errorHosts.get(error) : undefined;
  const url = at ? atHost(given, at) : given;
  const target = describeTarget(url);
  const err = error as { code?: string; message?: string };
  const message = err.message ?? String(error);
  const where = `${url.host.includes(':') ? `[${url.host}]` : url.host}:${url.port}`;
  const hba = /pg_hba\.conf rejects connection for host "([^"]+)"|no pg_hba\.conf entry for host "([^"]+)"/.exec(message);
  if (err.code === '28000' && hba) {
    const source = hba[1] ?? hba[2]!;
    const cidr = source.includes(':') ? `${source}/128` : `${source}/32`;
    return {
      reason: 'not-allowed',
      message: `the database server at ${where} does not allow connections from this host (${source})`,
      hints: [`allow this node's address on the primary: knocker exposedb --add ${cidr}`, 'then run this again'],
    };
  }
  if (err.code === '28P01') {
    return {
      reason: 'bad-password',
      message: `password authentication failed for ${target}`,
      hints: ['check the user and password in the connection string (on the primary, `knocker exposedb --init` prints it again)'],
    };
  }
  if (err.code === '3D000') {
    return {
      reason: 'no-database',
      message: `database "${url.database}" does not exist on ${where}`,
      hints: ['check the database name in the connection string'],
    };
  }
  if (err.code === 'ECONNREFUSED') {
    return {
      reason: 'refused',
      message: `connection refused by ${where}: nothing is listening there`,
      hints: [
        'check that PostgreSQL is running and listens on that address and port (listen_addresses, port)',
        'on a Knocknoc primary, `knocker exposedb --init` makes its database listen for other nodes',
      ],
    };
  }
  if (err.code === 'ETIMEDOUT' || /timeout|timed out/i.test(message)) {
    return {
      reason: 'timeout',
      message: `no answer from ${where} in time`,
      hints: [`a firewall may be dropping the connection, or the address is wrong; check that this host can reach port ${url.port}`],
    };
  }
  if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') {
    return { reason: 'dns', message: `the host name "${url.host}" does not resolve`, hints: ['check the host in the connection string'] };
  }
  if (err.code === 'EHOSTUNREACH' || err.code === 'ENETUNREACH' || err.code === 'EADDRNOTAVAIL') {
    return { reason: 'unreachable', message: `${where} is unreachable from this host (${err.code})`, hints: ["check the address and this host's network"] };
  }
  if (NO_SSL.test(message)) {
    return {
      reason: 'tls',
      message: `the server at ${where} does not offer TLS, but sslmode=${url.sslmode} requires it`,
      hints: ['turn ssl on in PostgreSQL, or use sslmode=prefer'],
    };
  }
  if (err.code === 'ENOENT' && url.sslrootcert && message.includes(url.sslrootcert)) {
    return {
      reason: 'tls',
      message: `the CA file ${url.sslrootcert} (sslrootcert) does not exist`,
      hints: ['give the CA certificate with --database-ca FILE'],
    };
  }
  if (/altnames|Hostname\/IP does not match/i.test(message) || err.code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return {
      reason: 'tls',
      message: `the server at ${where} presented a certificate that does not name ${url.host} (sslmode=${url.sslmode}): ${message}`,
      hints: [
        'another server may be answering on this address; if the primary was given another address or name, run knocker exposedb --init --host ADDR on it',
      ],
    };
  }
  if (/certificate|self[- ]signed|CERT_/i.test(message) || (err.code ?? '').includes('CERT')) {
    return {
      reason: 'tls',
      message: url.sslrootcert
        ? `the server at ${where} presented a certificate that the CA given does not verify (sslmode=${url.sslmode}): ${message}`
        : `the server at ${where} presented a certificate that no CA known here verifies (sslmode=${url.sslmode}, no CA given): ${message}`,
      hints: [
        url.sslrootcert
          ? 'check that this is the CA that `knocker exposedb --init` names on the primary, and that this address is the primary (another server may be answering on it)'
          : 'give the CA certificate with --database-ca FILE (on the primary, `knocker exposedb --init` names its file)',
      ],
    };
  }
  return { reason: 'other', message: `could not connect to ${target}: ${message}`, hints: [] };
}

/** Every host of a list tried: each one's reason in a word, and the advice of the first that failed. */
function describeNoHost(error: NoSuitableHostError, url: DatabaseUrl): ConnectProblem {
  const parts: string[] = [];
  let first: ConnectProblem | undefined;
  for (const a of error.attempts) {
    if (a.role) {
      parts.push(`${formatHostPort(a.at)} is ${a.role === 'standby' ? 'a standby' : a.role === 'primary' ? 'a primary' : a.role}`);
      continue;
    }
    const problem = describeConnectError(a.error, atHost(url, a.at));
    first ??= problem;
    parts.push(problem.message);
  }
  const wanted = error.attrs === 'any' ? 'reachable' : error.attrs === 'read-write' ? 'a read-write primary' : error.attrs;
  if (error.standbyOnly) {
    return {
      reason: 'no-primary',
      message: `no server of the connection string is ${wanted}: ${parts.join('; ')}`,
      hints: [
        'a standby answers but no primary: the primary is down or a switchover is under way; once a standby is promoted, connections follow it by themselves',
        ...(first?.hints ?? []),
      ],
    };
  }
  if (error.attempts.length === 1 && first) return first;
  return { reason: first?.reason ?? 'other', message: `no server of the connection string is ${wanted}: ${parts.join('; ')}`, hints: first?.hints ?? [] };
}

function isLoopbackV4(address: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address);
}

/**
 * The local address a node's database connections leave from. When a node listens on a specific
 * loopback address and its database is on loopback too, its connections leave from the address it
 * listens on: several sandbox "hosts" on one machine (127.0.0.2, 127.0.0.3, …) then look to
 * PostgreSQL like separate hosts, as they would on a network. Otherwise the kernel chooses.
 */
export function sourceAddressFor(listenHost: string, databaseHost: string): string | undefined {
  return isLoopbackV4(listenHost) && isLoopbackV4(databaseHost) ? listenHost : undefined;
}
