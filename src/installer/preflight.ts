// Preflight: everything the install needs is checked before anything changes: the listen port is
// free, PostgreSQL binaries are present (or installable on a real host), the database answers and
// has the privileges the option needs. All failures are reported together (exit 3).
import fs from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import type { KnocknocConf } from '../config/knocknoc-conf.js';
import { formatListen, parseListen, type ListenAddress } from '../config/values.js';
import type { HaproxySettings } from '../haproxy/config.js';
import { haproxyChecks, inspectHaproxy, settingsFromAnswers, type HaproxyFacts } from '../haproxy/plan.js';
import { PreflightError } from '../errors.js';
import { clusterExists, clusterOwner, clusterRunning, findPgBinaries, readClusterSettings, waitUntilReady, MAX_SOCKET_DIR_LENGTH, type PgBinaries } from '../postgres/cluster.js';
import { connectSelecting, describeConnectError, isEncrypted, sourceAddressFor, type ConnectOptions } from '../postgres/connect.js';
import { findSystemClusters, pickCluster, type SystemCluster } from '../postgres/system-cluster.js';
import { pemCertificates, readCertificate } from '../postgres/certificates.js';
import { atHost, formatHostPort, parseDatabaseUrl, withRootCert, type DatabaseUrl, type HostPort } from '../postgres/url.js';
import { databaseSchemaVersion, type Release } from '../schema/index.js';
import { OFFLINE_AFTER_HEARTBEATS, onlineSql } from '../server/registry.js';
import { freePort, packageManagerFor, probeListen, readOsRelease, type PackageManager } from '../system/host.js';
import type { Logger } from '../system/log.js';
import { PATHS, type Root } from '../system/root.js';
import { which } from '../system/run.js';
import { isRoot, lookupUser } from '../system/users.js';
import type { HaproxyAnswers } from '../haproxy/config.js';
import type { Answers } from './answers.js';
import { PreflightFailed, type Check } from '../shared/checks.js';

/** Option 1 under a root: the private cluster in the root. */
export interface PrivateClusterFacts {
  kind: 'private';
  bin: PgBinaries;
  osUser: string;
  exists: boolean;
  /** A cluster an earlier, cut-off run began to create: discarded and made again. */
  halfMade: boolean;
  running: boolean;
  host: string;
  port: number;
}

/** Option 1 on a real host: the host's PostgreSQL. */
export interface HostClusterFacts {
  kind: 'host';
  /** Set when PostgreSQL must be installed first. */
  install: PackageManager | undefined;
  layout: 'debian' | 'rhel';
  cluster: SystemCluster | undefined;
}

/** Options 2 and 3: the database behind the connection string. */
export interface ExternalFacts {
  kind: 'external';
  url: DatabaseUrl;
  /** The DatabaseURL knocknoc.conf will hold: the one given, its sslrootcert pointing at knocker's copy of the CA. */
  databaseUrl: string;
  /** The CA to copy to PATHS.databaseCa, when one was given. */
  ca: string | undefined;
  serverVersion: string;
  schemaVersion: number | undefined;
}

export interface PreflightReport {
  checks: Check[];
  listen: ListenAddress;
  database: PrivateClusterFacts | HostClusterFacts | ExternalFacts;
  /** The answers' haproxy section: what HAProxy is to become, and how it is now. */
  haproxy?: { settings: HaproxySettings; facts: HaproxyFacts };
  warnings: string[];
}

export interface PreflightContext {
  root: Root;
  log: Logger;
  release: Release;
  existingConf: KnocknocConf | undefined;
}

/** The address the node's host has in a sandbox: its specific loopback listen address, else 127.0.0.1. */
export function sandboxHostAddress(listen: ListenAddress): string {
  return listen.family === 4 && listen.host.startsWith('127.') ? listen.host : '127.0.0.1';
}

export function connectOptionsFor(listen: ListenAddress, url: DatabaseUrl): ConnectOptions {
  return { sourceAddress: sourceAddressFor(listen.host, url.host), connectTimeoutMs: 8_000 };
}

async function checkListen(answers: Answers, listen: ListenAddress, ctx: PreflightContext): Promise<Check> {
  const name = `listen address ${answers.listen}`;
  // The port of an existing installation with the same Listen belongs to it.
  if (ctx.existingConf?.get('Listen') === answers.listen) return { name, ok: true, detail: 'kept from the existing installation' };
  const probe = await probeListen(listen.host, listen.port);
  if (probe.free) return { name, ok: true, detail: 'free' };
  const why: Record<string, string> = {
    EADDRINUSE: `port ${listen.port} is already in use on ${listen.host}`,
    EADDRNOTAVAIL: `${listen.host} is not an address of this host`,
    EACCES: `binding port ${listen.port} needs root`,
  };
  return {
    name,
    ok: false,
    detail: why[probe.code] ?? `cannot listen there (${probe.code})`,
    hints: probe.code === 'EADDRINUSE' ? ['choose another port, or stop what listens there (ss -ltnp shows it)'] : [],
  };
}

/** The first existing folder on the way to `dir` that `osUser` may not enter, if any. */
async function untraversableFolder(dir: string, osUser: string): Promise<string | undefined> {
  const user = await lookupUser(osUser);
  if (!user || user.uid === 0) return undefined;
  const folders: string[] = [];
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    folders.unshift(d);
    if (d === path.dirname(d)) break;
  }
  for (const folder of folders) {
    const stat = await fs.stat(folder).catch(() => undefined);
    if (!stat) return undefined;
    const allowed = stat.uid === user.uid ? stat.mode & 0o100 : stat.gid === user.gid ? stat.mode & 0o010 : stat.mode & 0o001;
    if (!allowed) return folder;
  }
  return undefined;
}

async function privateClusterFacts(listen: ListenAddress, ctx: PreflightContext, checks: Check[]): Promise<PrivateClusterFacts | undefined> {
  const bin = await findPgBinaries();
  if (!bin) {
    checks.push({
      name: 'PostgreSQL server binaries',
      ok: false,
      detail: 'not found (initdb, pg_ctl)',
      hints: ['install them with the package manager, e.g. apt-get install postgresql (a sandbox root never installs packages)'],
    });
    return undefined;
  }
  checks.push({ name: 'PostgreSQL server binaries', ok: true, detail: `PostgreSQL ${bin.version} in ${bin.dir}` });
  const osUser = await clusterOwner();
  if (isRoot() && !(await lookupUser(osUser))) {
    checks.push({ name: `OS user ${osUser}`, ok: false, detail: 'missing; PostgreSQL must not run as root', hints: ['install the postgresql package, which creates it'] });
    return undefined;
  }
  const blocked = await untraversableFolder(ctx.root.dir, osUser);
  if (blocked) {
    checks.push({
      name: 'root folder permissions',
      ok: false,
      detail: `${blocked} cannot be entered by the ${osUser} user, which runs the private cluster`,
      hints: [`allow it with: chmod o+x ${blocked}`, 'or choose a --root folder others can enter'],
    });
    return undefined;
  }
  const socketDir = ctx.root.path(PATHS.pgSocketDir);
  if (socketDir.length > MAX_SOCKET_DIR_LENGTH) {
    checks.push({ name: 'socket folder', ok: false, detail: `${socketDir} is too long for a Unix socket`, hints: ['use a shorter --root path'] });
    return undefined;
  }
  const dataDir = ctx.root.path(PATHS.pgData);
  // A cluster an earlier run began to create and was cut off from (its marker is still there) is
  // knocker's own: it is made again, never refused as foreign.
  const halfMade = await fs.access(ctx.root.path(PATHS.pgCreating)).then(() => true, () => false);
  const exists = !halfMade && (await clusterExists(dataDir));
  const settings = exists ? await readClusterSettings(dataDir) : undefined;
  const foreign = !halfMade && !exists && (await fs.readdir(dataDir).then((entries) => entries.length > 0, () => false));
  if ((exists && !settings) || foreign) {
    checks.push({ name: 'private cluster', ok: false, detail: `${dataDir} holds ${foreign ? 'files but no cluster' : 'a cluster'} knocker did not create`, hints: ['move it away, or use option 2 with a connection string'] });
    return undefined;
  }
  const host = settings?.host ?? sandboxHostAddress(listen);
  // A cluster a cut-off run was starting may still be on its way up: it counts once it is ready.
  const running = exists && (await clusterRunning({ bin, dataDir, osUser })) ? await waitUntilReady(dataDir) : false;
  // Before the cluster exists, the port knocknoc.conf was given for it (by a run cut off before
  // initdb) is kept while it is free: the file is not rewritten by every run.
  const planned = ctx.existingConf?.get('DatabaseOption') === '1' ? parseDatabaseUrl(ctx.existingConf.get('DatabaseURL') ?? '') : undefined;
  const plannedPort = !exists && planned?.ok && planned.value.host === host && (await probeListen(host, planned.value.port)).free ? planned.value.port : undefined;
  let port = settings?.port ?? plannedPort;
  if (port === undefined) {
    port = await freePort(host);
  } else if (!running && port !== plannedPort) {
    const probe = await probeListen(host, port);
    if (!probe.free) {
      checks.push({ name: 'private cluster port', ok: false, detail: `port ${port} on ${host} is taken by something else`, hints: ['free it, then run this again'] });
      return undefined;
    }
  }
  checks.push({
    name: 'private cluster',
    ok: true,
    detail: exists
      ? `${dataDir} (${running ? 'running' : 'stopped'}, ${host}:${port})`
      : `will be ${halfMade ? 'made again (an earlier run was cut off while creating it)' : 'created'} in ${dataDir} on ${host}:${port}`,
  });
  return { kind: 'private', bin, osUser, exists, halfMade, running, host, port };
}

async function hostClusterFacts(checks: Check[], log: Logger): Promise<HostClusterFacts | undefined> {
  if (!isRoot()) {
    checks.push({ name: 'privileges', ok: false, detail: 'installing on this host needs root', hints: ['run it with sudo, or use --root DIR for a sandbox'] });
    return undefined;
  }
  const osRelease = await readOsRelease();
  const manager = packageManagerFor(osRelease);
  const layout = (await which('pg_lsclusters')) || manager === 'apt-get' ? 'debian' : 'rhel';
  const bin = await findPgBinaries();
  if (!bin) {
    if (!manager || !(await which(manager))) {
      checks.push({
        name: 'PostgreSQL',
        ok: false,
        detail: `not installed, and no supported package manager on ${osRelease?.prettyName ?? 'this host'}`,
        hints: ['install PostgreSQL by hand, or use option 2 with an existing server'],
      });
      return undefined;
    }
    checks.push({ name: 'PostgreSQL', ok: true, detail: `not installed yet; will be installed with ${manager}` });
    return { kind: 'host', install: manager, layout, cluster: undefined };
  }
  const cluster = pickCluster(await findSystemClusters(log));
  checks.push({
    name: 'PostgreSQL',
    ok: true,
    detail: cluster ? `cluster ${cluster.label} on port ${cluster.port} (${cluster.running ? 'running' : 'stopped'})` : `PostgreSQL ${bin.version} installed, no cluster yet (one will be created)`,
  });
  return { kind: 'host', install: undefined, layout, cluster };
}

/** Largest CA file read (a CA bundle is a few kilobytes). */
const MAX_CA_BYTES = 1024 * 1024;

/** The CA given (a file or PEM text), checked: at least one certificate, every one readable. */
async function readCa(source: string): Promise<{ pem: string; detail: string }> {
  let pem = source;
  if (!source.startsWith('-----BEGIN')) {
    const stat = await fs.stat(source).catch((error: NodeJS.ErrnoException) => {
      throw new Error(`cannot read ${source}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
    });
    if (!stat.isFile()) throw new Error(`${source} is not a regular file`);
    if (stat.size > MAX_CA_BYTES) throw new Error(`${source} is ${stat.size} bytes: too large for a CA certificate file`);
    pem = await fs.readFile(source, 'utf8');
  }
  const certificates = pemCertificates(pem);
  const first = readCertificate(pem, source.startsWith('-----BEGIN') ? 'the CA given' : source);
  for (const other of certificates.slice(1)) readCertificate(other, source);
  const expires = first.notAfter.toISOString().slice(0, 10);
  return {
    pem: `${certificates.join('\n')}\n`,
    detail: `${first.subject}${certificates.length > 1 ? ` (+${certificates.length - 1} more)` : ''}, expires ${expires}${source.startsWith('-----BEGIN') ? '' : ` (${source})`}`,
  };
}

/** What a working connection says about its TLS: what verify-full, verify-ca or the rest checked. */
function tlsDetail(client: pg.Client, url: DatabaseUrl): string {
  if (!isEncrypted(client)) return 'not encrypted (no TLS)';
  const verifies = url.sslmode === 'verify-full' ? 'full' : url.sslmode === 'verify-ca' || (url.sslmode === 'require' && url.sslrootcert) ? 'ca' : 'none';
  if (verifies === 'full') return `TLS, certificate verified for ${url.host}`;
  if (verifies === 'ca') return `TLS, certificate's CA verified (not the host name: sslmode=${url.sslmode})`;
  return `TLS, certificate not verified (sslmode=${url.sslmode}: another server answering on ${url.host} would not be noticed)`;
}

/**
 * A DatabaseURL listing several hosts (libpq's multi-host form): each host asked on its own, so the
 * operator sees which is the primary and which are standbys before anything is written. It must
 * ask for a read-write server (the node writes), exactly one host may be one, and a standby may be
 * down (a warning: the node uses the primary, and reaches the standby once it is promoted).
 */
async function checkHostList(url: DatabaseUrl, options: ConnectOptions, ctx: PreflightContext, checks: Check[], warnings: string[]): Promise<boolean> {
  if (url.targetSessionAttrs !== 'read-write' && url.targetSessionAttrs !== 'primary') {
    checks.push({
      name: 'connection string',
      ok: false,
      detail: `it lists ${url.hosts.length} hosts with target_session_attrs=${url.targetSessionAttrs}: a web node writes, and could settle on a standby`,
      hints: ['add target_session_attrs=read-write (libpq tries the hosts in order and takes the first read-write one), e.g. postgres://USER:PASSWORD@HOST1:5432,HOST2:5432/DATABASE?target_session_attrs=read-write'],
    });
    return false;
  }
  const primaries: HostPort[] = [];
  const down: Array<{ at: HostPort; message: string; hints: string[] }> = [];
  for (const at of url.hosts) {
    const one = { ...atHost(url, at), targetSessionAttrs: 'any' as const };
    const name = `database host ${formatHostPort(at)}`;
    try {
      const { client } = await connectSelecting(one, options);
      try {
        const row = (await client.query<{ standby: boolean; read_only: string; version: string }>(
          `SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') AS read_only, current_setting('server_version') AS version`,
        )).rows[0]!;
        if (!row.standby && row.read_only === 'off') primaries.push(at);
        const role = row.standby ? 'standby (in recovery, read-only)' : row.read_only === 'on' ? 'read-only (default_transaction_read_only: a fenced primary?)' : 'primary (read-write)';
        checks.push({ name, ok: true, detail: `${role}, PostgreSQL ${row.version}` });
      } finally {
        await client.end().catch(() => {});
      }
    } catch (error) {
      const problem = describeConnectError(error, one);
      ctx.log.warn(`connect to ${formatHostPort(at)} failed: ${problem.reason}`);
      // A refused login is the same on every host: it is the string that is wrong.
      if (problem.reason === 'bad-password' || problem.reason === 'no-database' || problem.reason === 'tls' || problem.reason === 'not-allowed') {
        checks.push({ name, ok: false, detail: problem.message, hints: problem.hints });
        return false;
      }
      down.push({ at, message: problem.message, hints: problem.hints });
    }
  }
  if (primaries.length > 1) {
    checks.push({
      name: 'database hosts',
      ok: false,
      detail: `${primaries.map(formatHostPort).join(' and ')} are all read-write primaries: the list must name one primary and its standbys (two primaries hold two different databases)`,
      hints: ['stop or fence the one that is no longer the primary, or correct the host list'],
    });
    return false;
  }
  if (primaries.length === 0) {
    const first = down[0];
    checks.push({
      name: 'database hosts',
      ok: false,
      detail: `no host of the list is a read-write primary${down.length ? ` (${down.map((d) => d.message).join('; ')})` : ''}`,
      hints: first ? first.hints : ['promote the standby, or start the primary, then run this again'],
    });
    return false;
  }
  for (const d of down) {
    checks.push({ name: `database host ${formatHostPort(d.at)}`, ok: true, detail: `not answering now (${d.message})` });
    warnings.push(`database host ${formatHostPort(d.at)} of DatabaseURL does not answer now (${d.message}); the node uses ${formatHostPort(primaries[0]!)} and tries it again when the primary changes`);
  }
  return true;
}

async function externalFacts(answers: Answers, listen: ListenAddress, ctx: PreflightContext, checks: Check[], warnings: string[]): Promise<ExternalFacts | undefined> {
  const given = parseDatabaseUrl(answers.databaseUrl ?? '');
  if (!given.ok) {
    checks.push({ name: 'connection string', ok: false, detail: given.error });
    return undefined;
  }
  // A CA given (or named by sslrootcert) is copied beside knocknoc.conf; DatabaseURL names the copy.
  const copy = ctx.root.path(PATHS.databaseCa);
  const caSource = answers.databaseCa ?? (given.value.sslrootcert !== undefined && given.value.sslrootcert !== copy ? given.value.sslrootcert : undefined);
  let ca: string | undefined;
  if (caSource !== undefined) {
    try {
      const read = await readCa(caSource);
      ca = read.pem;
      checks.push({ name: 'database CA', ok: true, detail: read.detail });
    } catch (error) {
      checks.push({ name: 'database CA', ok: false, detail: (error as Error).message, hints: ['give the CA certificate file (PEM) that `knocker exposedb --init` names on the primary: --database-ca FILE'] });
      return undefined;
    }
  }
  const databaseUrl = ca ? withRootCert(answers.databaseUrl!, copy) : answers.databaseUrl!;
  const url = ca ? (parseDatabaseUrl(databaseUrl) as { ok: true; value: DatabaseUrl }).value : given.value;
  const options = { ...connectOptionsFor(listen, url), ...(ca ? { ca } : {}) };
  if (url.hosts.length > 1 && !(await checkHostList(url, options, ctx, checks, warnings))) return undefined;
  let target = `${url.hosts.map(formatHostPort).join(',')}/${url.database}`;
  let client: pg.Client;
  try {
    // The copy is written by the plan: until then the CA is handed over as it was read.
    const selected = await connectSelecting(url, options);
    client = selected.client;
    if (url.hosts.length > 1) target = `${formatHostPort(selected.at)}/${url.database}`;
  } catch (error) {
    const problem = describeConnectError(error, url);
    ctx.log.warn(`connect to ${target} failed: ${problem.reason}`);
    checks.push({ name: `database ${target}`, ok: false, detail: problem.message, hints: problem.hints });
    return undefined;
  }
  try {
    const version = (await client.query<{ server_version: string; num: string }>(`SELECT current_setting('server_version') AS server_version, current_setting('server_version_num') AS num`)).rows[0]!;
    checks.push({ name: `database ${target}`, ok: true, detail: `PostgreSQL ${version.server_version}, connected as ${url.user}; ${tlsDetail(client, url)}` });
    if (Number(version.num) < 120000) {
      checks.push({ name: 'PostgreSQL version', ok: false, detail: `${version.server_version} is too old`, hints: ['Knocknoc needs PostgreSQL 12 or newer'] });
      return undefined;
    }
    const schemaVersion = await databaseSchemaVersion(client);
    const sameAsBefore = ctx.existingConf?.get('DatabaseOption') === String(answers.databaseOption) && ctx.existingConf?.get('DatabaseURL') === databaseUrl;
    if (answers.databaseOption === 2) {
      if (schemaVersion !== undefined && !sameAsBefore) {
        checks.push({
          name: 'empty database',
          ok: false,
          detail: `${url.database} already holds a Knocknoc schema (version ${schemaVersion})`,
          hints: ['to add this node to an existing Knocknoc deployment, choose option 3 (web node only)'],
        });
        return undefined;
      }
      try {
        await client.query('BEGIN');
        await client.query('CREATE TABLE knocker_preflight_probe (id integer)');
        checks.push({ name: 'privileges', ok: true, detail: `${url.user} can create tables` });
      } catch (error) {
        checks.push({
          name: 'privileges',
          ok: false,
          detail: `${url.user} cannot create tables in ${url.database}: ${(error as Error).message}`,
          hints: [`grant it, e.g. ALTER DATABASE ${url.database} OWNER TO ${url.user}, or GRANT CREATE ON SCHEMA public TO ${url.user}`],
        });
        return undefined;
      } finally {
        await client.query('ROLLBACK').catch(() => {});
      }
    } else {
      if (schemaVersion === undefined) {
        checks.push({
          name: 'Knocknoc database',
          ok: false,
          detail: `${url.database} holds no Knocknoc schema`,
          hints: ['option 3 joins an existing Knocknoc database; for a new, empty database choose option 2'],
        });
        return undefined;
      }
      checks.push({ name: 'Knocknoc database', ok: true, detail: `schema version ${schemaVersion}` });
      const nameCheck = await checkServerName(client, answers, ctx);
      checks.push(nameCheck);
      if (!nameCheck.ok) return undefined;
      if (schemaVersion > ctx.release.schemaVersion) {
        warnings.push(`the database's schema (version ${schemaVersion}) is newer than this release expects (${ctx.release.schemaVersion}): upgrade this node's Knocknoc to match`);
      } else if (schemaVersion < ctx.release.schemaVersion) {
        warnings.push(`the database's schema (version ${schemaVersion}) is older than this release (${ctx.release.schemaVersion}); the first upgraded server migrates it`);
      }
    }
    return { kind: 'external', url, databaseUrl, ca, serverVersion: version.server_version, schemaVersion };
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * The registry of a shared database keeps one row per ServerName: a second node with a name an
 * online node holds would hide one of them from `knocker status` and `knocker upgrade`. Host names
 * are often shared (cloned VMs, sandbox roots on one machine), so it is checked before anything.
 */
async function checkServerName(client: pg.Client, answers: Answers, ctx: PreflightContext): Promise<Check> {
  const name = `server name "${answers.serverName}"`;
  const rows = (
    await client.query<{ name: string; listen: string; online: boolean }>(
      `SELECT name, listen, ${onlineSql('$1')} AS online FROM servers`,
      [OFFLINE_AFTER_HEARTBEATS],
    )
  ).rows;
  const holder = rows.find((r) => r.name === answers.serverName);
  if (!holder) return { name, ok: true, detail: 'free in the registry' };
  // A re-run on this node: its knocknoc.conf already names it so, at the address the registry shows.
  const ours = ctx.existingConf?.get('ServerName') === answers.serverName && ctx.existingConf?.get('Listen') === holder.listen;
  if (ours) return { name, ok: true, detail: 'this node, already registered' };
  if (!holder.online) return { name, ok: true, detail: `was ${holder.listen}'s, which is offline: this node takes its place in the registry` };
  const taken = new Set(rows.map((r) => r.name));
  let free = 2;
  while (taken.has(`${answers.serverName}-${free}`)) free += 1;
  return {
    name,
    ok: false,
    detail: `the online node at ${holder.listen} already has this name (two nodes with one name would pass for one in knocker status and knocker upgrade)`,
    hints: [`give this node its own name: add --server-name ${answers.serverName}-${free} (or serverName in the answers file)`],
  };
}

/** Runs every check; returns the facts the plan needs, or throws PreflightError listing every failure. */
export async function preflight(answers: Answers, ctx: PreflightContext): Promise<PreflightReport> {
  const checks: Check[] = [];
  const warnings: string[] = [];
  const listen = parseListen(answers.listen);
  if (!listen.ok) throw new PreflightError(`listen address: ${listen.error}`);
  const [listenCheck, database] = await Promise.all([
    checkListen(answers, listen.value, ctx),
    answers.databaseOption === 1
      ? ctx.root.isSandbox
        ? privateClusterFacts(listen.value, ctx, checks)
        : hostClusterFacts(checks, ctx.log)
      : externalFacts(answers, listen.value, ctx, checks, warnings),
  ]);
  checks.unshift(listenCheck);
  // The name is shown in every plan: it defaults to the host name, which clones share.
  if (database && !checks.some((c) => c.name.startsWith('server name '))) {
    checks.push({ name: `server name "${answers.serverName}"`, ok: true, detail: 'this node\'s name in the registry of its database' });
  }
  const haproxy = answers.haproxy ? await haproxyFacts(answers.haproxy, listen.value, ctx, checks) : undefined;
  for (const check of checks) ctx.log.info(`preflight: ${check.ok ? 'ok  ' : 'FAIL'} ${check.name}: ${check.detail}`);
  const failed = checks.filter((c) => !c.ok);
  if (failed.length > 0 || !database) {
    throw new PreflightFailed(checks);
  }
  return { checks, listen: listen.value, database, ...(haproxy ? { haproxy } : {}), warnings };
}

async function haproxyFacts(answers: HaproxyAnswers, listen: ListenAddress, ctx: PreflightContext, checks: Check[]): Promise<PreflightReport['haproxy']> {
  const facts = await inspectHaproxy(ctx.root);
  const { settings, problems } = settingsFromAnswers(answers, facts.existing);
  if (settings && formatListen(settings.bind) === formatListen(listen)) {
    problems.push(`HAProxy and Knocknoc cannot both listen on ${formatListen(listen)}: give HAProxy another address (haproxy.bind)`);
  }
  if (!settings || problems.length > 0) {
    checks.push({ name: 'HAProxy settings', ok: false, detail: problems.join('; ') });
    return undefined;
  }
  checks.push(...(await haproxyChecks(settings, facts)).map((c) => ({ ...c, name: c.name.startsWith('HAProxy') ? c.name : `HAProxy ${c.name}` })));
  return { settings, facts };
}
