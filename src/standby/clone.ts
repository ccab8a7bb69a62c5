// The clone of the primary (standby init, and rejoin when pg_rewind cannot work): a slot created
// first on the primary (so a failure can drop it), pg_basebackup -X stream into a folder beside the
// data directory with the passfile (never the password in argv or the environment: trap 1), this
// node's own settings put back (trap 3), and only then renamed into place, so a clone cut off never
// looks like a cluster. A folder a killed run left, and its pg_basebackup, are cleared first.
import fs from 'node:fs/promises';
import path from 'node:path';
import { discardHalfMadeCluster } from '../postgres/cluster.js';
import type { Logger } from '../system/log.js';
import type { Step } from '../system/plan.js';
import { run } from '../system/run.js';
import { peerConninfo } from './conninfo.js';
import { applyNodeConfig, cloneDirOf, peerTarget, type Endpoint, type LocalNode } from './node.js';
import { REPLICATION_ROLE, slotName } from './paths.js';
import type { PeerLink } from './peer.js';
import { until } from './run.js';

/** Drops this node's slot on the primary when nothing uses it (a cut-off clone's walsender is given time to end). */
export async function dropStaleSlot(link: PeerLink, slot: string): Promise<boolean> {
  const row = async () => (await link.client.query<{ active: boolean }>('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0];
  if (!(await row())) return false;
  await until(`slot ${slot} on the primary still in use`, async () => ((await row())?.active ? undefined : true), 30_000);
  await link.client.query('SELECT pg_drop_replication_slot($1)', [slot]);
  return true;
}

/** What a clone cut off left: its folder, and its pg_basebackup if that still runs (it outlives a killed knocker and holds the slot). */
export async function clearCutOffStep(node: LocalNode, log: Logger): Promise<Step> {
  const cloneDir = cloneDirOf(node);
  const left = Boolean(await fs.stat(cloneDir).catch(() => undefined));
  return {
    kind: 'command',
    title: `Clear the clone a cut-off run left in ${cloneDir} (and end its pg_basebackup, if it still runs)`,
    details: [`rm -r ${cloneDir}`],
    changes: left,
    async apply() {
      await discardHalfMadeCluster(cloneDir, log);
    },
    async undo() {},
  };
}

export function slotStep(primaryLink: () => Promise<PeerLink>, slot: string, primary: Endpoint): Step {
  let created = false;
  return {
    kind: 'database',
    title: `Primary ${primary.host}: replication slot ${slot} (keeps the WAL this standby still needs)`,
    details: [`SELECT pg_drop_replication_slot('${slot}') -- if a cut-off clone left it`, `SELECT pg_create_physical_replication_slot('${slot}', true)`],
    changes: true,
    async apply() {
      const link = await primaryLink();
      const stale = await dropStaleSlot(link, slot);
      await link.client.query('SELECT pg_create_physical_replication_slot($1, true)', [slot]);
      created = true;
      return stale ? 'a slot a cut-off clone left was dropped first' : undefined;
    },
    async undo() {
      if (!created) return;
      await dropStaleSlot(await primaryLink(), slot);
    },
  };
}

export interface CloneOptions {
  node: LocalNode;
  primary: Endpoint;
  peer: Endpoint;
  log: Logger;
  maxRate?: string;
}

/** pg_basebackup into the clone folder, this node's settings written into it, then renamed to the data directory. */
export function cloneStep(options: CloneOptions): Step {
  const { node, primary, log } = options;
  const cloneDir = cloneDirOf(node);
  const dataDir = node.cluster.dataDir;
  const slot = slotName(node.cluster.host);
  const source = peerConninfo(peerTarget(node, primary, true), REPLICATION_ROLE, slot);
  const args = [
    '-d',
    source,
    '-D',
    cloneDir,
    '-X',
    'stream',
    '-S',
    slot,
    '--checkpoint=fast',
    '-w',
    ...(options.maxRate ? ['--max-rate', options.maxRate] : []),
  ];
  let placed = false;
  return {
    kind: 'command',
    title: `Clone the primary ${primary.host}:${primary.port} (pg_basebackup -X stream -S ${slot}) into ${dataDir}, with this host's own settings`,
    details: [
      `pg_basebackup ${args.join(' ')}`,
      `then: this host's listen address, pg_hba.conf, TLS files, primary_conninfo, standby.signal; rename ${cloneDir} -> ${dataDir}`,
    ],
    changes: true,
    async apply() {
      await discardHalfMadeCluster(cloneDir, log);
      await fs.mkdir(path.dirname(cloneDir), { recursive: true, mode: 0o755 });
      await fs.mkdir(cloneDir, { mode: 0o700 });
      await fs.chown(cloneDir, node.owner.uid, node.owner.gid);
      await run(path.join(node.cluster.bin.dir, 'pg_basebackup'), args, { asUser: node.cluster.osUser, log, timeoutMs: 6 * 3600_000, withoutPgEnv: true });
      await applyNodeConfig(node, cloneDir, { standbyOf: primary, tls: true, peer: options.peer }, node.root.isSandbox);
      await fs.rename(cloneDir, dataDir);
      placed = true;
    },
    async undo() {
      if (placed) await discardHalfMadeCluster(dataDir, log);
      await discardHalfMadeCluster(cloneDir, log);
    },
  };
}
