// `knocker standby switchover`, on the primary while both hosts are up: no acknowledged write is
// lost. The standby is given a slot for this node; this node is stopped cleanly (CHECKPOINT, fast
// shutdown: its walsender hands the standby everything up to the shutdown checkpoint, and nothing
// is written after it); the standby must have replayed past that checkpoint before it is promoted
// (pg_promote), then CHECKPOINT there (trap 4); this node restarts as its standby on the new
// timeline (no pg_rewind after a clean shutdown). If the standby does not get there, this node
// starts again as the primary and nothing else changed. Once pg_promote was sent the peer may
// finish its promotion at any later moment (a stalled startup process resumes): from then on this
// node is never started writable again. Its standby settings are written before pg_promote is
// sent (whatever starts it later, systemd at boot included, starts a standby), and the undo asks
// the peer first: promoted, this node follows it; still promoting or not answering, this node
// stays read-only or stopped, and the run says so with the next command (exit 5).
import { readHaNodeState } from '../ha/node-state.js';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PreflightError } from '../errors.js';
import type { Output } from '../shared/output.js';
import { withRun } from '../system/runner.js';
import type { Plan, Step } from '../system/plan.js';
import type { Root } from '../system/root.js';
import { dropSlotsForPeer, waitStreaming } from './init.js';
import {
  applyNodeConfig,
  controlData,
  ctlCommand,
  existingNode,
  isRunning,
  linkTo,
  lsn,
  readState,
  startNode,
  stopNode,
  type LocalNode,
  type PairState,
} from './node.js';
import { connectPeer, dropPeerSlot, ensurePeerSlot, peerFacts, tryPeer, type PeerLink } from './peer.js';
import { slotName, STANDBY_PATHS } from './paths.js';
import { until, type RunFlags } from './run.js';
import { applyOnPeer, describeOutcome } from './allow-list.js';
import type { Logger } from '../system/log.js';

/** The most a standby may be behind for a switchover to start (it must catch up while writes are stopped). */
const MAX_LAG_BYTES = 64 * 1024 * 1024;

interface Shared {
  promoted: boolean;
  /** pg_promote was sent: the peer may become the primary at any moment, whatever it answered. */
  promoteSent: boolean;
  /** This node's settings were turned into a standby's (just before pg_promote). */
  standbyConfig?: boolean;
  checkpoint?: string;
  stoppedAt?: number;
  promotedAt?: number;
}

/** This node becomes a standby of `primary`: its settings, standby.signal, start, streaming; B's old slot here dropped. */
export function followStep(node: LocalNode, state: PairState, log: Logger): Step {
  let started = false;
  return {
    kind: 'service',
    title: `This node (${state.self.host}) follows ${state.peer.host} as its standby: primary_conninfo, slot ${slotName(state.self.host)}, standby.signal, start`,
    details: [
      `postgresql.auto.conf: primary_conninfo to ${state.peer.host}:${state.peer.port}, primary_slot_name '${slotName(state.self.host)}'`,
      'standby.signal',
      'pg_ctl start; wait until it streams',
    ],
    changes: true,
    async apply() {
      await applyNodeConfig(node, node.cluster.dataDir, { standbyOf: state.peer, tls: true, peer: state.peer }, node.root.isSandbox);
      started = true;
      await startNode(node, log);
      await waitStreaming(node, log);
      // The slot the peer used here while it was the standby would hold WAL for nobody.
      await dropSlotsForPeer(node, state.peer.host, log);
      return 'streaming on the new timeline';
    },
    // Never back as a primary once the peer took over: this node stays stopped.
    async undo() {
      if (started) await stopNode(node, log, 'fast');
    },
  };
}

/**
 * The undo of a switchover once pg_promote was sent: asks the peer (on the link the run holds, then
 * afresh) and leaves this node unwritable whatever the answer. Returns what remains, for exit 5.
 */
async function afterPromoteSent(root: Root, node: LocalNode, state: PairState, held: PeerLink, log: Logger): Promise<string> {
  const peer = `${state.peer.host}:${state.peer.port}`;
  const ask = async (link: PeerLink) => (await link.client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r;
  let inRecovery: boolean | undefined = await ask(held).catch(() => undefined);
  if (inRecovery === undefined) {
    const fresh = await tryPeer(root, state.self, state.peer, true, log);
    if (fresh) inRecovery = await ask(fresh).catch(() => undefined);
    await fresh?.close();
  }
  log.warn(
    `switchover undo: ${peer} ${inRecovery === undefined ? 'does not answer' : inRecovery ? 'is still in recovery (promotion pending)' : 'is the primary'}`,
  );
  if (inRecovery === undefined) {
    return `this node is stopped, not restarted as the primary: ${peer} was asked to promote and does not answer, so it may be the primary now. Whatever starts this node brings it up read-only as ${state.peer.host}'s standby. Next: knocker standby status on ${state.peer.host}; if it is the primary, knocker service start postgres here (it follows it); if ${state.peer.host} is lost for good, knocker service start postgres, then knocker standby promote here`;
  }
  await startNode(node, log);
  if (!inRecovery) {
    await waitStreaming(node, log, 30_000).catch((error: Error) => log.warn(`switchover undo: ${error.message}`));
    return `this node is not the primary again: ${peer} finished its promotion and is the primary; this node is started as its standby (read-only). The switchover happened after all: knocker standby status`;
  }
  return `this node is not the primary again: ${peer} was asked to promote and has not finished (it still may, e.g. a stalled startup process resuming); this node is started read-only as its standby and follows it once it is the primary. To make this node the primary instead: stop PostgreSQL on ${state.peer.host} first (knocker service stop postgres there), then knocker standby promote here`;
}

export async function standbySwitchover(root: Root, flags: RunFlags & { catchUpTimeoutMs?: number }, io: Output): Promise<number> {
  // On an automatic pair the switchover is pg_auto_failover's (knocker's own moves would fight its keeper).
  const ha = await readHaNodeState(root);
  if (ha) return (await import('../ha/switchover.js')).haSwitchover(root, ha, flags, io);
  return withRun(root, { command: 'knocker standby switchover', logFile: STANDBY_PATHS.log }, flags, io, async (run) => {
    const { log } = run;
    const node = await existingNode(root);
    const state = await readState(root);
    if (!state)
      throw new PreflightError('this host has no standby (no knocker standby state here)', [
        'knocker exposedb --add-standby ADDR, then knocker standby init on that host',
      ]);
    if (!(await isRunning(node)))
      throw new PreflightError(`PostgreSQL on this host is not running: a switchover starts on the running primary`, [
        "if the primary is lost, run knocker standby promote on the standby's host instead",
      ]);
    const local = linkTo(node, log);
    let peer: PeerLink | undefined;
    try {
      const session = await local.session();
      const me = (await session.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!;
      if (me.r) throw new PreflightError("this node is a standby: run knocker standby switchover on the primary's host");
      peer = await connectPeer(root, state.self, state.peer, true, log);
      const facts = await peerFacts(peer);
      if (!facts.inRecovery)
        throw new PreflightError(`${state.peer.host} is a primary too: no switchover between two primaries`, [
          'knocker standby status shows both; rejoin the one that should follow',
        ]);
      const replica = (
        await session.query<{ state: string; lag: string | null }>(
          `SELECT state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::text AS lag FROM pg_stat_replication WHERE application_name = $1`,
          [slotName(state.peer.host)],
        )
      ).rows[0];
      if (replica?.state !== 'streaming')
        throw new PreflightError(`the standby ${state.peer.host} is not streaming from this primary (${replica?.state ?? 'not connected'})`, [
          'knocker standby status',
        ]);
      if (replica.lag !== null && Number(replica.lag) > MAX_LAG_BYTES) {
        throw new PreflightError(`the standby is ${Number(replica.lag)} bytes behind: a switchover would keep writes stopped while it catches up`, [
          'wait until knocker standby status shows a small lag, then run this again',
        ]);
      }
      await local.close();
      // pg_promote waits as long as the catch-up may take (at most its own 60 s).
      const promoteWaitSeconds = Math.max(1, Math.min(60, Math.ceil((flags.catchUpTimeoutMs ?? 60_000) / 1000)));
      const shared: Shared = { promoted: false, promoteSent: false };
      const target = peer;
      const steps: Step[] = [
        {
          kind: 'database',
          title: `${state.peer.host}: a replication slot for this node (${slotName(state.self.host)}), so it can follow there`,
          details: [`SELECT pg_create_physical_replication_slot('${slotName(state.self.host)}', true)`],
          changes: true,
          async apply() {
            await ensurePeerSlot(target, slotName(state.self.host));
          },
          async undo() {
            // This node may have to follow the peer (see the fence step): its slot there stays.
            if (shared.promoteSent) return;
            await dropPeerSlot(target, slotName(state.self.host)).catch(() => {});
          },
        },
        {
          kind: 'service',
          title: 'Fence this primary: CHECKPOINT, then a clean fast shutdown (no new writes; open sessions end)',
          details: ['CHECKPOINT', ctlCommand(node, 'stop'), "pg_controldata: the shutdown checkpoint's location"],
          changes: true,
          async apply() {
            const link = linkTo(node, log);
            try {
              await (await link.session()).query('CHECKPOINT');
            } finally {
              await link.close();
            }
            shared.stoppedAt = Date.now();
            await stopNode(node, log, 'fast');
            const control = await controlData(node, log);
            if (control.state !== 'shut down') throw new Error(`after the shutdown the cluster says "${control.state}", not "shut down"`);
            shared.checkpoint = control.checkpointLocation;
            return `shut down at ${control.checkpointLocation}`;
          },
          async undo() {
            if (!shared.promoteSent) {
              if (shared.standbyConfig) await fs.rm(path.join(node.cluster.dataDir, 'standby.signal'), { force: true });
              await startNode(node, log);
              return;
            }
            // Never back as a primary once the peer was asked to take over: what it is now decides.
            throw new Error(await afterPromoteSent(root, node, state, target, log));
          },
          async remains() {
            return shared.promoteSent;
          },
        },
        {
          kind: 'database',
          title: `${state.peer.host}: wait until it has replayed past this node's shutdown checkpoint (every acknowledged write)`,
          details: ['SELECT pg_last_wal_replay_lsn() > <shutdown checkpoint>'],
          changes: true,
          async apply() {
            const wanted = lsn(shared.checkpoint!);
            const replayed = await until(
              `${state.peer.host} replaying past ${shared.checkpoint}`,
              async () => {
                const f = await peerFacts(target);
                return f.replayLsn && lsn(f.replayLsn) > wanted ? f.replayLsn : undefined;
              },
              flags.catchUpTimeoutMs ?? 60_000,
              20,
            );
            return `replayed up to ${replayed}`;
          },
          async undo() {},
        },
        {
          kind: 'database',
          title: `${state.peer.host}: the nodes' allow-list (replicated) into its own pg_hba.conf, before it takes writes`,
          details: ['SELECT knocker.apply_allow_list(true)  -- checked by PostgreSQL there, reloaded'],
          changes: true,
          async apply() {
            return describeOutcome(await applyOnPeer(target, undefined, state.peer.host));
          },
          // Kept: it is the primary's list, which that host follows whatever its role.
          async undo() {},
        },
        {
          kind: 'database',
          title: `Promote ${state.peer.host} (pg_promote), then CHECKPOINT there (pg_rewind reads the new timeline from it)`,
          details: [
            `this node's settings as ${state.peer.host}'s standby first (standby.signal): however it is started from now on, it is read-only`,
            `SELECT pg_promote(true, ${promoteWaitSeconds})`,
            'CHECKPOINT',
          ],
          changes: true,
          async apply() {
            shared.standbyConfig = true;
            await applyNodeConfig(node, node.cluster.dataDir, { standbyOf: state.peer, tls: true, peer: state.peer }, node.root.isSandbox);
            shared.promoteSent = true;
            const { rows } = await target.client.query<{ done: boolean }>('SELECT pg_promote(true, $1) AS done', [promoteWaitSeconds]);
            if (!rows[0]?.done) throw new Error(`${state.peer.host} did not finish its promotion within ${promoteWaitSeconds} s`);
            shared.promoted = true;
            shared.promotedAt = Date.now();
            await target.client.query('CHECKPOINT');
            const f = await peerFacts(target);
            return `primary on timeline ${f.timeline}`;
          },
          // A promotion cannot be taken back; this node then stays stopped (see the fence step).
          async undo() {},
        },
        followStep(node, state, log),
      ];
      const plan: Plan = { title: `Switchover: ${state.peer.host} becomes the primary, this node (${state.self.host}) its standby`, steps, warnings: [] };
      if (!(await run.showOrApply(plan))) return 0;
      const unavailable = ((shared.promotedAt ?? 0) - (shared.stoppedAt ?? 0)) / 1000;
      log.info(`switchover: writes unavailable for ${unavailable.toFixed(3)} s`);
      io.err(`Done: ${state.peer.host}:${state.peer.port} is the primary; this node streams from it. Writes were stopped for ${unavailable.toFixed(1)} s.`);
      io.out(`primary ${state.peer.host}:${state.peer.port}`);
      return 0;
    } finally {
      await local.close();
      await peer?.close();
    }
  });
}
