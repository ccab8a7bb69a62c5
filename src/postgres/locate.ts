// The local PostgreSQL cluster behind a connection string: the private cluster of a sandbox root,
// or on a real host the Debian (pg_lsclusters) or RHEL cluster on the string's port. exposedb,
// standby and status administer it as its OS owner over the Unix socket, so they must run on the
// database's own host.
import { adoptedAddress } from '../ha/node-state.js';
import dns from 'node:dns/promises';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PreflightError } from '../errors.js';
import type { ClusterAccess } from './admin.js';
import { clusterExists, clusterOwner, findPgBinaries, readClusterSettings, restartCluster } from './cluster.js';
import { accessOf, findSystemClusters, restartSystemCluster } from './system-cluster.js';
import type { DatabaseUrl } from './url.js';
import type { Logger } from '../system/log.js';
import { PATHS, type Root } from '../system/root.js';

export interface LocalCluster {
  /** How an operator knows it: "the private cluster in DIR", "cluster 15/main". */
  label: string;
  access: ClusterAccess;
  /** This host's address as the cluster's own settings tell it (a sandbox root's private cluster). */
  address: string | undefined;
  /** A sandbox root's private cluster: a "host" of its own loopback address. */
  sandbox: boolean;
  restart(log: Logger): Promise<void>;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === '::1';
}

function interfaceAddresses(): os.NetworkInterfaceInfo[] {
  return Object.values(os.networkInterfaces()).flatMap((list) => list ?? []);
}

/** Whether `host` names this machine (loopback, one of its interfaces, or a name resolving to one). */
export async function isThisHost(host: string): Promise<boolean> {
  if (isLoopback(host)) return true;
  const mine = new Set(interfaceAddresses().map((i) => i.address));
  if (net.isIP(host)) return mine.has(host);
  const resolved = await dns.lookup(host, { all: true }).catch(() => []);
  return resolved.some((r) => isLoopback(r.address) || mine.has(r.address));
}

/** This host's addresses others may reach it at: every non-loopback, non-link-local address. */
export function hostAddresses(): string[] {
  return interfaceAddresses()
    .filter((i) => !i.internal && !i.address.startsWith('169.254.') && !/^fe80:/i.test(i.address))
    .map((i) => i.address);
}

/** The address other hosts most likely reach this one at: the first non-loopback IPv4 address. */
export function primaryAddress(): string | undefined {
  const candidates = interfaceAddresses().filter((i) => !i.internal && i.family === 'IPv4' && !i.address.startsWith('169.254.'));
  return candidates[0]?.address;
}

/** Whether anything accepts TCP connections at host:port (only ever asked for this host's addresses). */
function answers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: 2000 });
    const done = (result: boolean) => {
      socket.destroy();
      resolve(result);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}

async function noClusterThere(url: DatabaseUrl, what: string, hints: string[]): Promise<PreflightError> {
  const where = `${url.host.includes(':') ? `[${url.host}]` : url.host}:${url.port}`;
  const listening = await answers(url.host, url.port);
  return new PreflightError(
    `no PostgreSQL cluster of this host serves ${where} (${what}): ${listening ? 'something answers there, but not a cluster exposedb can administer here' : 'nothing listens there'}`,
    hints,
  );
}

/** Whether the postmaster of a data folder runs (its postmaster.pid names a live process), as pg_ctl status checks. */
async function postmasterAlive(dataDir: string): Promise<boolean> {
  const pid = Number.parseInt((await fs.readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface LocateOptions {
  /** Where the connection string came from, for messages ("knocknoc.conf's DatabaseURL", "--conn"). */
  source: string;
  /** Extra advice when there is no local cluster (e.g. this node uses a database elsewhere). */
  hints: string[];
}

export type ClusterFinder = (root: Root, url: DatabaseUrl, log: Logger, options: LocateOptions) => Promise<LocalCluster>;

function hintsOf(options: LocateOptions): string[] {
  return [...options.hints, 'exposedb runs on the primary: the host whose own PostgreSQL holds the Knocknoc database'];
}

async function mustBeThisHost(url: DatabaseUrl, options: LocateOptions): Promise<void> {
  if (!(await isThisHost(url.host))) {
    throw new PreflightError(`the database in ${options.source} is on ${url.host}, not on this host`, hintsOf(options));
  }
}

/** Finds the running local cluster behind `url`, or throws a PreflightError saying why there is none. */
export const findLocalCluster: ClusterFinder = (root, url, log, options) =>
  root.isSandbox ? findPrivateCluster(root, url, log, options) : findSystemCluster(root, url, log, options);

/** A sandbox root's private cluster (database option 1 under --root). */
export const findPrivateCluster: ClusterFinder = async (root, url, _log, options) => {
  await mustBeThisHost(url, options);
  const hints = hintsOf(options);
  const dataDir = root.path(PATHS.pgData);
  const settings = (await clusterExists(dataDir)) ? await readClusterSettings(dataDir, await adoptedAddress(root)) : undefined;
  if (!settings || settings.port !== url.port) throw await noClusterThere(url, options.source, hints);
  const osUser = await clusterOwner();
  const socketDir = root.path(PATHS.pgSocketDir);
  const logFile = root.path(PATHS.pgLog);
  if (!(await postmasterAlive(dataDir))) {
    throw new PreflightError(`the private PostgreSQL cluster in ${dataDir} is not running`, [
      `start it: runuser -u ${osUser} -- pg_ctl start -D ${dataDir} -l ${logFile}`,
    ]);
  }
  return {
    label: `the private cluster in ${dataDir}`,
    access: { socketDir, port: settings.port, osUser, database: url.database },
    address: settings.host,
    sandbox: true,
    async restart(restartLog) {
      // Looked up only when needed: finding the binaries runs each candidate's pg_ctl.
      const bin = await findPgBinaries();
      if (!bin) throw new Error('PostgreSQL server binaries (pg_ctl) not found');
      await restartCluster({ bin, dataDir, socketDir, logFile, host: settings.host, port: settings.port, osUser }, restartLog);
    },
  };
};

/** The host's own cluster on the connection string's port: Debian's pg_lsclusters, or the RHEL layout. */
export const findSystemCluster: ClusterFinder = async (_root, url, log, options) => {
  await mustBeThisHost(url, options);
  const hints = hintsOf(options);
  const candidates = (await findSystemClusters(log)).filter((c) => c.port === url.port);
  const cluster = candidates.find((c) => c.running) ?? candidates[0];
  if (!cluster) throw await noClusterThere(url, options.source, hints);
  const startCommand =
    cluster.layout === 'debian'
      ? `pg_ctlcluster ${cluster.version} ${cluster.name} start`
      : `systemctl start postgresql (or pg_ctl start -D ${cluster.dataDir})`;
  if (!cluster.running) {
    throw new PreflightError(`PostgreSQL cluster ${cluster.label} (port ${cluster.port}) is not running`, [`start it: ${startCommand}`]);
  }
  return {
    label: cluster.layout === 'debian' ? `cluster ${cluster.label}` : `the cluster in ${cluster.dataDir}`,
    access: accessOf(cluster, url.database),
    address: isLoopback(url.host) || !net.isIP(url.host) ? undefined : url.host,
    sandbox: false,
    restart: (restartLog) => restartSystemCluster(cluster, restartLog),
  };
};
