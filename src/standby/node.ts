// This host's side of the pair: its private PostgreSQL cluster (database option 1 under a root),
// what pg_controldata says about it, the state file, and the node-local settings that a clone or a
// rewind copies from the other host and that must be put back (listen address, pg_hba.conf, the
// TLS files, postgresql.auto.conf's conninfo): trap 3 of the research note.
import { adoptedAddress } from '../ha/node-state.js';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PreflightError } from '../errors.js';
import { adminLink, type AdminLink, type ClusterAccess } from '../postgres/admin.js';
import {
  clusterExists,
  clusterOwner,
  clusterRunning,
  findPgBinaries,
  readClusterSettings,
  startCluster,
  stopCluster,
  waitUntilReady,
  writeClusterSettings,
  type PgBinaries,
  type PrivateCluster,
} from '../postgres/cluster.js';
import { readManagedBlock, renderManagedBlock, withManagedBlock } from '../postgres/hba.js';
import { ctlDebianCluster, debianConfDir, findSystemClusters, pickCluster, type SystemCluster } from '../postgres/system-cluster.js';
import { EXPOSEDB_BLOCK } from '../postgres/allow-list.js';
import { LISTEN_EVERYWHERE } from '../postgres/listen.js';
import { readIfExists, writeFileAtomic } from '../system/files.js';
import type { Logger } from '../system/log.js';
import { PATHS, type Root } from '../system/root.js';
import { run } from '../system/run.js';
import { lookupUser } from '../system/users.js';
import { peerConninfo, type PeerTarget } from './conninfo.js';
import { hbaLinesFor, pairNodes } from './hba-lines.js';
import { REPLICATION_ROLE, slotName, STANDBY_BLOCK, STANDBY_PATHS } from './paths.js';

export interface Endpoint {
  host: string;
  port: number;
}

/** This host's view of the pair (STANDBY_PATHS.state). */
export interface PairState {
  version: 1;
  self: Endpoint;
  peer: Endpoint;
  /** The Knocknoc database (for the fence and the printed URL). */
  database: string;
  /** The web nodes' connection string (knocknoc_remote), for printing the multi-host URL. */
  nodesUser?: string;
  /** What `standby promote` did: the old primary must not come back as a second primary. */
  promoted?: { at: string; oldPrimary: Endpoint; timeline: number; lastReceivedLsn: string; oldPrimaryFenced: boolean };
}

export async function readState(root: Root): Promise<PairState | undefined> {
  const text = await readIfExists(root.path(STANDBY_PATHS.state));
  if (text === undefined) return undefined;
  try {
    const state = JSON.parse(text) as PairState;
    if (state.version !== 1 || !state.self?.host || !state.peer?.host) throw new Error('not a state file of this version');
    return state;
  } catch (error) {
    throw new PreflightError(`${root.path(STANDBY_PATHS.state)} cannot be read: ${(error as Error).message}`);
  }
}

export async function writeState(root: Root, state: PairState): Promise<void> {
  await writeFileAtomic(root.path(STANDBY_PATHS.state), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
}

export interface LocalNode {
  root: Root;
  cluster: PrivateCluster;
  access: ClusterAccess;
  owner: { uid: number; gid: number };
  /** The host's own Debian cluster (pg_lsclusters): its configuration lives outside the data directory. */
  system?: SystemCluster;
}

/** Which of the host's Debian clusters knocker standby works on ("15/main"); in a sandbox root, one instead of the root's private cluster. */
export const CLUSTER_ENV = 'KNOCKER_PG_CLUSTER';

/** The host's own Debian cluster this root's standby commands work on; undefined: the root's private cluster. */
export async function hostCluster(root: Root): Promise<SystemCluster | undefined> {
  const wanted = process.env[CLUSTER_ENV]?.trim();
  if (root.isSandbox && !wanted) return undefined;
  const clusters = await findSystemClusters();
  if (clusters.some((c) => c.layout === 'rhel')) {
    throw new PreflightError(
      "knocker standby works on Debian's PostgreSQL layout (pg_lsclusters); this host has the RHEL layout (/var/lib/pgsql), which it does not support yet",
    );
  }
  if (wanted) {
    const found = clusters.find((c) => c.label === wanted);
    if (!found)
      throw new PreflightError(`${CLUSTER_ENV}=${wanted}: pg_lsclusters lists no such cluster (${clusters.map((c) => c.label).join(', ') || 'none'})`);
    return found;
  }
  const picked = pickCluster(clusters);
  if (!picked) {
    throw new PreflightError('this host has no PostgreSQL cluster (pg_lsclusters lists none)', [
      'install the PostgreSQL server first: apt-get install postgresql (Debian creates cluster 15/main, which standby init replaces with the clone)',
    ]);
  }
  return picked;
}

/** Where pg_basebackup writes before the rename: beside the data directory (one filesystem). */
export function cloneDirOf(node: LocalNode): string {
  return node.system ? `${node.cluster.dataDir}.knocker-clone` : node.root.path(STANDBY_PATHS.clone);
}

/** The server's main configuration file when it is outside the data directory (pg_rewind --config-file). */
export function configFileOf(node: LocalNode): string | undefined {
  return node.system ? path.join(debianConfDir(node.system), 'postgresql.conf') : undefined;
}

/** How the plan shows a start or stop of this node. */
export function ctlCommand(node: LocalNode, action: 'start' | 'stop'): string {
  return node.system
    ? `pg_ctlcluster ${node.system.version} ${node.system.name} ${action}${action === 'stop' ? ' -m fast' : ''}`
    : `pg_ctl ${action}${action === 'stop' ? ' -m fast' : ''} -D ${node.cluster.dataDir}`;
}

async function ownerOf(osUser: string): Promise<{ uid: number; gid: number }> {
  const user = await lookupUser(osUser);
  if (!user) throw new PreflightError(`there is no OS user "${osUser}" to own the PostgreSQL cluster`);
  return { uid: user.uid, gid: user.gid };
}

export async function pgBinaries(): Promise<PgBinaries> {
  const bin = await findPgBinaries();
  if (!bin) throw new PreflightError('PostgreSQL server binaries (pg_ctl, pg_basebackup, pg_rewind) not found', ['apt-get install postgresql']);
  return bin;
}

/** The node with the cluster that is (or will be) in this root's data directory (or the host's own cluster's), at `where`. */
export async function nodeAt(root: Root, where: Endpoint): Promise<LocalNode> {
  const system = await hostCluster(root);
  const bin = await pgBinaries();
  if (system) {
    if (system.version !== bin.version)
      throw new PreflightError(`cluster ${system.label} is PostgreSQL ${system.version}, the server binaries found are ${bin.version}`);
    const cluster: PrivateCluster = {
      bin,
      dataDir: system.dataDir,
      socketDir: system.socketDir,
      logFile: '',
      host: where.host,
      port: system.port,
      osUser: system.osUser,
    };
    return {
      root,
      cluster,
      system,
      access: { socketDir: system.socketDir, port: system.port, osUser: system.osUser, database: 'postgres' },
      owner: await ownerOf(system.osUser),
    };
  }
  const osUser = await clusterOwner();
  const cluster: PrivateCluster = {
    bin,
    dataDir: root.path(PATHS.pgData),
    socketDir: root.path(PATHS.pgSocketDir),
    logFile: root.path(PATHS.pgLog),
    host: where.host,
    port: where.port,
    osUser,
  };
  return { root, cluster, access: { socketDir: cluster.socketDir, port: where.port, osUser, database: 'postgres' }, owner: await ownerOf(osUser) };
}

/** The node of the cluster in place, from the settings knocker wrote into it. */
export async function existingNode(root: Root): Promise<LocalNode> {
  const system = await hostCluster(root);
  if (system) {
    const state = await readState(root);
    if (!state)
      throw new PreflightError(`cluster ${system.label} is not one of a pair of knocker's (no ${root.path(STANDBY_PATHS.state)})`, [
        'on the primary: knocker exposedb --add-standby ADDR; on the standby: knocker standby init --bundle FILE',
      ]);
    return nodeAt(root, state.self);
  }
  const dataDir = root.path(PATHS.pgData);
  const settings = (await clusterExists(dataDir)) ? await readClusterSettings(dataDir, await adoptedAddress(root)) : undefined;
  if (!settings)
    throw new PreflightError(`there is no PostgreSQL cluster of knocker's in ${dataDir}`, [
      'make one with knocker install (database option 1) or knocker standby init',
    ]);
  return nodeAt(root, settings);
}

export const isRunning = (node: LocalNode) => clusterRunning(node.cluster);
export const linkTo = (node: LocalNode, log?: Logger): AdminLink => adminLink(node.access, log);

export async function startNode(node: LocalNode, log?: Logger): Promise<void> {
  if (node.system) {
    await ctlDebianCluster(node.system, 'start', log);
    await waitUntilReady(node.cluster.dataDir);
    return;
  }
  // The server's log, written by the database's OS user.
  await fs.mkdir(path.dirname(node.cluster.logFile), { recursive: true, mode: 0o755 });
  const handle = await fs.open(node.cluster.logFile, 'a', 0o640);
  await handle.close();
  await fs.chown(node.cluster.logFile, node.owner.uid, node.owner.gid);
  await startCluster(node.cluster, log);
  await waitUntilReady(node.cluster.dataDir);
}

export async function stopNode(node: LocalNode, log?: Logger, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
  if (node.system) await ctlDebianCluster(node.system, 'stop', log, mode);
  else await stopCluster(node.cluster, log, mode);
}

/** Log Sequence Numbers as numbers, to compare and subtract. */
export function lsn(text: string): bigint {
  const m = /^([0-9A-Fa-f]+)\/([0-9A-Fa-f]+)$/.exec(text.trim());
  if (!m) throw new Error(`not an LSN: ${text}`);
  return (BigInt(`0x${m[1]}`) << 32n) + BigInt(`0x${m[2]}`);
}

export interface ControlData {
  /** "in production", "shut down", "shut down in recovery", "in archive recovery", "in crash recovery". */
  state: string;
  timeline: number;
  checkpointLocation: string;
  /** REDO location of the latest checkpoint. */
  redoLocation: string;
  walLogHints: boolean;
  checksums: boolean;
  systemIdentifier: string;
}

export function parseControlData(text: string): ControlData {
  const field = (name: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}:`));
    if (line === undefined) throw new Error(`pg_controldata printed no "${name}"`);
    return line.slice(name.length + 1).trim();
  };
  return {
    state: field('Database cluster state'),
    timeline: Number(field("Latest checkpoint's TimeLineID")),
    checkpointLocation: field('Latest checkpoint location'),
    redoLocation: field("Latest checkpoint's REDO location"),
    walLogHints: field('wal_log_hints setting') === 'on',
    checksums: field('Data page checksum version') !== '0',
    systemIdentifier: field('Database system identifier'),
  };
}

export async function controlData(node: LocalNode, log?: Logger): Promise<ControlData> {
  const result = await run(path.join(node.cluster.bin.dir, 'pg_controldata'), ['-D', node.cluster.dataDir], {
    asUser: node.cluster.osUser,
    log,
    withoutPgEnv: true,
    env: { LC_ALL: 'C' },
  });
  return parseControlData(result.stdout);
}

/** The peer as libpq tools reach it from this host. */
export function peerTarget(node: LocalNode, peer: Endpoint, tls: boolean): PeerTarget {
  return { host: peer.host, port: peer.port, passfile: node.root.path(STANDBY_PATHS.passfile), caFile: tls ? node.root.path(STANDBY_PATHS.ca) : undefined };
}

// default_transaction_read_only: knocker's fence (peer.ts fencePeer) lives in this file; a node
// given its own settings (a clone, a rewind, a standby) is never fenced, and a copy of the other
// host's file must not bring that host's fence here.
const OWNED_KEYS = [
  'listen_addresses',
  'ssl_cert_file',
  'ssl_key_file',
  'ssl_ca_file',
  'primary_conninfo',
  'primary_slot_name',
  'default_transaction_read_only',
];

function autoConfLine(key: string, value: string): string {
  return `${key} = '${value.replace(/'/g, "''")}'`;
}

/** postgresql.auto.conf with this node's own values (and the other node's taken out). */
export function nodeAutoConf(current: string, settings: Record<string, string>): string {
  const kept = current
    .split('\n')
    .filter((line) => {
      const key = /^\s*([A-Za-z_.]+)\s*=/.exec(line)?.[1]?.toLowerCase();
      return !(key && (OWNED_KEYS.includes(key) || key in settings));
    })
    .join('\n')
    .trimEnd();
  return `${kept}\n${Object.entries(settings)
    .map(([k, v]) => autoConfLine(k, v))
    .join('\n')}\n`;
}

export interface NodeConfig {
  /** The host this node streams from; undefined: it runs as the primary. */
  standbyOf?: Endpoint;
  /** TLS with the cluster's CA (this node's certificate in the root's TLS folder). */
  tls: boolean;
  peer: Endpoint;
}

/**
 * Puts this node's own settings into the data directory (a clone's, a rewound one's, or its own):
 * the settings block (listen address, port, socket folder), pg_hba.conf (this host's base lines,
 * the web nodes' allow-list block, the replication lines for the peer), postgresql.auto.conf
 * (listen address, TLS files, primary_conninfo and primary_slot_name) and standby.signal.
 */
export async function applyNodeConfig(node: LocalNode, dataDir: string, config: NodeConfig, sandbox: boolean): Promise<void> {
  if (node.system) {
    // Debian's layout: postgresql.conf, pg_hba.conf and conf.d are this host's own, outside the
    // data directory (a clone or a rewind never touches them); only the replication lines are added.
    const hbaFile = node.system.hbaFile;
    const current = (await readIfExists(hbaFile)) ?? '';
    const next = withManagedBlock(current, STANDBY_BLOCK, await standbyBlockLines(node, config, sandbox));
    if (next !== current) await writeFileAtomic(hbaFile, next, { mode: 0o640, ...node.owner });
  } else await writePrivateConfig(node, dataDir, config, sandbox);
  await writeAutoConf(node, dataDir, config, sandbox);
}

/** The standby block of this node's pg_hba.conf: the peer's replication, and the web nodes of both hosts (the pair's state names the database). */
async function standbyBlockLines(node: LocalNode, config: NodeConfig, sandbox: boolean): Promise<string[]> {
  const state = await readState(node.root);
  const nodes = state ? pairNodes([state.self.host, config.peer.host], state.database) : undefined;
  return hbaLinesFor([config.peer.host], config.tls, sandbox, nodes);
}

async function writePrivateConfig(node: LocalNode, dataDir: string, config: NodeConfig, sandbox: boolean): Promise<void> {
  const cluster = { ...node.cluster, dataDir };
  const hbaFile = path.join(dataDir, 'pg_hba.conf');
  const before = (await readIfExists(hbaFile)) ?? '';
  const allowList = readManagedBlock(before, EXPOSEDB_BLOCK);
  await writeClusterSettings(cluster);
  const base = (await fs.readFile(hbaFile, 'utf8')).trimEnd();
  const standbyBlock = renderManagedBlock(STANDBY_BLOCK, await standbyBlockLines(node, config, sandbox));
  const lines = base.split('\n');
  const firstRule = lines.findIndex((l) => l.trim() !== '' && !l.trim().startsWith('#'));
  const hba = [...lines.slice(0, firstRule), standbyBlock, '', ...(allowList ? [allowList.text, ''] : []), ...lines.slice(firstRule), ''].join('\n');
  await writeFileAtomic(hbaFile, hba, { mode: 0o600, ...node.owner, backup: false });
}

async function writeAutoConf(node: LocalNode, dataDir: string, config: NodeConfig, sandbox: boolean): Promise<void> {
  // On a real host the cluster is also this host's own (its web node on 127.0.0.1, as option 1
  // installs it): every address, as exposedb sets it; in a sandbox root, its loopback address only.
  const settings: Record<string, string> = { listen_addresses: node.system && !sandbox ? LISTEN_EVERYWHERE : node.cluster.host };
  if (config.tls) {
    settings.ssl_cert_file = node.root.path(PATHS.pgTlsCert);
    settings.ssl_key_file = node.root.path(PATHS.pgTlsKey);
  }
  if (config.standbyOf) {
    settings.primary_conninfo = peerConninfo(peerTarget(node, config.standbyOf, config.tls), REPLICATION_ROLE, slotName(node.cluster.host));
    settings.primary_slot_name = slotName(node.cluster.host);
  }
  const autoFile = path.join(dataDir, 'postgresql.auto.conf');
  await writeFileAtomic(autoFile, nodeAutoConf((await readIfExists(autoFile)) ?? '', settings), { mode: 0o600, ...node.owner, backup: false });
  const signal = path.join(dataDir, 'standby.signal');
  if (config.standbyOf) await writeFileAtomic(signal, '', { mode: 0o600, ...node.owner, backup: false });
  else await fs.rm(signal, { force: true });
}

/** Whether the data directory's configuration says "standby" (standby.signal is there). */
export async function hasStandbySignal(dataDir: string): Promise<boolean> {
  return fs
    .access(path.join(dataDir, 'standby.signal'))
    .then(() => true)
    .catch(() => false);
}
