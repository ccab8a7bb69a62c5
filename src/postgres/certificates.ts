// The cluster's certificates: a small CA that knocker keeps on the primary, and the server
// certificate it issues to PostgreSQL for the primary's addresses and name, so that the other web
// nodes connect with sslmode=verify-full. Made with the distribution's openssl command (argument
// arrays, never a shell; private keys are written by openssl into a 0700 folder and never pass
// through knocker's memory, argv or output). Reading a certificate uses Node's X509Certificate.
import { randomBytes, X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from '../system/log.js';
import { run } from '../system/run.js';

/** Validity of the CA, and of each server certificate (renew with `knocker exposedb --renew-cert`). */
export const CA_DAYS = 3650;
export const SERVER_DAYS = 397;
/** `knocker status` warns this long before the server certificate expires. */
export const EXPIRY_WARNING_DAYS = 30;

export interface CertificateInfo {
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  fingerprint256: string;
  /** "IP Address:198.18.0.11", "DNS:web-1", as X509Certificate gives them. */
  altNames: string[];
  selfSigned: boolean;
  isCa: boolean;
  /** The first certificate of the file, PEM. */
  pem: string;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate in a PEM text, in order (a chain: the leaf first). */
export function pemCertificates(text: string): string[] {
  return text.match(PEM_CERT) ?? [];
}

export function describeCertificate(cert: X509Certificate): CertificateInfo {
  return {
    subject: cert.subject.replace(/\n/g, ', '),
    issuer: cert.issuer.replace(/\n/g, ', '),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    fingerprint256: cert.fingerprint256,
    altNames: (cert.subjectAltName ?? '').split(', ').filter((n) => n !== ''),
    selfSigned: cert.checkIssued(cert) && cert.verify(cert.publicKey),
    isCa: cert.ca,
    pem: cert.toString(),
  };
}

/** The first certificate of a PEM text; throws with a readable message when there is none. */
export function readCertificate(text: string, what: string): CertificateInfo {
  const first = pemCertificates(text)[0];
  if (!first) throw new Error(`${what} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  try {
    return describeCertificate(new X509Certificate(first));
  } catch (error) {
    throw new Error(`${what}: not a readable certificate (${(error as Error).message})`);
  }
}

/** Whether the certificate is valid for `host` as verify-full checks it (an IP against IP SANs, a name against DNS SANs). */
export function certificateCovers(pem: string, host: string): boolean {
  const cert = new X509Certificate(pem);
  return net.isIP(host) ? cert.checkIP(host) !== undefined : cert.checkHost(host) !== undefined;
}

/** Whether `leafPem` was signed by the CA `caPem`. */
export function signedBy(leafPem: string, caPem: string): boolean {
  const leaf = new X509Certificate(leafPem);
  const ca = new X509Certificate(caPem);
  return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
}

/** Days from `now` until the certificate expires (negative once it has). */
export function daysLeft(info: Pick<CertificateInfo, 'notAfter'>, now = new Date()): number {
  return Math.floor((info.notAfter.getTime() - now.getTime()) / 86_400_000);
}

/** Debian's self-signed default ("snakeoil"), which verifies nothing: knocker replaces it. */
export const SNAKEOIL_CERT = '/etc/ssl/certs/ssl-cert-snakeoil.pem';

export async function isSnakeoil(certFile: string, pem: string): Promise<boolean> {
  if (path.basename(certFile).includes('snakeoil')) return true;
  const snakeoil = await fs.readFile(SNAKEOIL_CERT, 'utf8').catch(() => undefined);
  return snakeoil !== undefined && pemCertificates(snakeoil)[0]?.replace(/\s/g, '') === pemCertificates(pem)[0]?.replace(/\s/g, '');
}

export interface CaFiles {
  keyFile: string;
  certFile: string;
}

/** A subject's common name: what openssl's -subj takes without escaping (no "/" or "="). */
function commonName(text: string): string {
  return text.replace(/[^A-Za-z0-9 ._()-]/g, '-').slice(0, 64);
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A folder of its own (0700) beside the final files, for openssl to write into; removed afterwards. */
async function workFolder(dir: string): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  return fs.mkdtemp(path.join(dir, '.knocker-tls-'));
}

/** Moves a finished file into place (same file system: rename is atomic) with its mode and owner. */
async function place(from: string, to: string, mode: number, owner?: { uid: number; gid: number }): Promise<void> {
  await fs.chmod(from, mode);
  if (owner) await fs.chown(from, owner.uid, owner.gid);
  await fs.rename(from, to);
}

/** Makes a new CA (EC P-256, 10 years) into `files`; the key file is 0600. Refuses to overwrite one. */
export async function createCa(files: CaFiles, name: string, log?: Logger): Promise<CertificateInfo> {
  for (const file of [files.keyFile, files.certFile]) {
    if (await fs.stat(file).catch(() => undefined)) throw new Error(`${file} exists already: knocker never replaces a CA`);
  }
  const work = await workFolder(path.dirname(files.keyFile));
  try {
    const key = path.join(work, 'ca.key');
    const cert = path.join(work, 'ca.crt');
    await run(
      'openssl',
      [
        'req',
        '-x509',
        '-new',
        ...EC,
        '-sha256',
        '-days',
        String(CA_DAYS),
        '-subj',
        `/CN=${commonName(`Knocknoc cluster CA (${name})`)}`,
        '-addext',
        'basicConstraints=critical,CA:TRUE,pathlen:0',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { log, timeoutMs: 30_000 },
    );
    await place(key, files.keyFile, 0o600);
    await place(cert, files.certFile, 0o644);
    return readCertificate(await fs.readFile(files.certFile, 'utf8'), files.certFile);
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

export interface ServerCertificateRequest {
  ca: CaFiles;
  /** The addresses and names the nodes reach the server at: IPs and DNS names. */
  hosts: string[];
  keyFile: string;
  certFile: string;
  /** The database's OS user: PostgreSQL reads the key only when it owns it (mode 0600). */
  owner?: { uid: number; gid: number };
}

/** The subjectAltName of a server certificate for these hosts. */
export function altNamesFor(hosts: string[]): string {
  return [...new Set(hosts)].map((h) => (net.isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
}

/**
 * Issues a server certificate signed by the CA for `hosts` (EC P-256, 397 days) and puts key and
 * certificate in place, each replaced atomically (the previous ones stay until the new pair is whole).
 */
export async function issueServerCertificate(request: ServerCertificateRequest, log?: Logger): Promise<CertificateInfo> {
  if (request.hosts.length === 0) throw new Error('a server certificate needs at least one address or name');
  const work = await workFolder(path.dirname(request.certFile));
  try {
    const key = path.join(work, 'server.key');
    const csr = path.join(work, 'server.csr');
    const cert = path.join(work, 'server.crt');
    const extensions = path.join(work, 'server.ext');
    await fs.writeFile(
      extensions,
      [
        'basicConstraints = critical, CA:FALSE',
        'keyUsage = critical, digitalSignature, keyEncipherment',
        'extendedKeyUsage = serverAuth',
        `subjectAltName = ${altNamesFor(request.hosts)}`,
        'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid,issuer',
        '',
      ].join('\n'),
    );
    await run('openssl', ['req', '-new', ...EC, '-subj', `/CN=${commonName(request.hosts[0]!)}`, '-keyout', key, '-out', csr], { log, timeoutMs: 30_000 });
    await run(
      'openssl',
      [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        request.ca.certFile,
        '-CAkey',
        request.ca.keyFile,
        '-set_serial',
        `0x${randomBytes(16).toString('hex')}`,
        '-days',
        String(SERVER_DAYS),
        '-sha256',
        '-extfile',
        extensions,
        '-out',
        cert,
      ],
      { log, timeoutMs: 30_000 },
    );
    // The chain PostgreSQL presents: the server certificate, then the CA's.
    await fs.appendFile(cert, await fs.readFile(request.ca.certFile, 'utf8'));
    await place(key, request.keyFile, 0o600, request.owner);
    await place(cert, request.certFile, 0o644, request.owner);
    return readCertificate(await fs.readFile(request.certFile, 'utf8'), request.certFile);
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
