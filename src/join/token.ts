// The join token of `knocker exposedb --invite` / `knocker install --join`, as kubeadm's bootstrap
// token does it: `knk1:<id>.<secret>@HOST:PORT/sha256:<pin>`. The id names the invitation (its
// PostgreSQL role, its row; shown by --invites), the secret (192 bits from the OS's CSPRNG) is the
// role's password and, through HKDF, the key of the sealed payload, and the pin is the SHA-256 of
// the cluster CA's SubjectPublicKeyInfo, which lets the new node recognise the primary before it
// uses the secret. Pure functions: no I/O.
import crypto, { type X509Certificate } from 'node:crypto';
import net from 'node:net';

export const TOKEN_PREFIX = 'knk1';
/** Roles of invitations are `knocker_join_<id>`; the group they belong to grants only redeem(). */
export const INVITE_ROLE_PREFIX = 'knocker_join_';
export const JOINERS_ROLE = 'knocker_joiners';

export interface JoinToken {
  id: string;
  secret: string;
  host: string;
  port: number;
  /** Hex SHA-256 of the cluster CA's SubjectPublicKeyInfo (DER). */
  pin: string;
}

const ID = /^[a-z0-9]{10}$/;
const SECRET = /^[A-Za-z0-9_-]{32}$/;
const TOKEN = /^knk1:([a-z0-9]{10})\.([A-Za-z0-9_-]{32})@(\[[0-9A-Fa-f:.]+\]|[0-9.]+|[A-Za-z0-9.-]+):(\d{1,5})\/sha256:([0-9a-f]{64})$/;

/** A new invitation's id (10 base-36 characters) and secret (24 random bytes, base64url). */
export function newInvitation(): { id: string; secret: string } {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let id = '';
  // Rejection sampling keeps every character equally likely.
  while (id.length < 10) {
    const byte = crypto.randomBytes(1)[0]!;
    if (byte < 252) id += alphabet[byte % 36];
  }
  return { id, secret: crypto.randomBytes(24).toString('base64url') };
}

export function inviteRole(id: string): string {
  return `${INVITE_ROLE_PREFIX}${id}`;
}

export function isInviteId(text: string): boolean {
  return ID.test(text);
}

export function formatToken(token: JoinToken): string {
  const host = net.isIPv6(token.host) ? `[${token.host}]` : token.host;
  return `${TOKEN_PREFIX}:${token.id}.${token.secret}@${host}:${token.port}/sha256:${token.pin}`;
}

/** The token, or why the text is not one (the message never repeats the text: it may hold a secret). */
export function parseToken(text: string): { ok: true; value: JoinToken } | { ok: false; error: string } {
  const trimmed = text.trim();
  if (!trimmed.startsWith(`${TOKEN_PREFIX}:`))
    return { ok: false, error: `a join token starts with ${TOKEN_PREFIX}: (it is printed by knocker exposedb --invite)` };
  const m = TOKEN.exec(trimmed);
  if (!m) return { ok: false, error: `not a whole join token (${TOKEN_PREFIX}:<id>.<secret>@HOST:PORT/sha256:<pin>); was it cut when copied?` };
  const host = m[3]!.startsWith('[') ? m[3]!.slice(1, -1) : m[3]!;
  const port = Number(m[4]);
  if (port < 1 || port > 65535 || (m[3]!.startsWith('[') && !net.isIPv6(host))) return { ok: false, error: 'the join token names an impossible address' };
  if (!SECRET.test(m[2]!)) return { ok: false, error: 'the join token has no valid secret' };
  return { ok: true, value: { id: m[1]!, secret: m[2]!, host, port, pin: m[5]! } };
}

/** The pin of a certificate: hex SHA-256 of its SubjectPublicKeyInfo (kubeadm's discovery-token-ca-cert-hash). */
export function spkiPin(certificate: X509Certificate): string {
  const spki = certificate.publicKey.export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(spki).digest('hex');
}

/** What redeeming gives the node: its lasting connection string and the CA that verifies the database. */
export interface JoinPayload {
  databaseUrl: string;
  ca: string;
  serverName?: string;
}

function payloadKey(token: Pick<JoinToken, 'id' | 'secret'>): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', token.secret, `${TOKEN_PREFIX}:${token.id}`, 'knocker join payload', 32));
}

/**
 * The payload sealed with a key only the secret gives (AES-256-GCM, the id as associated data):
 * the server keeps this and a SCRAM verifier, never anything that opens either.
 */
export function sealPayload(token: Pick<JoinToken, 'id' | 'secret'>, payload: JoinPayload): Buffer {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', payloadKey(token), iv);
  cipher.setAAD(Buffer.from(`${TOKEN_PREFIX}:${token.id}`));
  const sealed = Buffer.concat([cipher.update(JSON.stringify(payload), 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), sealed]);
}

export function openPayload(token: Pick<JoinToken, 'id' | 'secret'>, sealed: Buffer): JoinPayload {
  if (sealed.length < 29) throw new Error('the invitation payload is too short');
  const decipher = crypto.createDecipheriv('aes-256-gcm', payloadKey(token), sealed.subarray(0, 12));
  decipher.setAAD(Buffer.from(`${TOKEN_PREFIX}:${token.id}`));
  decipher.setAuthTag(sealed.subarray(12, 28));
  const text = Buffer.concat([decipher.update(sealed.subarray(28)), decipher.final()]).toString('utf8');
  const value = JSON.parse(text) as Partial<JoinPayload>;
  if (typeof value.databaseUrl !== 'string' || typeof value.ca !== 'string') throw new Error('the invitation payload is not what knocker writes');
  if (value.serverName !== undefined && typeof value.serverName !== 'string') throw new Error('the invitation payload is not what knocker writes');
  return { databaseUrl: value.databaseUrl, ca: value.ca, ...(value.serverName ? { serverName: value.serverName } : {}) };
}

/** `--ttl`: 30m, 1h, 24h, 2d (at most 7 days); default 1 hour. */
export function parseTtl(text: string): { ok: true; ms: number } | { ok: false; error: string } {
  const m = /^(\d{1,4})([smhd])$/.exec(text.trim());
  if (!m) return { ok: false, error: 'write a duration as a number and a unit: 30m, 1h, 24h, 2d' };
  const ms = Number(m[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
  if (ms < 60_000) return { ok: false, error: 'an invitation lives at least a minute' };
  if (ms > 7 * 86_400_000) return { ok: false, error: 'an invitation lives at most 7 days (7d): invite again later instead' };
  return { ok: true, ms };
}

export const DEFAULT_TTL_MS = 3_600_000;
