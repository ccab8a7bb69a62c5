// TLS between the hosts: what certificate the primary's PostgreSQL presents, and the plan step that
// makes it one the other web nodes verify (sslmode=verify-full). Where PostgreSQL has no
// certificate of its own (none, or Debian's snakeoil), knocker keeps a CA for the cluster
// (PATHS.clusterCa*, key 0600, outside the data directory) and issues the server a certificate for
// the addresses and name the nodes reach it at. A certificate the operator put in place is kept.
// ssl and its files are reloadable (PostgreSQL ≥ 10): no restart.
import fs from 'node:fs/promises';
import path from 'node:path';
import { executeQuoted, type AdminLink, type AdminSession } from '../postgres/admin.js';
import {
  certificateCovers,
  createCa,
  isSnakeoil,
  issueServerCertificate,
  pemCertificates,
  readCertificate,
  signedBy,
  type CaFiles,
  type CertificateInfo,
} from '../postgres/certificates.js';
import { reloadConfig } from '../postgres/hba.js';
import { probeTls } from '../postgres/tls-probe.js';
import { backupPath, readIfExists } from '../system/files.js';
import type { Logger } from '../system/log.js';
import type { Step } from '../system/plan.js';
import { PATHS, type Root } from '../system/root.js';
import { run } from '../system/run.js';
import { lookupUser } from '../system/users.js';
import { startConfig, type StartFiles } from '../postgres/listen.js';
import { waitForOrUndefined } from '../system/wait.js';

const SETTINGS = ['ssl', 'ssl_cert_file', 'ssl_key_file'] as const;
type TlsSetting = (typeof SETTINGS)[number];

export interface TlsFacts {
  ssl: boolean;
  /** Absolute paths (PostgreSQL takes relative ones from its data directory). */
  certFile: string;
  keyFile: string;
  /** Where each setting comes from now ("configuration file", "command line", …). */
  sources: Record<TlsSetting, string>;
  /** Their values in postgresql.auto.conf (ALTER SYSTEM), to put back on undo. */
  autoConf: Partial<Record<TlsSetting, string>>;
}

export async function readTlsFacts(session: AdminSession, dataDirectory: string): Promise<TlsFacts> {
  const settings = await session.query<{ name: TlsSetting; setting: string; source: string }>(
    `SELECT name, setting, source FROM pg_settings WHERE name = ANY($1::text[])`,
    [[...SETTINGS]],
  );
  const auto = await session.query<{ name: TlsSetting; setting: string }>(
    `SELECT DISTINCT ON (name) name, setting FROM pg_file_settings
      WHERE name = ANY($1::text[]) AND sourcefile LIKE '%/postgresql.auto.conf' ORDER BY name, seqno DESC`,
    [[...SETTINGS]],
  );
  const value = (name: TlsSetting) => settings.rows.find((r) => r.name === name);
  const absolute = (file: string) => path.resolve(dataDirectory, file);
  return {
    ssl: value('ssl')?.setting === 'on',
    certFile: absolute(value('ssl_cert_file')?.setting ?? 'server.crt'),
    keyFile: absolute(value('ssl_key_file')?.setting ?? 'server.key'),
    sources: Object.fromEntries(SETTINGS.map((n) => [n, value(n)?.source ?? 'default'])) as Record<TlsSetting, string>,
    autoConf: Object.fromEntries(auto.rows.map((r) => [r.name, r.setting])),
  };
}

export interface TlsFiles {
  ca: CaFiles;
  caDir: string;
  dir: string;
  cert: string;
  key: string;
}

export function tlsFiles(root: Root): TlsFiles {
  return {
    ca: { keyFile: root.path(PATHS.clusterCaKey), certFile: root.path(PATHS.clusterCaCert) },
    caDir: root.path(PATHS.clusterCaDir),
    dir: root.path(PATHS.pgTlsDir),
    cert: root.path(PATHS.pgTlsCert),
    key: root.path(PATHS.pgTlsKey),
  };
}

/** What the nodes verify the primary with. */
export type NodeCa = { file: string; pem: string } | { unknown: string };

export type TlsChoice =
  | {
      /** A certificate the operator put in place: kept as it is; ssl turned on if it is off. */
      kind: 'operator';
      certificate: CertificateInfo;
      certFile: string;
      turnOn: boolean;
      nodeCa: NodeCa;
      /** The printed host the certificate does not cover (verify-full would fail). */
      uncovered: string[];
    }
  | {
      /** knocker's own CA and certificate: made or renewed as needed. */
      kind: 'knocker';
      createCa: boolean;
      /** Why a new server certificate is issued, if one is. */
      issue: string | undefined;
      hosts: string[];
      /** ssl, ssl_cert_file and ssl_key_file need setting. */
      configure: boolean;
      /** What PostgreSQL presents now, when it is knocker's certificate. */
      current: CertificateInfo | undefined;
      /** Why the certificate in place is replaced (snakeoil, none). */
      replacing: string | undefined;
    };

/** The CA the nodes can verify an operator's certificate with: itself when self-signed, else the root at the end of its chain. */
function operatorCa(certFile: string, text: string): NodeCa {
  const chain = pemCertificates(text);
  const last = chain.length > 0 ? readCertificate(chain[chain.length - 1]!, certFile) : undefined;
  if (last?.selfSigned) return { file: certFile, pem: last.pem };
  const leaf = readCertificate(text, certFile);
  return { unknown: leaf.issuer };
}

/** Hosts a server certificate must cover, with the existing certificate's kept (nodes may use any). */
function mergedHosts(current: CertificateInfo | undefined, wanted: string[]): string[] {
  const existing = (current?.altNames ?? []).map((n) => n.replace(/^(IP Address|DNS):/, ''));
  return [...new Set([...wanted, ...existing])];
}

/**
 * Decides what --init does for TLS, from what PostgreSQL presents now and knocker's files.
 * `hosts`: the printed host first, then this host's other addresses and its name.
 */
export async function chooseTls(facts: TlsFacts, files: TlsFiles, hosts: string[]): Promise<TlsChoice> {
  const inPlace = await readIfExists(facts.certFile);
  const snakeoil = inPlace !== undefined && (await isSnakeoil(facts.certFile, inPlace));
  const keyInPlace = (await readIfExists(facts.keyFile)) !== undefined;
  if (inPlace !== undefined && facts.certFile !== files.cert && !snakeoil && keyInPlace) {
    const certificate = readCertificate(inPlace, facts.certFile);
    const printed = hosts[0]!;
    return {
      kind: 'operator',
      certificate,
      certFile: facts.certFile,
      turnOn: !facts.ssl,
      nodeCa: operatorCa(facts.certFile, inPlace),
      uncovered: certificateCovers(certificate.pem, printed) ? [] : [printed],
    };
  }
  const caText = await readIfExists(files.ca.certFile);
  const hasCa = caText !== undefined && (await readIfExists(files.ca.keyFile)) !== undefined;
  const mine = await readIfExists(files.cert);
  const existing = mine !== undefined ? readCertificate(mine, files.cert) : undefined;
  const valid = hasCa && existing !== undefined && signedBy(existing.pem, caText);
  const uncovered = existing ? hosts.filter((h) => !certificateCovers(existing.pem, h)) : hosts;
  let issue: string | undefined;
  if (!hasCa) issue = 'the cluster has no CA yet';
  else if (!existing) issue = 'none yet';
  else if (!valid) issue = 'the one in place is not signed by the cluster CA';
  else if (uncovered.length > 0) issue = `the one in place does not name ${uncovered.join(', ')}`;
  else if (existing.notAfter.getTime() < Date.now()) issue = 'the one in place has expired';
  const presentsOurs = facts.certFile === files.cert && existing !== undefined;
  return {
    kind: 'knocker',
    createCa: !hasCa,
    issue,
    // A new certificate keeps the names of the one it replaces: nodes may use any of them.
    hosts: issue && valid ? mergedHosts(existing, hosts) : hosts,
    configure: !facts.ssl || facts.certFile !== files.cert || facts.keyFile !== files.key,
    current: presentsOurs ? existing : undefined,
    replacing: presentsOurs
      ? undefined
      : inPlace === undefined
        ? 'none'
        : snakeoil
          ? "Debian's self-signed snakeoil certificate"
          : `${facts.certFile} (its key ${facts.keyFile} is missing)`,
  };
}

/** A setting that ALTER SYSTEM cannot override (the server's command line) makes knocker's certificate impossible to put in place. */
export function commandLineSettings(facts: TlsFacts): TlsSetting[] {
  return SETTINGS.filter((n) => facts.sources[n] === 'command line');
}

export interface TlsContext {
  link: AdminLink;
  log: Logger;
  files: TlsFiles;
  facts: TlsFacts;
  start: StartFiles;
  /** Where to ask the server for its certificate (this host's address of the cluster). */
  /** This host's addresses of the cluster, tried in order (it may listen on some of them only). */
  probeAt: { hosts: string[]; port: number };
  /** The CA's name: "Knocknoc cluster CA (NAME)". */
  caName: string;
}

/** Waits (at most `ms`) until the server presents the certificate with this fingerprint. */
export async function waitForCertificate(at: { hosts: string[]; port: number }, fingerprint: string, ca: string, ms = 10_000): Promise<void> {
  let seen = 'no answer';
  const presented = await waitForOrUndefined(
    'PostgreSQL to present the new certificate',
    async () => {
      for (const host of at.hosts) {
        const probe = await probeTls(host, at.port, { ca, timeoutMs: 2_000 }).catch((error: Error) => error);
        if (probe instanceof Error) {
          seen = `${host}: ${probe.message}`;
          continue;
        }
        if (probe.offered && probe.certificate.fingerprint256 === fingerprint && probe.chainVerified) return true;
        seen = !probe.offered
          ? 'no TLS'
          : probe.certificate.fingerprint256 !== fingerprint
            ? `another certificate, ${probe.certificate.subject} (SHA-256 ${probe.certificate.fingerprint256.slice(0, 23)}…)`
            : `the new certificate, but it does not verify with the cluster's CA: ${probe.chainError ?? 'unverified'}`;
        break;
      }
      return undefined;
    },
    { timeoutMs: ms },
  );
  if (!presented) throw new Error(`PostgreSQL did not present the new certificate after the reload (it presents: ${seen})`);
}

/** The key PostgreSQL will read matches the certificate, as the database's OS user reads them (a start that would fail is refused first). */
export async function checkKeyPair(certFile: string, keyFile: string, osUser: string, log: Logger): Promise<void> {
  const fromKey = await run('openssl', ['pkey', '-in', keyFile, '-pubout'], { asUser: osUser, log, allowFailure: true, timeoutMs: 30_000 });
  if (fromKey.exitCode !== 0) throw new Error(`${osUser} cannot read the private key ${keyFile}: ${fromKey.stderr.trim().split('\n')[0] ?? ''}`);
  const fromCert = await run('openssl', ['x509', '-in', certFile, '-noout', '-pubkey'], { asUser: osUser, log, allowFailure: true, timeoutMs: 30_000 });
  if (fromCert.exitCode !== 0) throw new Error(`${osUser} cannot read the certificate ${certFile}`);
  if (fromKey.stdout.trim() !== fromCert.stdout.trim()) throw new Error(`the private key ${keyFile} does not belong to the certificate ${certFile}`);
}

async function setSettings(session: AdminSession, values: Partial<Record<TlsSetting, string | undefined>>): Promise<void> {
  for (const [name, value] of Object.entries(values)) {
    if (value === undefined) await executeQuoted(session, 'ALTER SYSTEM RESET %I', [name]);
    else await executeQuoted(session, 'ALTER SYSTEM SET %I = %L', [name, value]);
  }
}

/** Creates a folder (and its parents); returns how to remove what it created, once empty again. */
async function makeDir(dir: string, mode: number): Promise<() => Promise<void>> {
  // Parents traversable (0755, as /var/lib is); the folder itself with its own mode.
  const parent = await fs.mkdir(path.dirname(dir), { recursive: true, mode: 0o755 });
  const made = await fs.mkdir(dir, { mode }).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'EEXIST') return false;
      throw error;
    },
  );
  const first = parent ?? (made ? dir : undefined);
  if (first === undefined) return async () => {};
  return async () => {
    // Innermost first, each only when empty (rmdir refuses otherwise).
    for (let d = dir; d.length >= first.length; d = path.dirname(d)) await fs.rmdir(d).catch(() => {});
  };
}

/** Moves a file aside (kept as `<file>.bak`, its mode and owner unchanged) so an undo can put it back; returns whether there was one. */
async function setAside(file: string): Promise<boolean> {
  return fs.rename(file, backupPath(file)).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return false;
      throw error;
    },
  );
}

async function restoreAside(file: string, had: boolean): Promise<void> {
  if (had) await fs.rename(backupPath(file), file);
  else await fs.rm(file, { force: true });
}

/** Issues knocker's server certificate (files set aside first); returns an undo for the files. */
async function issueInto(ctx: TlsContext, hosts: string[]): Promise<{ certificate: CertificateInfo; undo: () => Promise<void> }> {
  const owner = await lookupUser(ctx.start.osUser);
  const removeDir = await makeDir(ctx.files.dir, 0o700);
  if (owner) await fs.chown(ctx.files.dir, owner.uid, owner.gid);
  const hadCert = await setAside(ctx.files.cert);
  const hadKey = await setAside(ctx.files.key);
  const undo = async () => {
    await restoreAside(ctx.files.cert, hadCert);
    await restoreAside(ctx.files.key, hadKey);
    await removeDir();
  };
  try {
    const certificate = await issueServerCertificate(
      { ca: ctx.files.ca, hosts, keyFile: ctx.files.key, certFile: ctx.files.cert, ...(owner ? { owner: { uid: owner.uid, gid: owner.gid } } : {}) },
      ctx.log,
    );
    await checkKeyPair(ctx.files.cert, ctx.files.key, ctx.start.osUser, ctx.log);
    return { certificate, undo };
  } catch (error) {
    await undo();
    throw error;
  }
}

export function describeChoice(choice: TlsChoice): string[] {
  if (choice.kind === 'operator') {
    return [
      `keep the certificate in place: ${choice.certFile} (${choice.certificate.subject}, issued by ${choice.certificate.issuer}, expires ${choice.certificate.notAfter.toISOString().slice(0, 10)})`,
      ...(choice.turnOn ? ['ALTER SYSTEM SET ssl = on; SELECT pg_reload_conf() (no restart)'] : []),
    ];
  }
  return [
    ...(choice.createCa ? [`create the cluster's CA: ${PATHS.clusterCaCert} and its key ${PATHS.clusterCaKey} (0600, root only), EC P-256, 10 years`] : []),
    ...(choice.issue
      ? [
          `issue PostgreSQL a certificate for ${choice.hosts.join(', ')} (${choice.issue}), signed by the cluster's CA, 397 days: ${PATHS.pgTlsCert}, key ${PATHS.pgTlsKey} (0600)`,
        ]
      : []),
    ...(choice.replacing && choice.replacing !== 'none' ? [`instead of ${choice.replacing}, which verifies nothing`] : []),
    ...(choice.configure ? [`ALTER SYSTEM SET ssl = on, ssl_cert_file, ssl_key_file; SELECT pg_reload_conf() (no restart)`] : []),
  ];
}

export function tlsChanges(choice: TlsChoice): boolean {
  return choice.kind === 'operator' ? choice.turnOn : choice.createCa || choice.issue !== undefined || choice.configure;
}

/** The plan step: the CA, the server certificate, ssl on; confirmed by asking the server for its certificate after the reload. */
export function tlsStep(ctx: TlsContext, choice: TlsChoice, onReady: (certificate: CertificateInfo) => void): Step {
  const undos: Array<() => Promise<void>> = [];
  return {
    kind: 'service',
    title:
      choice.kind === 'operator'
        ? `PostgreSQL TLS: the certificate in place${choice.turnOn ? ', ssl on' : ''}`
        : `PostgreSQL TLS: a certificate the other nodes verify (verify-full), from the cluster's CA${choice.configure ? ', ssl on' : ''}`,
    details: describeChoice(choice),
    changes: tlsChanges(choice),
    async apply() {
      const session = await ctx.link.session();
      if (choice.kind === 'operator') {
        if (!choice.turnOn) return undefined;
        await setSettings(session, { ssl: 'on' });
        undos.unshift(() => ctx.link.session().then((s) => setSettings(s, { ssl: ctx.facts.autoConf.ssl })));
        await checkStart(ctx);
        await reloadConfig(session);
        onReady(choice.certificate);
        return 'ssl on, reloaded (no restart)';
      }
      if (choice.createCa) {
        const removeDir = await makeDir(ctx.files.caDir, 0o755);
        // A half CA (one of its two files) is not a CA: made again whole.
        await Promise.all([fs.rm(ctx.files.ca.keyFile, { force: true }), fs.rm(ctx.files.ca.certFile, { force: true })]);
        undos.unshift(async () => {
          await fs.rm(ctx.files.ca.keyFile, { force: true });
          await fs.rm(ctx.files.ca.certFile, { force: true });
          await removeDir();
        });
        await createCa(ctx.files.ca, ctx.caName, ctx.log);
      }
      let certificate = choice.current;
      if (choice.issue) {
        const issued = await issueInto(ctx, choice.hosts);
        certificate = issued.certificate;
        undos.unshift(issued.undo);
      }
      if (choice.configure) {
        await setSettings(session, { ssl: 'on', ssl_cert_file: ctx.files.cert, ssl_key_file: ctx.files.key });
        undos.unshift(() =>
          ctx.link
            .session()
            .then((s) =>
              setSettings(s, { ssl: ctx.facts.autoConf.ssl, ssl_cert_file: ctx.facts.autoConf.ssl_cert_file, ssl_key_file: ctx.facts.autoConf.ssl_key_file }),
            ),
        );
        await checkStart(ctx);
      }
      await reloadConfig(session);
      undos.push(() => ctx.link.session().then(reloadConfig));
      const ca = await fs.readFile(ctx.files.ca.certFile, 'utf8');
      if (!certificate) certificate = readCertificate(await fs.readFile(ctx.files.cert, 'utf8'), ctx.files.cert);
      await waitForCertificate(ctx.probeAt, certificate.fingerprint256, ca);
      onReady(certificate);
      return `PostgreSQL presents it (verified with the cluster's CA), reloaded without a restart`;
    },
    async undo() {
      for (const action of undos.splice(0)) await action();
    },
  };
}

/** A restart must still work with the new settings: PostgreSQL parses its files as a start would. */
async function checkStart(ctx: TlsContext): Promise<void> {
  const config = await startConfig(ctx.start, ctx.log);
  if (!config.ok) throw new Error(`PostgreSQL would not start again with these settings (${config.problem}); they were not applied`);
}

/** `--renew-cert`: a new server certificate from the same CA for the same hosts, reloaded (no restart). */
export function renewStep(ctx: TlsContext, current: CertificateInfo, hosts: string[], onReady: (certificate: CertificateInfo) => void): Step {
  let undo: (() => Promise<void>) | undefined;
  return {
    kind: 'service',
    title: `PostgreSQL TLS: renew the server certificate (expires ${current.notAfter.toISOString().slice(0, 10)}) from the cluster's CA, reload without a restart`,
    details: [
      `issue a certificate for ${hosts.join(', ')}, 397 days: ${PATHS.pgTlsCert}, key ${PATHS.pgTlsKey} (0600)`,
      'SELECT pg_reload_conf() (open connections keep their session)',
    ],
    changes: true,
    async apply() {
      const issued = await issueInto(ctx, hosts);
      undo = async () => {
        await issued.undo();
        await reloadConfig(await ctx.link.session());
      };
      await reloadConfig(await ctx.link.session());
      await waitForCertificate(ctx.probeAt, issued.certificate.fingerprint256, await fs.readFile(ctx.files.ca.certFile, 'utf8'));
      onReady(issued.certificate);
      return `expires ${issued.certificate.notAfter.toISOString().slice(0, 10)}`;
    },
    async undo() {
      await undo?.();
      undo = undefined;
    },
  };
}
