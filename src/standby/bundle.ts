// The bundle `exposedb --add-standby` writes and `standby init --bundle` reads is input from outside:
// each field is checked before anything is written from it (a port holding a newline once reached
// postgresql.auto.conf as a restore_command). Refused up front: a bundle others can read (it holds
// the replication password and a private key), one for another host, of an unknown version, or
// whose key does not match its certificate. Invalid content is exit 2, a file or host that does
// not fit is exit 3; every problem is listed at once.
import crypto from 'node:crypto';
import dns from 'node:dns/promises';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PreflightError, UsageError } from '../errors.js';
import { issueServerCertificate } from '../postgres/certificates.js';
import { writeFileAtomic } from '../system/files.js';
import type { Logger } from '../system/log.js';
import { PATHS, type Root } from '../system/root.js';
import type { StandbyBundle } from './primary.js';

const KEYS = ['version', 'primary', 'standby', 'database', 'password', 'ca', 'certificate', 'key', 'nodesUrl'];
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const DATABASE = /^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/;
const CONTROL = /[\u0000-\u001f\u007f]/;

export function endpointProblems(name: string, value: unknown): string[] {
  if (typeof value !== 'object' || value === null) return [`${name}: not an object with host and port`];
  const { host, port, ...rest } = value as Record<string, unknown>;
  const problems: string[] = [];
  if (typeof host !== 'string' || !(net.isIP(host) || HOST_NAME.test(host)))
    problems.push(`${name}.host: not an IP address or host name: ${JSON.stringify(host)}`);
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
    problems.push(`${name}.port: not a port number (1-65535): ${JSON.stringify(port)}`);
  for (const key of Object.keys(rest)) problems.push(`${name}.${key}: unknown field`);
  return problems;
}

/** The PEM fields of a bundle: parseable, the key the certificate's, issued by the CA, made for `host`. */
export function pemProblems(bundle: Record<string, unknown>, host: unknown): string[] {
  const problems: string[] = [];
  let ca: crypto.X509Certificate | undefined;
  let certificate: crypto.X509Certificate | undefined;
  let key: crypto.KeyObject | undefined;
  try {
    ca = new crypto.X509Certificate(String(bundle.ca));
  } catch {
    problems.push('ca: not a PEM certificate');
  }
  try {
    certificate = new crypto.X509Certificate(String(bundle.certificate));
  } catch {
    problems.push('certificate: not a PEM certificate');
  }
  try {
    key = crypto.createPrivateKey(String(bundle.key));
  } catch {
    problems.push('key: not a PEM private key');
  }
  if (certificate && key && !certificate.checkPrivateKey(key)) problems.push('key: does not match the certificate');
  if (certificate && ca && !certificate.verify(ca.publicKey)) problems.push("certificate: not issued by the bundle's CA");
  if (certificate && typeof host === 'string' && !(net.isIP(host) ? certificate.checkIP(host) : certificate.checkHost(host))) {
    problems.push(`certificate: not made for ${host}`);
  }
  return problems;
}

/** What is wrong with a parsed bundle, field by field (empty: nothing). */
export function bundleProblems(bundle: unknown): string[] {
  if (typeof bundle !== 'object' || bundle === null || Array.isArray(bundle)) return ['not a JSON object'];
  const b = bundle as Record<string, unknown>;
  if (b.version !== 1) return [`version ${JSON.stringify(b.version)}: this knocker reads bundles of version 1 only`];
  const problems: string[] = [];
  for (const key of Object.keys(b)) if (!KEYS.includes(key)) problems.push(`${key}: unknown field`);
  problems.push(...endpointProblems('primary', b.primary), ...endpointProblems('standby', b.standby));
  if (typeof b.database !== 'string' || !DATABASE.test(b.database)) problems.push(`database: not a database name: ${JSON.stringify(b.database)}`);
  if (typeof b.password !== 'string' || b.password.length < 16 || b.password.length > 1024 || CONTROL.test(b.password))
    problems.push('password: not a password knocker made (16 to 1024 characters, no control characters)');
  if (
    b.nodesUrl !== undefined &&
    (typeof b.nodesUrl !== 'string' || CONTROL.test(b.nodesUrl) || !/^postgres(ql)?:\/\//.test(b.nodesUrl) || !URL.canParse(b.nodesUrl))
  ) {
    problems.push('nodesUrl: not a postgres:// connection string');
  }
  for (const field of ['ca', 'certificate', 'key']) if (typeof b[field] !== 'string') problems.push(`${field}: missing`);
  return problems;
}

/** Whether `host` is one of this host's own addresses (all of 127.0.0.0/8 and ::1 are). */
export async function isOwnAddress(host: string): Promise<boolean> {
  const addresses = net.isIP(host)
    ? [host]
    : await dns.lookup(host, { all: true }).then(
        (r) => r.map((a) => a.address),
        () => [],
      );
  const own = new Set(Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address)));
  return addresses.some((a) => own.has(a) || a.startsWith('127.') || a === '::1');
}

/** Refuses a bundle file that is missing or that its group or others can read (exit 3). */
export async function refuseReadable(file: string, holds: string, hints: { make: string; remake: string }): Promise<void> {
  const stat = await fs.stat(file).catch(() => undefined);
  if (!stat) throw new PreflightError(`${file} does not exist`, [hints.make]);
  if ((stat.mode & 0o077) !== 0) {
    throw new PreflightError(
      `${file} can be read by ${stat.mode & 0o070 ? 'its group' : ''}${(stat.mode & 0o070) && (stat.mode & 0o007) ? ' and ' : ''}${stat.mode & 0o007 ? 'others' : ''} (mode ${(stat.mode & 0o777).toString(8).padStart(4, '0')}): it holds ${holds}`,
      [`copy it with its mode kept (scp -p, install -m 0600); if others could read it, ${hints.remake}`],
    );
  }
}

/** How one kind of bundle is read: its name in messages, what it holds, its own field checks, and the host it is for. */
export interface BundleKind<T> {
  /** e.g. "bundle of knocker exposedb --add-standby" (said as "not a …", "not a valid …"). */
  noun: string;
  holds: string;
  hints: { make: string; remake: string };
  problems: (parsed: unknown) => string[];
  hostOf: (bundle: T) => string;
  /** The hint when the bundle is for another host. */
  elsewhere: (host: string) => string;
  /** False for a bundle without a certificate and key of its own (its `problems` check its CA). */
  pem?: boolean;
}

/**
 * Reads a bundle another host's knocker made, in the order that writes nothing from it unchecked:
 * refused when missing or readable by others (exit 3), not JSON or with a field that does not hold
 * (exit 2), for another host (exit 3), or with a key or certificate that does not fit (exit 2).
 */
export async function readHostBundle<T>(file: string, kind: BundleKind<T>): Promise<T> {
  await refuseReadable(file, kind.holds, kind.hints);
  let parsed: unknown;
  try {
    parsed = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (error) {
    throw new UsageError(`${file} is not a ${kind.noun}: ${(error as Error).message}`);
  }
  const invalid = `${file} is not a valid ${kind.noun}; nothing was written`;
  const problems = kind.problems(parsed);
  if (problems.length > 0) throw new UsageError(invalid, problems);
  const bundle = parsed as T;
  const host = kind.hostOf(bundle);
  if (!(await isOwnAddress(host))) throw new PreflightError(`this host has no address ${host}: the bundle is for another host`, [kind.elsewhere(host)]);
  const pem = kind.pem === false ? [] : pemProblems(parsed as Record<string, unknown>, host);
  if (pem.length > 0) throw new UsageError(invalid, pem);
  return bundle;
}

export function readBundle(file: string): Promise<StandbyBundle> {
  return readHostBundle<StandbyBundle>(file, {
    noun: 'bundle of knocker exposedb --add-standby',
    holds: 'the replication password and a private key',
    hints: {
      make: 'make it on the primary with knocker exposedb --add-standby ADDR, and copy it to this host',
      remake: 'make a new one on the primary (knocker standby remove there, then exposedb --add-standby)',
    },
    problems: bundleProblems,
    hostOf: (bundle) => bundle.standby.host,
    elsewhere: (host) => `run knocker standby init on ${host}, or on the primary make a bundle for this host: knocker exposedb --add-standby ADDR`,
  });
}

/**
 * On the primary: writes `file` (0600) with `fields`, then a server certificate for `host` from the
 * cluster's CA and its key, both made in a private folder beside the file and removed after.
 */
export async function writeBundleWithCertificate(root: Root, file: string, host: string, fields: object, log: Logger): Promise<void> {
  const work = await fs.mkdtemp(path.join(path.dirname(file), '.knocker-bundle-'));
  try {
    const keyFile = path.join(work, 'server.key');
    const certFile = path.join(work, 'server.crt');
    await issueServerCertificate(
      { ca: { keyFile: root.path(PATHS.clusterCaKey), certFile: root.path(PATHS.clusterCaCert) }, hosts: [host], keyFile, certFile },
      log,
    );
    const bundle = { ...fields, certificate: await fs.readFile(certFile, 'utf8'), key: await fs.readFile(keyFile, 'utf8') };
    await writeFileAtomic(file, `${JSON.stringify(bundle, null, 2)}\n`, { mode: 0o600, backup: false });
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** pg_basebackup's --max-rate: a number of kB/s, or with k or M, from 32 kB/s to 1024 MB/s. */
export function checkMaxRate(rate: string | undefined): void {
  if (rate === undefined) return;
  const m = /^([1-9]\d{0,9})([kM]?)$/.exec(rate);
  const kb = m ? Number(m[1]) * (m[2] === 'M' ? 1024 : 1) : NaN;
  if (!(kb >= 32 && kb <= 1024 * 1024))
    throw new UsageError(`--max-rate ${JSON.stringify(rate)}: give a rate from 32k to 1024M (kB/s, or with the suffix k or M, e.g. 20M)`);
}
