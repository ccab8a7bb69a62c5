// The joining node's side of `knocker install --join TOKEN`, in kubeadm's order: verify the server
// first, authenticate only then. (1) Ask the server for TLS and walk the chain it presents for a
// certificate whose SubjectPublicKeyInfo matches the token's pin: that is the cluster's CA (a walk
// alone proves nothing: anyone can append the real CA to a chain). (2) Reconnect verify-full with
// that CA alone, for the token's host, and log in over that connection as the invitation's role
// (SCRAM, channel-bound to this TLS session): the secret is used only once the server has proved it
// holds a key the CA certified for that host. (3) knocker_join.redeem() marks the invitation used
// and returns the node's sealed connection string and CA, opened with the secret.
import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import pg from 'pg';
import { type KnockerError, PreflightError } from '../errors.js';
import { clientConfig } from '../postgres/connect.js';
import { probeTls } from '../postgres/tls-probe.js';
import { buildDatabaseUrl, parseDatabaseUrl } from '../postgres/url.js';
import { APP_DATABASE } from '../installer/database.js';
import type { Logger } from '../system/log.js';
import { inviteRole, openPayload, spkiPin, type JoinPayload, type JoinToken } from './token.js';

export class JoinRefusedError extends PreflightError {}

function at(token: JoinToken): string {
  return `${net.isIPv6(token.host) ? `[${token.host}]` : token.host}:${token.port}`;
}

/** Step 1: the cluster's CA out of the presented chain, by its pin; refused when no certificate matches. */
export async function pinnedCa(token: JoinToken, options: { sourceAddress?: string } = {}): Promise<X509Certificate> {
  let chain: X509Certificate[];
  try {
    // Nothing is trusted here: the chain is only read, and the connection closed before any login.
    const probe = await probeTls(token.host, token.port, { ...options, timeoutMs: 8_000 });
    if (!probe.offered) throw new Error('the server does not offer TLS');
    chain = probe.chain;
  } catch (error) {
    throw new JoinRefusedError(`cannot reach the database at ${at(token)}: ${(error as Error).message}; nothing was sent and nothing changed`, [
      'check the address in the token and that this host can reach it (a firewall, the primary listening externally)',
    ]);
  }
  const ca = chain.find((c) => c.ca && spkiPin(c) === token.pin);
  if (!ca) {
    throw new JoinRefusedError(
      `the server at ${at(token)} does not present the cluster CA the token pins (sha256:${token.pin.slice(0, 16)}…): it is not the primary that invited this node; the secret was not used and nothing changed`,
      ['check the token was copied whole from knocker exposedb --invite on the primary, and that the address in it is the primary'],
    );
  }
  return ca;
}

function refusal(token: JoinToken, error: unknown): KnockerError {
  const code = (error as { code?: string }).code;
  const message = (error as Error).message ?? String(error);
  if (/certificate|self.signed|altname|hostname|IP: .* is not in the cert/i.test(message) || (error as { code?: string }).code?.startsWith?.('ERR_TLS')) {
    return new JoinRefusedError(
      `the server at ${at(token)} failed verify-full with the pinned cluster CA (${message}): its certificate is not the cluster's for this address; the secret was not used and nothing changed`,
    );
  }
  if (code === '28P01')
    return new JoinRefusedError(`the primary refused the invitation: it does not exist, was revoked, or has expired; nothing changed`, [
      'ask for a new one on the primary: knocker exposedb --invite ADDR/32',
    ]);
  if (code === '28000') {
    if (/not permitted to log in|already used|revoked|expired/.test(message))
      return new JoinRefusedError(`the primary refused the invitation: it was already used, revoked, or has expired; nothing changed`, [
        'an invitation joins one node once; ask for a new one on the primary: knocker exposedb --invite ADDR/32',
      ]);
    // pg_hba.conf: no line for this role from this address (knocker's reject lines end the search).
    return new JoinRefusedError(
      `the primary refused the invitation from this host's address: it was made for another address, or was revoked and removed (${message}); nothing changed`,
      [
        'an invitation is for the one address given to --invite: run the join on that host, or ask for one for this host (knocker exposedb --invites lists them)',
      ],
    );
  }
  return new JoinRefusedError(`joining through ${at(token)} failed: ${message}; nothing changed`);
}

/**
 * Steps 2 and 3. Returns the node's payload; throws JoinRefusedError (exit 3) with what to do when
 * the server is not the one pinned, or the primary refuses the invitation.
 */
export async function redeemToken(token: JoinToken, options: { sourceAddress?: string; log?: Logger } = {}): Promise<JoinPayload> {
  const ca = await pinnedCa(token, options);
  options.log?.info(`join ${token.id}: ${at(token)} presents the pinned CA (${ca.subject.replace(/\n/g, ', ')})`);
  const parsed = parseDatabaseUrl(
    buildDatabaseUrl({ host: token.host, port: token.port, user: inviteRole(token.id), password: token.secret, database: APP_DATABASE }),
  );
  if (!parsed.ok) throw new JoinRefusedError(`the join token names an address knocker cannot connect to: ${parsed.error}`);
  const ssl: tls.ConnectionOptions = {
    ca: [ca.toString()],
    rejectUnauthorized: true,
    // verify-full: the chain to the pinned CA and the token's host in the certificate.
    checkServerIdentity: (_name, certificate) => tls.checkServerIdentity(token.host, certificate),
    ...(net.isIP(token.host) ? {} : { servername: token.host }),
  };
  const config = clientConfig(parsed.value, { sourceAddress: options.sourceAddress, connectTimeoutMs: 10_000, applicationName: 'knocker install --join' }, ssl);
  const client = new pg.Client({ ...config, enableChannelBinding: true } as pg.ClientConfig);
  client.on('error', () => {});
  let sealed: Buffer;
  try {
    await client.connect();
    const result = await client.query<{ sealed: Buffer }>('SELECT knocker_join.redeem() AS sealed');
    sealed = result.rows[0]!.sealed;
  } catch (error) {
    throw refusal(token, error);
  } finally {
    await client.end().catch(() => {});
  }
  const payload = openPayload(token, sealed);
  if (spkiPin(new X509Certificate(payload.ca)) !== token.pin)
    throw new JoinRefusedError('the invitation holds a CA other than the one the token pins; nothing was written');
  options.log?.info(`join ${token.id}: redeemed; this node's connection string and CA received`);
  return payload;
}
