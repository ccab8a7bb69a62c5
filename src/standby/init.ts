// `knocker standby init --bundle FILE` on the standby's host: a hot standby of the primary named in
// the bundle (made there by `knocker exposedb --add-standby`). Files first (passfile, CA, this
// host's certificate, the state), then the slot on the primary, the clone, and the start, waiting
// until it streams. A run that fails is rolled back (slot dropped, clone removed); a run that was
// killed is finished by the next one.
import { refuseOnAutomaticPair } from '../ha/node-state.js';
import { INSTEAD } from '../ha/refusals.js';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PreflightError } from '../errors.js';
import { clusterExists } from '../postgres/cluster.js';
import type { Output } from '../shared/output.js';
import { withRun } from '../system/runner.js';
import type { Step } from '../system/plan.js';
import { PATHS, type Root } from '../system/root.js';
import { clearCutOffStep, cloneStep, slotStep } from './clone.js';
import { multiHostUrl, passfileText } from './conninfo.js';
import { ctlCommand, hasStandbySignal, isRunning, linkTo, nodeAt, readState, startNode, stopNode, type LocalNode, type PairState } from './node.js';
import { connectPeerWith, peerFacts, type PeerLink } from './peer.js';
import { checkMaxRate, readBundle } from './bundle.js';
import { ownedFileStep, type StandbyBundle } from './primary.js';
import { followPairSteps } from './local-node.js';
import { REPLICATION_ROLE, slotName, STANDBY_PATHS } from './paths.js';
import { until, type RunFlags } from './run.js';
import { fileStep, hasChanges } from '../system/plan.js';
import { bootFenceStep } from './boot-unit.js';
import type { Logger } from '../system/log.js';

export interface InitRequest extends RunFlags {
  bundle: string;
  maxRate?: string;
}

/** Waits until this standby's walreceiver streams from its primary. */
export async function waitStreaming(node: LocalNode, log?: Logger, timeoutMs = 120_000): Promise<void> {
  const link = linkTo(node, log);
  try {
    await until(
      `the standby in ${node.cluster.dataDir} streaming from its primary`,
      async () => {
        const { rows } = await (await link.session()).query<{ status: string }>('SELECT status FROM pg_stat_wal_receiver');
        return rows[0]?.status === 'streaming' ? true : undefined;
      },
      timeoutMs,
      200,
    );
  } finally {
    await link.close();
  }
}

/** Drops the slots this node held for its peer while it was the primary: as a standby they would hold WAL for nobody. */
export async function dropSlotsForPeer(node: LocalNode, peer: string, log?: Logger): Promise<void> {
  const link = linkTo(node, log);
  try {
    await (await link.session()).query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active', [
      slotName(peer),
    ]);
  } finally {
    await link.close();
  }
}

export function startStep(node: LocalNode, log: Logger, what: string, peer?: string): Step {
  let started = false;
  return {
    kind: 'service',
    title: `Start PostgreSQL in ${node.cluster.dataDir} ${what}`,
    details: [`${ctlCommand(node, 'start')} (no PG* variables in its environment)`],
    changes: true,
    async apply() {
      await fs.mkdir(node.root.path(PATHS.logDir), { recursive: true });
      started = true;
      await startNode(node, log);
      await waitStreaming(node, log);
      if (peer) await dropSlotsForPeer(node, peer, log);
      return 'streaming';
    },
    async undo() {
      if (started) await stopNode(node, log, 'fast');
    },
  };
}

/** The TLS files, passfile, CA and state file a standby keeps (owned by the database's OS user where it reads them). */
export async function standbyFileSteps(root: Root, node: LocalNode, bundle: StandbyBundle, log: Logger): Promise<Step[]> {
  const osUser = node.cluster.osUser;
  const state: PairState = { version: 1, self: bundle.standby, peer: bundle.primary, database: bundle.database };
  return [
    await ownedFileStep(
      root.path(STANDBY_PATHS.passfile),
      passfileText([bundle.primary, bundle.standby], REPLICATION_ROLE, bundle.password),
      0o600,
      osUser,
      (t) => log.scrub(t),
    ),
    await ownedFileStep(root.path(STANDBY_PATHS.ca), bundle.ca, 0o644, osUser),
    await ownedFileStep(root.path(PATHS.pgTlsCert), bundle.certificate, 0o644, osUser),
    await ownedFileStep(root.path(PATHS.pgTlsKey), bundle.key, 0o600, osUser, () => '<private key>'),
    await fileStep({
      file: root.path(STANDBY_PATHS.state),
      shownAs: root.path(STANDBY_PATHS.state),
      content: `${JSON.stringify(state, null, 2)}\n`,
      mode: 0o600,
    }),
  ];
}

/** The web nodes' multi-host connection string, from the bundle's single-host one. */
export function nodesMultiHostUrl(root: Root, bundle: Pick<StandbyBundle, 'nodesUrl' | 'primary' | 'standby'>): string | undefined {
  if (!bundle.nodesUrl) return undefined;
  const url = new URL(bundle.nodesUrl);
  return multiHostUrl({
    hosts: [bundle.primary, bundle.standby],
    user: decodeURIComponent(url.username),
    password: url.password ? decodeURIComponent(url.password) : undefined,
    database: decodeURIComponent(url.pathname.slice(1)),
    caFile: root.path(PATHS.databaseCa),
  });
}

/** Whether the host's Debian cluster is still the empty one the package made (template0, template1, postgres only). */
async function untouchedDebianCluster(node: LocalNode): Promise<boolean> {
  const databases = await fs.readdir(path.join(node.cluster.dataDir, 'base')).catch(() => [] as string[]);
  return databases.filter((d) => /^\d+$/.test(d)).length <= 3;
}

/** Debian's empty cluster moved aside (stopped first), so the clone takes its data directory; undone by moving it back. */
function setAsideStep(node: LocalNode, log: Logger): Step {
  const dataDir = node.cluster.dataDir;
  const keptAs = `${dataDir}.before-standby`;
  let moved = false;
  let wasRunning = false;
  return {
    kind: 'command',
    title: `Stop cluster ${node.system!.label} (the empty one Debian created) and keep its data directory as ${keptAs}; its configuration in ${path.dirname(node.system!.hbaFile)} stays`,
    details: [ctlCommand(node, 'stop'), `mv ${dataDir} ${keptAs}`],
    changes: true,
    async apply() {
      if (!(await clusterExists(dataDir))) return 'already moved aside';
      wasRunning = await isRunning(node);
      if (wasRunning) await stopNode(node, log, 'fast');
      await fs.rm(keptAs, { recursive: true, force: true });
      await fs.rename(dataDir, keptAs);
      moved = true;
      return undefined;
    },
    async undo() {
      if (!moved || (await fs.stat(dataDir).catch(() => undefined))) return;
      await fs.rename(keptAs, dataDir);
      if (wasRunning) await startNode(node, log);
    },
  };
}

async function preflight(root: Root, node: LocalNode, bundle: StandbyBundle, log: Logger): Promise<'clone' | 'replace' | 'start' | 'done'> {
  const dataDir = node.cluster.dataDir;
  if (node.system && node.system.port !== bundle.standby.port) {
    throw new PreflightError(`cluster ${node.system.label} on this host listens on port ${node.system.port}, the bundle's standby on ${bundle.standby.port}`, [
      `on the primary: knocker exposedb --add-standby ${bundle.standby.host}:${node.system.port}, then copy the new bundle here`,
    ]);
  }
  let todo: 'clone' | 'replace' = 'clone';
  if (await clusterExists(dataDir)) {
    const state = await readState(root);
    const ours = state && state.peer.host === bundle.primary.host && (await hasStandbySignal(dataDir));
    if (!ours && node.system && (!state || state.peer.host === bundle.primary.host) && (await untouchedDebianCluster(node))) todo = 'replace';
    else if (!ours && node.system) {
      throw new PreflightError(
        `cluster ${node.system.label} in ${dataDir} holds databases of its own: standby init replaces only the empty cluster Debian created`,
        [
          `move its data away first (pg_dumpall), then pg_dropcluster ${node.system.version} ${node.system.name} --stop and pg_createcluster ${node.system.version} ${node.system.name}`,
        ],
      );
    } else if (!ours) {
      throw new PreflightError(`there is a PostgreSQL cluster in ${dataDir} already: standby init never replaces a cluster`, [
        'run it on a host without a database of its own (a web node with database option 3), or move that cluster away first',
      ]);
    }
    if (ours) return (await isRunning(node)) ? 'done' : 'start';
  }
  let link: PeerLink | undefined;
  try {
    link = await connectPeerWith({ password: bundle.password, ca: bundle.ca }, bundle.standby, bundle.primary, log);
    const facts = await peerFacts(link);
    if (facts.inRecovery) throw new PreflightError(`${bundle.primary.host}:${bundle.primary.port} is a standby itself: clone the primary`);
    if (Math.floor(facts.serverVersionNum / 10000) !== Number(node.cluster.bin.version)) {
      throw new PreflightError(
        `the primary runs PostgreSQL ${Math.floor(facts.serverVersionNum / 10000)}, this host has ${node.cluster.bin.version}: a standby needs the same major version`,
      );
    }
  } finally {
    await link?.close();
  }
  return todo;
}

export async function standbyInit(root: Root, request: InitRequest, io: Output): Promise<number> {
  // Both up front, --dry-run too: nothing is written from a bundle or rate that does not hold.
  // Before the bundle is read: on an automatic pair no bundle makes a knocker standby here.
  await refuseOnAutomaticPair(root, 'knocker standby init', INSTEAD.standby);
  checkMaxRate(request.maxRate);
  const bundle = await readBundle(request.bundle);
  return withRun(root, { command: 'knocker standby init', logFile: STANDBY_PATHS.log }, request, io, async (run) => {
    const { log } = run;
    log.addSecret(bundle.password);
    const node = await nodeAt(root, bundle.standby);
    const todo = await preflight(root, node, bundle, log);
    let primaryLink: PeerLink | undefined;
    const openPrimary = async () => (primaryLink ??= await connectPeerWith({ password: bundle.password, ca: bundle.ca }, bundle.standby, bundle.primary, log));
    const slot = slotName(bundle.standby.host);
    // This host's own web node, if knocker installed one here, follows the pair too.
    const follow = await followPairSteps(root, { hosts: [bundle.primary, bundle.standby], self: bundle.standby, ca: bundle.ca }, log);
    // systemd's check before the cluster starts (a Debian host); a re-run adds it to a standby made without it.
    const fence = node.system ? [await bootFenceStep(root, node.system, log)] : [];
    const standbySteps: Step[] =
      todo === 'done'
        ? fence
        : todo === 'start'
          ? [...fence, startStep(node, log, 'as a hot standby')]
          : [
              ...(await standbyFileSteps(root, node, bundle, log)),
              await clearCutOffStep(node, log),
              ...(todo === 'replace' ? [setAsideStep(node, log)] : []),
              slotStep(openPrimary, slot, bundle.primary),
              cloneStep({ node, primary: bundle.primary, peer: bundle.primary, log, maxRate: request.maxRate }),
              // Only now: undone before Debian's empty cluster, set aside above, is started again.
              ...fence,
              startStep(node, log, `as a hot standby of ${bundle.primary.host}:${bundle.primary.port}`),
            ];
    const steps = [...standbySteps, ...follow.steps];
    const plan = {
      title: `Standby of ${bundle.primary.host}:${bundle.primary.port} on this host (${bundle.standby.host}:${bundle.standby.port})`,
      steps,
      warnings: follow.warnings,
    };
    try {
      if (todo === 'done' && !hasChanges(plan) && !request.dryRun)
        io.err(`Nothing to change: ${node.cluster.dataDir} is already a running standby of ${bundle.primary.host}.`);
      else if (!(await run.showOrApply(plan))) return 0;
    } finally {
      await primaryLink?.close();
    }
    const url = nodesMultiHostUrl(root, bundle);
    io.err(`The standby streams from ${bundle.primary.host}:${bundle.primary.port} (knocker standby status).`);
    if (url) {
      io.err(
        'The web nodes reach whichever of the two takes writes with this connection string (its sslrootcert is the CA file of knocker install --database-ca):',
      );
      io.out(url);
    }
    return 0;
  });
}
