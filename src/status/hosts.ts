// Every host of a multi-host DatabaseURL, asked on its own: does it answer, is it in recovery, and
// does a new session on it accept writes. Each host gets a fresh session (never the dashboard's
// pooled one, which keeps the settings it started with), from this node's own address and with
// its login, as a web node's libpq would see it; all hosts at once, each bounded by the connect and
// query timeouts, so one host that hangs does not hold up the others or the rest of the view.
import { connect, describeConnectError, type ConnectOptions } from '../postgres/connect.js';
import { atHost, formatHostPort, type DatabaseUrl, type HostPort } from '../postgres/url.js';
import type { HostAnswer } from './roles.js';
import { SourceAbsent } from './sources.js';

export interface HostsSourceOptions {
  url: DatabaseUrl;
  connect: ConnectOptions;
}

/** One host: never rejects (a host that cannot be asked is `unreachable`, with why). */
export async function askHost(url: DatabaseUrl, at: HostPort, options: ConnectOptions): Promise<HostAnswer> {
  const host = formatHostPort(at);
  // `any`: this host alone, whatever it is (target_session_attrs would skip it).
  const target: DatabaseUrl = { ...atHost(url, at), targetSessionAttrs: 'any' };
  let client: Awaited<ReturnType<typeof connect>> | undefined;
  try {
    client = await connect(target, options);
    // transaction_read_only of a new session: default_transaction_read_only from any source
    // (postgresql.conf, ALTER SYSTEM, ALTER DATABASE, ALTER ROLE) and on during recovery.
    const row = (
      await client.query<{ in_recovery: boolean; read_only: string }>(
        `SELECT pg_is_in_recovery() AS in_recovery, current_setting('transaction_read_only') AS read_only`,
      )
    ).rows[0]!;
    const acceptsWrites = !row.in_recovery && row.read_only !== 'on';
    return { host, role: row.in_recovery ? 'standby' : acceptsWrites ? 'primary' : 'read-only', inRecovery: row.in_recovery, acceptsWrites, error: null };
  } catch (error) {
    return { host, role: 'unreachable', inRecovery: null, acceptsWrites: null, error: describeConnectError(error, target).message };
  } finally {
    await client?.end().catch(() => {});
  }
}

/** The source: every host of the list at once; a one-host DatabaseURL has nothing to compare (absent). */
export function readHosts(options: HostsSourceOptions): () => Promise<HostAnswer[]> {
  return async () => {
    const hosts = options.url.hosts;
    if (hosts.length <= 1) throw new SourceAbsent('DatabaseURL names one host');
    return Promise.all(hosts.map((at) => askHost(options.url, at, options.connect)));
  };
}
