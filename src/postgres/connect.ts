// Connecting to PostgreSQL with node-postgres the way libpq would: sslmode keeps libpq's meaning
// (node-postgres alone treats `require` as verify-full), `prefer` falls back to plain text, and a
// connection can leave from a chosen local address. Failures become advice an operator can act on.
import fs from 'node:fs';
import net from 'node:net';
import { TLSSocket, type ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { describeTarget, type DatabaseUrl } from './url.js';

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
    (socket as unknown as { connect: (port: number, host: string) => net.Socket }).connect = (port, host) =>
      connect({ port, host, localAddress });
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
        i < attempts.length - 1 &&
        ((mode === 'encrypted' && NO_SSL.test(message)) || (mode === 'plain' && (error as { code?: string }).code === '28000'));
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

/** Opens a connected client, or throws node-postgres's error (see `describeConnectError`). */
export async function connect(url: DatabaseUrl, options: ConnectOptions = {}): Promise<pg.Client> {
  return (await connectWithConfig(url, options)).client;
}

/**
 * A pool of connections made the way `connect` made its one (same TLS choice, same source
 * address). Connecting once first also surfaces a bad URL or password here, not on first use.
 */
export async function openPool(url: DatabaseUrl, options: ConnectOptions, pool: { max: number; idleTimeoutMs: number }): Promise<pg.Pool> {
  const { client, config } = await connectWithConfig(url, options);
  await client.end().catch(() => {});
  const result = new pg.Pool({ ...config, max: pool.max, idleTimeoutMillis: pool.idleTimeoutMs });
  // An idle pooled client whose server goes away emits 'error' on the pool.
  result.on('error', () => {});
  return result;
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
  reason: 'refused' | 'timeout' | 'not-allowed' | 'bad-password' | 'no-database' | 'dns' | 'unreachable' | 'tls' | 'other';
}

/** Turns a connection failure into a message that tells a refused port, a timeout, pg_hba and a wrong password apart. */
export function describeConnectError(error: unknown, url: DatabaseUrl): ConnectProblem {
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
      hints: [
        `allow this node's address on the primary: knocker exposedb --add ${cidr}`,
        'then run this again',
      ],
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
    return { reason: 'no-database', message: `database "${url.database}" does not exist on ${where}`, hints: ['check the database name in the connection string'] };
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
      hints: ['a firewall may be dropping the connection, or the address is wrong; check that this host can reach port ' + url.port],
    };
  }
  if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') {
    return { reason: 'dns', message: `the host name "${url.host}" does not resolve`, hints: ['check the host in the connection string'] };
  }
  if (err.code === 'EHOSTUNREACH' || err.code === 'ENETUNREACH' || err.code === 'EADDRNOTAVAIL') {
    return { reason: 'unreachable', message: `${where} is unreachable from this host (${err.code})`, hints: ['check the address and this host\'s network'] };
  }
  if (NO_SSL.test(message)) {
    return {
      reason: 'tls',
      message: `the server at ${where} does not offer TLS, but sslmode=${url.sslmode} requires it`,
      hints: ['turn ssl on in PostgreSQL, or use sslmode=prefer'],
    };
  }
  if (err.code === 'ENOENT' && url.sslrootcert && message.includes(url.sslrootcert)) {
    return { reason: 'tls', message: `the CA file ${url.sslrootcert} (sslrootcert) does not exist`, hints: ['give the CA certificate with --database-ca FILE'] };
  }
  if (/altnames|Hostname\/IP does not match/i.test(message) || err.code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return {
      reason: 'tls',
      message: `the server at ${where} presented a certificate that does not name ${url.host} (sslmode=${url.sslmode}): ${message}`,
      hints: ['another server may be answering on this address; if the primary was given another address or name, run knocker exposedb --init --host ADDR on it'],
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
