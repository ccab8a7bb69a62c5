// The start fence where systemd starts the cluster (at boot, systemctl, pg_ctlcluster, which hands
// over to systemctl as root): a drop-in for Debian's postgresql@VERSION-NAME.service that runs
// `knocker standby pre-start` before the server starts (ExecStartPre). Debian's unit
// (postgresql-common: Type=forking, ExecStart=-pg_ctlcluster --skip-systemctl-redirect %i start,
// TimeoutStartSec=0, After=network.target only) gives the check no deadline and no network: the
// drop-in orders it after network-online.target and bounds it with timeout(1); knocker bounds its
// own question to the peer (fence.ts ASK_PEER_MS). A check that fails or is killed fails the unit:
// the server stays down (fail closed) and the journal says why. Written on both hosts of a pair
// (the roles swap), by `exposedb --add-standby` and `standby init`; removed by `standby remove`
// and `uninstall`.
import fs from 'node:fs/promises';
import path from 'node:path';
import { PreflightError } from '../errors.js';
import type { SystemCluster } from '../postgres/system-cluster.js';
import { readIfExists, statIfExists, writeFileAtomic } from '../system/files.js';
import { isSystemdHost } from '../system/host.js';
import type { Logger } from '../system/log.js';
import { knockerProgram } from '../system/package.js';
import { fileStep, type Step } from '../system/plan.js';
import type { Root } from '../system/root.js';
import { systemctl } from '../system/service.js';
import { CLUSTER_ENV } from './node.js';

/** The whole check may take this long before timeout(1) ends it (and the unit fails): asking the peer is bounded well below. */
export const PRE_START_LIMIT_SECONDS = 60;

type Instance = Pick<SystemCluster, 'version' | 'name'>;

/** postgresql@15-main.service: the cluster's instance of Debian's template. */
export function clusterUnit(cluster: Instance): string {
  return `postgresql@${cluster.version}-${cluster.name}.service`;
}

/** /etc/systemd/system/postgresql@15-main.service.d/knocker-standby.conf (under the root). */
export function dropInFile(root: Root, cluster: Instance): string {
  return root.path(`/etc/systemd/system/${clusterUnit(cluster)}.d/knocker-standby.conf`);
}

/** A word systemd's command line takes as it is (no quoting, no specifiers, no variables). */
function unitWord(word: string): string {
  if (!/^[A-Za-z0-9_@+=:,./-]+$/.test(word)) {
    throw new PreflightError(`cannot name ${JSON.stringify(word)} in a systemd unit's command line (spaces, quotes, % or $)`, [
      'install knocker (and a sandbox root) under a path of plain characters',
    ]);
  }
  return word;
}

/** The drop-in's text: the check before each start, this cluster named, after the network is up. */
export function dropInText(root: Root, cluster: Instance): string {
  const command = [
    '/usr/bin/timeout',
    '--kill-after=5',
    String(PRE_START_LIMIT_SECONDS),
    ...knockerProgram(),
    'standby',
    'pre-start',
    ...(root.isSandbox ? ['--root', root.dir] : []),
  ].map(unitWord);
  return [
    '# Written by knocker (knocker standby): before systemd starts this cluster, knocker asks the other',
    '# database host of the pair. When that host is the primary, or does not answer, this cluster starts',
    '# read-only as its standby. A check that fails keeps the cluster stopped; see journalctl -u this unit.',
    '# Removed by knocker standby remove and knocker uninstall.',
    '[Unit]',
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    `Environment=${unitWord(`${CLUSTER_ENV}=${cluster.version}/${cluster.name}`)}`,
    `ExecStartPre=${command.join(' ')}`,
    '',
  ].join('\n');
}

/** systemd reads a changed drop-in only after daemon-reload (on a real host that runs systemd). */
async function reload(root: Root, log?: Logger): Promise<void> {
  if (!root.isSandbox && (await isSystemdHost())) await systemctl(['daemon-reload'], log);
}

/** Writes (or keeps) the drop-in of this cluster's unit; undone by removing it. */
export async function bootFenceStep(root: Root, cluster: Instance, log?: Logger): Promise<Step> {
  const file = dropInFile(root, cluster);
  const write = await fileStep({ file, shownAs: file, content: dropInText(root, cluster), mode: 0o644 });
  return {
    ...write,
    title: `${write.title}: systemd runs knocker standby pre-start before it starts ${clusterUnit(cluster)} (at boot too), so it cannot come back as a second primary`,
    details: [...write.details, 'systemctl daemon-reload'],
    async apply() {
      const note = await write.apply();
      await reload(root, log);
      return note;
    },
    async undo() {
      await write.undo();
      await reload(root, log);
    },
  };
}

/** Removes the drop-in (and its backup, and its folder once empty); undone by writing it back. */
export async function removeBootFenceStep(root: Root, cluster: Instance, log?: Logger): Promise<Step | undefined> {
  const file = dropInFile(root, cluster);
  if (!(await statIfExists(file)) && !(await statIfExists(`${file}.bak`))) return undefined;
  let kept: string | undefined;
  return {
    kind: 'file',
    title: `Remove ${file}: systemd no longer asks the other host before it starts ${clusterUnit(cluster)}`,
    details: [`rm ${file}`, 'systemctl daemon-reload'],
    changes: true,
    async apply() {
      kept = await readIfExists(file);
      await fs.rm(file, { force: true });
      await fs.rm(`${file}.bak`, { force: true });
      await fs.rmdir(path.dirname(file)).catch(() => {});
      await reload(root, log);
    },
    async undo() {
      if (kept === undefined) return;
      await writeFileAtomic(file, kept, { mode: 0o644, backup: false });
      await reload(root, log);
    },
  };
}

/** The drop-ins knocker wrote for any cluster of this host (uninstall removes them all). */
export async function writtenDropIns(root: Root): Promise<Instance[]> {
  const dir = root.path('/etc/systemd/system');
  const entries = await fs.readdir(dir).catch(() => [] as string[]);
  const found: Instance[] = [];
  for (const entry of entries) {
    const m = /^postgresql@([0-9.]+)-(.+)\.service\.d$/.exec(entry);
    if (m && (await statIfExists(path.join(dir, entry, 'knocker-standby.conf')))) found.push({ version: m[1]!, name: m[2]! });
  }
  return found;
}
