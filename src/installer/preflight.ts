// Preflight: everything the install needs is checked before anything changes: the listen port is
// free, PostgreSQL binaries are present (or installable on a real host), the database answers and
// has the privileges the option needs. All failures are reported together (exit 3).
import { adoptedAddress } from '../ha/node-state.js';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { KnocknocConf } from '../config/knocknoc-conf.js';
import { formatListen, parseListen, type ListenAddress } from '../config/values.js';
import type { HaproxySettings } from '../haproxy/config.js';
import { haproxyChecks, inspectHaproxy, settingsFromAnswers, type HaproxyFacts } from '../haproxy/plan.js';
import { PreflightError } from '../errors.js';
import {
  clusterExists,
  clusterOwner,
  clusterRunning,
  findPgBinaries,
  readClusterSettings,
  waitUntilReady,
  MAX_SOCKET_DIR_LENGTH,
  type PgBinaries,
} from '../postgres/cluster.js';
import { findSystemClusters, pickCluster, type SystemCluster } from '../postgres/system-cluster.js';
import { parseDatabaseUrl, type DatabaseUrl } from '../postgres/url.js';
import type { Release } from '../schema/index.js';
import { freePort, packageManagerFor, probeListen, readOsRelease, type PackageManager } from '../system/host.js';
import type { Logger } from '../system/log.js';
import { PATHS, type Root } from '../system/root.js';
import { which } from '../system/run.js';
import { isRoot, lookupUser } from '../system/users.js';
import type { HaproxyAnswers } from '../haproxy/config.js';
import type { Answers } from './answers.js';
import { PreflightFailed, type Check } from '../shared/checks.js';
import { connectOptionsFor, externalFacts } from './preflight-external.js';

export { connectOptionsFor };

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

async function checkListen(answers: Pick<Answers, 'listen'>, listen: ListenAddress, ctx: PreflightContext): Promise<Check> {
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
    checks.push({
      name: `OS user ${osUser}`,
      ok: false,
      detail: 'missing; PostgreSQL must not run as root',
      hints: ['install the postgresql package, which creates it'],
    });
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
  const halfMade = await fs.access(ctx.root.path(PATHS.pgCreating)).then(
    () => true,
    () => false,
  );
  const exists = !halfMade && (await clusterExists(dataDir));
  const settings = exists ? await readClusterSettings(dataDir, await adoptedAddress(ctx.root)) : undefined;
  const foreign =
    !halfMade &&
    !exists &&
    (await fs.readdir(dataDir).then(
      (entries) => entries.length > 0,
      () => false,
    ));
  if ((exists && !settings) || foreign) {
    checks.push({
      name: 'private cluster',
      ok: false,
      detail: `${dataDir} holds ${foreign ? 'files but no cluster' : 'a cluster'} knocker did not create`,
      hints: ['move it away, or use option 2 with a connection string'],
    });
    return undefined;
  }
  const host = settings?.host ?? sandboxHostAddress(listen);
  // A cluster a cut-off run was starting may still be on its way up: it counts once it is ready.
  const running = exists && (await clusterRunning({ bin, dataDir, osUser })) ? await waitUntilReady(dataDir) : false;
  // Before the cluster exists, the port knocknoc.conf was given for it (by a run cut off before
  // initdb) is kept while it is free: the file is not rewritten by every run.
  const planned = ctx.existingConf?.get('DatabaseOption') === '1' ? parseDatabaseUrl(ctx.existingConf.get('DatabaseURL') ?? '') : undefined;
  const plannedPort =
    !exists && planned?.ok && planned.value.host === host && (await probeListen(host, planned.value.port)).free ? planned.value.port : undefined;
  let port = settings?.port ?? plannedPort;
  if (port === undefined) {
    port = await freePort(host);
  } else if (!running && port !== plannedPort) {
    const probe = await probeListen(host, port);
    if (!probe.free) {
      checks.push({
        name: 'private cluster port',
        ok: false,
        detail: `port ${port} on ${host} is taken by something else`,
        hints: ['free it, then run this again'],
      });
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
    detail: cluster
      ? `cluster ${cluster.label} on port ${cluster.port} (${cluster.running ? 'running' : 'stopped'})`
      : `PostgreSQL ${bin.version} installed, no cluster yet (one will be created)`,
  });
  return { kind: 'host', install: undefined, layout, cluster };
}

/** The folder knocknoc.conf goes into, or the nearest one that exists on the way: can this run write there? */
async function checkWritable(ctx: PreflightContext): Promise<Check> {
  const target = path.dirname(ctx.root.path(PATHS.conf));
  let dir = target;
  while (
    !(await fs.stat(dir).then(
      (s) => s.isDirectory(),
      () => false,
    )) &&
    dir !== path.dirname(dir)
  )
    dir = path.dirname(dir);
  const writable = await fs.access(dir, fsConstants.W_OK).then(
    () => true,
    () => false,
  );
  return writable
    ? { name: 'configuration folder', ok: true, detail: `${target} ${dir === target ? 'is writable' : `can be made (in ${dir})`}` }
    : {
        name: 'configuration folder',
        ok: false,
        detail: `${dir} is not writable by this user`,
        hints: ['run it as root (sudo), or use --root DIR for a sandbox'],
      };
}

/**
 * The checks of this host alone, that need no database: the listen address, the configuration
 * folder, HAProxy. `install --join` runs them before it redeems the invitation (single use), so
 * one that fails leaves the invitation unused.
 */
export async function localPreflight(answers: Pick<Answers, 'listen' | 'haproxy'>, ctx: PreflightContext): Promise<Check[]> {
  const listen = parseListen(answers.listen);
  if (!listen.ok) return [{ name: `listen address ${answers.listen}`, ok: false, detail: listen.error }];
  const checks = [await checkListen(answers, listen.value, ctx), await checkWritable(ctx)];
  if (answers.haproxy) await haproxyFacts(answers.haproxy, listen.value, ctx, checks);
  return checks;
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
    checks.push({ name: `server name "${answers.serverName}"`, ok: true, detail: "this node's name in the registry of its database" });
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
