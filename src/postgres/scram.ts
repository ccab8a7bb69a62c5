// Passwords for database roles: generated here, and sent to PostgreSQL only as a SCRAM-SHA-256
// verifier, so the cleartext never reaches the server's logs or pg_stat_activity.
// node:crypto is loaded when first used: the installer's first screen needs none of it (~10 ms,
// bench/RESULTS.md).
const crypto = () => process.getBuiltinModule('node:crypto');

/** A random ASCII password (no SASLprep surprises), 32 characters of base64url. */
export function generatePassword(): string {
  return crypto().randomBytes(24).toString('base64url');
}

/** The SCRAM-SHA-256 verifier PostgreSQL stores in pg_authid.rolpassword (RFC 5802 / 7677). */
export function scramVerifier(password: string, salt: Buffer = crypto().randomBytes(16), iterations = 4096): string {
  const salted = crypto().pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  const clientKey = crypto().createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = crypto().createHash('sha256').update(clientKey).digest();
  const serverKey = crypto().createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** Whether a stored SCRAM-SHA-256 verifier was made from `password` (checked offline, from its salt). */
export function scramMatches(password: string, verifier: string | null | undefined): boolean {
  const match = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(verifier ?? '');
  if (!match) return false;
  return scramVerifier(password, Buffer.from(match[2]!, 'base64'), Number(match[1])) === verifier;
}
