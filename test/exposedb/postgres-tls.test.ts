// sslmode behaves as libpq's does (FACTS.md: node-postgres alone treats require as verify-full),
// against real clusters with and without TLS.
import { execa } from 'execa';
import fs from 'node:fs/promises';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { selfSignedArgs } from '../helpers/certs.js';
import { connect, describeConnectError, withClient } from '../../src/postgres/connect.js';
import { parseDatabaseUrl, type DatabaseUrl } from '../../src/postgres/url.js';
import { startTestCluster, type TestCluster } from '../helpers/pg.js';
import { makeTempDir } from '../helpers/temp.js';

let tls: TestCluster & { caFile?: string };
let plain: TestCluster;
let tlsUrl: string;
let plainUrl: string;

beforeAll(async () => {
  [tls, plain] = await Promise.all([startTestCluster({ ssl: true }), startTestCluster()]);
  [tlsUrl, plainUrl] = await Promise.all([tls.createDatabase({ role: 'app' }), plain.createDatabase({ role: 'app' })]);
});
afterAll(async () => {
  await Promise.all([tls?.destroy(), plain?.destroy()]);
});

function url(base: string, params: string): DatabaseUrl {
  const parsed = parseDatabaseUrl(`${base}?${params}`);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

const encrypted = (u: DatabaseUrl) =>
  withClient(u, {}, async (c) => (await c.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows[0]!.ssl);

test('require encrypts without verifying (a self-signed certificate is accepted)', async () => {
  expect(await encrypted(url(tlsUrl, 'sslmode=require'))).toBe(true);
  expect(await encrypted(url(tlsUrl, 'sslmode=no-verify'))).toBe(true);
});

test('verify-full checks the certificate against the CA and the host name; verify-ca only the CA', async () => {
  const error = await connect(url(tlsUrl, 'sslmode=verify-full')).catch((e: unknown) => e);
  expect(describeConnectError(error, url(tlsUrl, 'sslmode=verify-full'))).toMatchObject({ reason: 'tls' });
  expect(await encrypted(url(tlsUrl, `sslmode=verify-full&sslrootcert=${tls.caFile}`))).toBe(true);
  expect(await encrypted(url(tlsUrl, `sslmode=verify-ca&sslrootcert=${tls.caFile}`))).toBe(true);
  // With a root certificate, require verifies the CA as libpq does: another CA fails.
  const dir = await makeTempDir('knocker-ca-');
  try {
    const [openssl, ...args] = selfSignedArgs({ cn: 'other', days: 1, keyOut: `${dir}/k`, certOut: `${dir}/ca.crt` });
    await execa(openssl!, args);
    const u = url(tlsUrl, `sslmode=require&sslrootcert=${dir}/ca.crt`);
    const other = await connect(u).catch((e: unknown) => e);
    expect(describeConnectError(other, u)).toMatchObject({ reason: 'tls' });
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('prefer (the default) encrypts when it can and falls back to plain text when the server has no TLS', async () => {
  expect(await encrypted(url(tlsUrl, 'sslmode=prefer'))).toBe(true);
  expect(await encrypted(url(plainUrl, 'application_name=x'))).toBe(false);
  expect(await encrypted(url(tlsUrl, 'sslmode=disable'))).toBe(false);
});

test('require against a server without TLS fails with advice', async () => {
  const u = url(plainUrl, 'sslmode=require');
  const error = await connect(u).catch((e: unknown) => e);
  expect(describeConnectError(error, u)).toMatchObject({
    reason: 'tls',
    message: expect.stringContaining('does not offer TLS, but sslmode=require requires it'),
  });
});
