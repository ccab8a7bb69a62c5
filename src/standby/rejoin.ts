// `knocker standby rejoin`, on the old primary's host once the other node is the primary: back as
// its standby. pg_rewind when it diverged (after a CHECKPOINT on the new primary: trap 4; never
// with -R: trap 5), a fresh clone when rewind cannot work (same-timeline divergence: trap 6, no
// checksums or wal_log_hints, a rewind that fails for missing WAL). Either way this node's own
// settings are put back (trap 3). A re-cloned node's old data directory is kept beside it under a
// name of its own, and before a rewind this node's WAL past the divergence is copied aside (kept.ts).
// The first change makes this node a standby in its settings: whatever starts it from then on
// (systemd at boot, a failed run's next start) starts it read-only. A standby that already streams
// from the primary on its timeline is left as it is.
import { refuseOnAutomaticPair } from '../ha/node-state.js';
import { INSTEAD } from '../ha/refusals.js';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PreflightError } from '../errors.js';
import type { Output } from '../shared/output.js';
import { withRun } from '../system/runner.js';
import type { Logger } from '../system/log.js';
import type { Plan, Step } from '../system/plan.js';
import type { Root } from '../system/root.js';
import { run } from '../system/run.js';
import { cloneStep, slotStep } from './clone.js';
import { peerConninfo } from './conninfo.js';
import { decideRejoin, rewindOutcome, type RejoinDecision } from './decide.js';
import { startStep } from './init.js';
import { keepWalPastDivergence, keptName } from './kept.js';
import {
  applyNodeConfig,
  configFileOf,
  controlData,
  ctlCommand,
  existingNode,
  hasStandbySignal,
  isRunning,
  linkTo,
  peerTarget,
  readState,
  stopNode,
  writeState,
  type LocalNode,
  type PairState,
} from './node.js';
import { connectPeer, ensurePeerSlot, peerFacts, type PeerLink } from './peer.js';
import { REPLICATION_ROLE, slotName, STANDBY_PATHS } from './paths.js';
import type { RunFlags } from './run.js';

function stopStep(node: LocalNode, log: Logger): Step {
  return {
    kind: 'service',
    title: `Stop PostgreSQL in ${node.cluster.dataDir} (it must not take writes as a second primary)`,
    details: [ctlCommand(node, 'stop')],
    changes: true,
    async apply() {
      await stopNode(node, log, 'fast');
    },
    async undo() {},
  };
}

/** Turns this stopped node's settings into a standby's of the primary before anything else (fail closed). */
function readOnlyFirstStep(node: LocalNode, state: PairState, wasStandby: boolean): Step {
  return {
    kind: 'file',
    title: `This node's settings as ${state.peer.host}'s standby first (standby.signal, primary_conninfo): whatever starts it from now on, it is read-only`,
    details: ['standby.signal', `primary_conninfo to ${state.peer.host}:${state.peer.port}`],
    changes: true,
    async apply() {
      await applyNodeConfig(node, node.cluster.dataDir, { standbyOf: state.peer, tls: true, peer: state.peer }, node.root.isSandbox);
    },
    // Never back as a primary while the other host is one: it stays a standby in its settings.
    async undo() {
      if (!wasStandby)
        throw new Error(
          `left as ${state.peer.host}'s standby in its settings (read-only whatever starts it), not as the primary it was: ${state.peer.host} is the primary. Run knocker standby rejoin again`,
        );
    },
    async remains() {
      return !wasStandby;
    },
  };
}

function rewindArgs(node: LocalNode, state: PairState): string[] {
  const source = peerConninfo(peerTarget(node, state.peer, true), REPLICATION_ROLE, 'knocker-rewind', 'postgres');
  const config = configFileOf(node);
  return [`--target-pgdata=${node.cluster.dataDir}`, ...(config ? [`--config-file=${config}`] : []), `--source-server=${source}`, '--progress'];
}

/** Before pg_rewind discards this node's writes past the divergence, their WAL is copied aside. */
function keepWalStep(node: LocalNode, state: PairState, peer: PeerLink, log: Logger, kept: { folder?: string }, outcome: { failed?: string }): Step {
  return {
    kind: 'file',
    title: `Keep this node's WAL past the divergence point (what ${state.peer.host} never got) in a folder beside the data directory, before pg_rewind discards it`,
    details: [
      `CHECKPOINT on ${state.peer.host}`,
      'pg_rewind --dry-run: where the two diverged',
      `copy pg_wal's segments from there on to ${node.cluster.dataDir}.rewind-wal-<time>`,
    ],
    changes: true,
    async apply() {
      await peer.client.query('CHECKPOINT');
      // A rewind that cannot even be planned (WAL it needs is gone) falls back to a re-clone, which keeps the whole data directory.
      const result = await keepWalPastDivergence(node, rewindArgs(node, state), log).catch((error: Error) => {
        outcome.failed = error.message;
        throw error;
      });
      kept.folder = result?.folder;
      return result ? `${result.files} file(s) from ${result.diverged} kept in ${result.folder}` : 'no divergence: nothing to keep';
    },
    async undo() {},
  };
}

function rewindStep(node: LocalNode, state: PairState, peer: PeerLink, log: Logger, outcome: { text: string; failed?: string }): Step {
  const args = rewindArgs(node, state);
  return {
    kind: 'command',
    title: `pg_rewind this node onto ${state.peer.host}'s timeline (after a CHECKPOINT there), then this node's own settings`,
    details: [
      `CHECKPOINT on ${state.peer.host}`,
      `pg_rewind ${args.join(' ')}`,
      "this host's listen address, pg_hba.conf, TLS files, primary_conninfo, standby.signal",
    ],
    changes: true,
    async apply() {
      await peer.client.query('CHECKPOINT');
      const result = await run(path.join(node.cluster.bin.dir, 'pg_rewind'), args, {
        asUser: node.cluster.osUser,
        log,
        allowFailure: true,
        withoutPgEnv: true,
        timeoutMs: 6 * 3600_000,
      });
      const text = `${result.stdout}\n${result.stderr}`;
      if (result.exitCode !== 0) {
        outcome.failed = text.trim().split('\n').slice(-3).join(' / ');
        throw new Error(`pg_rewind failed: ${outcome.failed}`);
      }
      outcome.text = text;
      await applyNodeConfig(node, node.cluster.dataDir, { standbyOf: state.peer, tls: true, peer: state.peer }, node.root.isSandbox);
      await ensurePeerSlot(peer, slotName(state.self.host));
      const o = rewindOutcome(text);
      return o.diverged ? `diverged at ${o.diverged} on timeline ${o.timeline}` : o.noRewind ? 'no rewind required' : undefined;
    },
    async undo() {},
  };
}

/** Moves the data directory aside under a name no earlier rejoin used (kept: it holds the writes the new primary never got). */
function setAsideStep(node: LocalNode, keptAs: string): Step {
  return {
    kind: 'file',
    title: `Keep the old data directory as ${keptAs} (its writes the new primary never got), for a fresh clone`,
    details: [`mv ${node.cluster.dataDir} ${keptAs}`],
    changes: true,
    async apply() {
      if (await fs.stat(keptAs).catch(() => undefined)) throw new Error(`${keptAs} exists already; it is not overwritten`);
      await fs.rename(node.cluster.dataDir, keptAs);
    },
    async undo() {
      if (await fs.stat(node.cluster.dataDir).catch(() => undefined)) return;
      await fs.rename(keptAs, node.cluster.dataDir);
    },
  };
}

/** Whether this running node is a standby streaming from the primary on the primary's timeline (nothing to change). */
async function streamsFrom(node: LocalNode, state: PairState, timeline: number): Promise<boolean> {
  const link = linkTo(node);
  try {
    const row = (
      await (
        await link.session()
      ).query<{ r: boolean; status: string | null; sender: string | null; tli: number | null }>(
        'SELECT pg_is_in_recovery() AS r, w.status, w.sender_host AS sender, w.received_tli AS tli FROM (SELECT 1) one LEFT JOIN pg_stat_wal_receiver w ON true',
      )
    ).rows[0];
    return Boolean(row?.r && row.status === 'streaming' && row.sender === state.peer.host && row.tli === timeline);
  } finally {
    await link.close();
  }
}

export async function standbyRejoin(root: Root, flags: RunFlags, io: Output): Promise<number> {
  return withRun(root, { command: 'knocker standby rejoin', logFile: STANDBY_PATHS.log }, flags, io, async (run) => {
    const { log } = run;
    await refuseOnAutomaticPair(root, 'knocker standby rejoin', INSTEAD.rejoin);
    const node = await existingNode(root);
    const state = await readState(root);
    if (!state) throw new PreflightError('this host has no standby state: nothing to rejoin');
    const peer = await connectPeer(root, state.self, state.peer, true, log);
    try {
      const facts = await peerFacts(peer);
      if (facts.inRecovery) throw new PreflightError(`${state.peer.host} is not a primary (it is a standby): rejoin follows the primary`);
      const peerSystem = (await peer.client.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()')).rows[0]!.id;
      const running = await isRunning(node);
      if (running && (await streamsFrom(node, state, facts.timeline))) {
        // --dry-run prints the empty plan in the runner's one shape.
        if (flags.dryRun) {
          await run.showOrApply({
            title: `Rejoin ${state.peer.host} as its standby: this node already streams from it on its timeline ${facts.timeline}`,
            steps: [],
            warnings: [],
          });
          return 0;
        }
        io.err(`Nothing to change: this node already streams from ${state.peer.host} on its timeline ${facts.timeline}.`);
        io.out(`standby of ${state.peer.host}:${state.peer.port} (nothing to change)`);
        return 0;
      }
      const wasStandby = await hasStandbySignal(node.cluster.dataDir);
      const control = await controlData(node, log);
      const slot = (
        await peer.client.query<{ wal_status: string | null }>('SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1', [slotName(state.self.host)])
      ).rows[0];
      const decision: RejoinDecision = decideRejoin({
        ...control,
        peerTimeline: facts.timeline,
        peerSystemIdentifier: peerSystem,
        slotLost: slot?.wal_status === 'lost',
      });
      const outcome: { text: string; failed?: string } = { text: '' };
      const keptAs = await keptName(node.cluster.dataDir, 'before-rejoin');
      const keptWal: { folder?: string } = {};
      const primaryLink = async () => peer;
      const recloneSteps = (): Step[] => [
        setAsideStep(node, keptAs),
        slotStep(primaryLink, slotName(state.self.host), state.peer),
        cloneStep({ node, primary: state.peer, peer: state.peer, log }),
        startStep(node, log, `as a standby of ${state.peer.host}`, state.peer.host),
      ];
      const steps: Step[] = [...(running ? [stopStep(node, log)] : []), readOnlyFirstStep(node, state, wasStandby)];
      if (decision.kind === 'reclone') steps.push(...recloneSteps());
      else if (decision.kind === 'rewind')
        steps.push(
          keepWalStep(node, state, peer, log, keptWal, outcome),
          rewindStep(node, state, peer, log, outcome),
          startStep(node, log, `as a standby of ${state.peer.host}`, state.peer.host),
        );
      else {
        steps.push(
          {
            kind: 'file',
            title: `Point this standby at ${state.peer.host} (primary_conninfo, slot, standby.signal)`,
            details: [`primary_conninfo to ${state.peer.host}:${state.peer.port}`],
            changes: true,
            async apply() {
              await applyNodeConfig(node, node.cluster.dataDir, { standbyOf: state.peer, tls: true, peer: state.peer }, node.root.isSandbox);
              await ensurePeerSlot(peer, slotName(state.self.host));
            },
            async undo() {},
          },
          startStep(node, log, `as a standby of ${state.peer.host}`, state.peer.host),
        );
      }
      const plan: Plan = { title: `Rejoin ${state.peer.host} as its standby: ${decision.kind} (${decision.why})`, steps, warnings: [] };
      let recloned = decision.kind === 'reclone';
      try {
        if (!(await run.showOrApply(plan))) return 0;
      } catch (error) {
        if (decision.kind !== 'rewind' || !outcome.failed) throw error;
        // pg_rewind could not work (WAL it needs is gone): a fresh clone instead.
        io.err(`pg_rewind could not bring this node back (${outcome.failed}); cloning ${state.peer.host} afresh instead.`);
        log.warn(`rejoin: rewind failed, re-cloning: ${outcome.failed}`);
        recloned = true;
        await run.showOrApply({ title: `Rejoin ${state.peer.host} as its standby: reclone (pg_rewind failed)`, steps: recloneSteps(), warnings: [] });
      }
      await writeState(root, { ...state, promoted: undefined });
      const o = rewindOutcome(outcome.text);
      if (recloned)
        io.err(
          `Done: this node is a fresh clone of ${state.peer.host} and streams from it; the old data directory is kept in ${keptAs} (remove it once you no longer need its writes: rm -r ${keptAs}).`,
        );
      else if (o.diverged)
        io.err(
          `Done: rewound (the two had diverged at ${o.diverged} on timeline ${o.timeline}; this node's writes after that are no longer in its data, their WAL is kept in ${keptWal.folder ?? '(nothing to keep)'}); it streams from ${state.peer.host}.`,
        );
      if (recloned || keptWal.folder) io.err('knocker standby status lists what is kept, with its size and the command that removes it.');
      else io.err(`Done: this node streams from ${state.peer.host}.`);
      io.out(`standby of ${state.peer.host}:${state.peer.port} (${recloned ? 'reclone' : decision.kind})`);
      return 0;
    } finally {
      await peer.close();
    }
  });
}
