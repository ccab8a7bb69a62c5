// `knocker standby promote`, on the standby when the primary is lost. Refused while the old
// primary still answers as a writable primary (a second primary would split the writes) unless
// --force, which fences it first (knocker.set_fence(): read-only in that server's own settings file,
// never replicated; its sessions ended). The fence is taken away again if the run fails before
// pg_promote was sent; once it was sent, this node may become the primary at any moment, so the
// fence stays and the run says so (exit 5).
// What was done is recorded in the state file; the old primary, when knocker starts it again,
// asks this node first and comes up as a read-only standby instead (fence.ts).
import { refuseOnAutomaticPair } from '../ha/node-state.js';
import { INSTEAD } from '../ha/refusals.js';
import { PreflightError } from '../errors.js';
import type { Output } from '../shared/output.js';
import { withRun } from '../system/runner.js';
import { STANDBY_PATHS } from './paths.js';
import type { Plan, Step } from '../system/plan.js';
import type { Root } from '../system/root.js';
import { existingNode, isRunning, linkTo, lsn, readState, writeState } from './node.js';
import { connectPeer, fencePeer, peerFacts, peerHasFence, tryPeer, unfencePeer, type PeerLink } from './peer.js';
import { until, type RunFlags } from './run.js';
import { applyAllowList } from '../postgres/allow-list-sync.js';
import { describeOutcome } from './allow-list.js';

export async function standbyPromote(root: Root, flags: RunFlags & { force: boolean; promoteTimeoutSeconds?: number }, io: Output): Promise<number> {
  const promoteTimeout = flags.promoteTimeoutSeconds ?? 60;
  return withRun(root, { command: 'knocker standby promote', logFile: STANDBY_PATHS.log }, flags, io, async (run) => {
    const { log } = run;
    await refuseOnAutomaticPair(root, 'knocker standby promote', INSTEAD.promote);
    const node = await existingNode(root);
    const state = await readState(root);
    if (!state) throw new PreflightError('this host is not a knocker standby (no standby state here)');
    if (!(await isRunning(node))) throw new PreflightError('PostgreSQL on this host is not running', ['start it first: it must be running to be promoted']);
    const local = linkTo(node, log);
    let peer: PeerLink | undefined;
    try {
      const session = await local.session();
      if (!(await session.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]!.r) {
        throw new PreflightError('this node is a primary already');
      }
      peer = await tryPeer(root, state.self, state.peer, true, log);
      const facts = peer ? await peerFacts(peer) : undefined;
      const writable = facts && !facts.inRecovery && !facts.readOnly;
      if (writable && !flags.force) {
        throw new PreflightError(`the primary ${state.peer.host}:${state.peer.port} still answers and takes writes: promoting now would make two primaries`, [
          `for a planned move, run knocker standby switchover on ${state.peer.host}`,
          'or stop it there, or give --force (it is fenced first: read-only, its sessions ended)',
        ]);
      }
      if (writable && peer && !(await peerHasFence(peer))) {
        throw new PreflightError(`the primary ${state.peer.host} has no knocker.set_fence() (made by an older knocker): it cannot be fenced from here`, [
          `stop PostgreSQL on ${state.peer.host} instead, or on it run knocker exposedb --add-standby ${state.self.host} again (this version), then promote --force`,
        ]);
      }
      const target = peer;
      let fenced = false;
      let promoteSent = false;
      /** The old primary's WAL position once fenced: this node receives up to it before promoting (nothing acknowledged is lost). */
      // A primary that answers but takes no writes (fenced) may still hold WAL this node has not received.
      let fencedAt: string | undefined = facts && !facts.inRecovery ? facts.lsn : undefined;
      let received = '';
      let allowList = '';
      let timeline = 0;
      const steps: Step[] = [];
      if (writable && target) {
        steps.push({
          kind: 'database',
          title: `Fence the old primary ${state.peer.host}: read-only in its own settings (never replicated, kept across restarts), open sessions ended`,
          details: [
            `SELECT knocker.set_fence(true)  -- on ${state.peer.host}: default_transaction_read_only = on in its postgresql.auto.conf, reload, pg_terminate_backend(…)`,
            'wait until a new session there is read-only',
          ],
          changes: true,
          async apply() {
            fenced = true;
            const result = await fencePeer(target, () => connectPeer(root, state.self, state.peer, true, log));
            fencedAt = result.lsn;
            return `${result.ended} session(s) ended`;
          },
          async undo() {
            if (!fenced) return;
            if (promoteSent) {
              throw new Error(
                `${state.peer.host} stays fenced (read-only): this node was asked to promote and may finish at any moment. When knocker standby status here says PRIMARY, run knocker standby rejoin on ${state.peer.host}; to give it back its writes instead, stop PostgreSQL here first, then on ${state.peer.host} run knocker standby promote`,
              );
            }
            const link = await connectPeer(root, state.self, state.peer, true, log);
            try {
              await unfencePeer(link);
            } finally {
              await link.close();
            }
          },
        });
      }
      steps.push({
        kind: 'database',
        title: 'Promote this standby (pg_promote), then CHECKPOINT; record it so the old primary cannot come back as a primary',
        details: [
          ...(writable ? ["wait until this node has received the fenced primary's WAL (up to 10 s)"] : []),
          'SELECT pg_last_wal_receive_lsn()',
          "SELECT knocker.apply_allow_list(true)  -- the nodes' allow-list (replicated) into this host's pg_hba.conf, checked, reloaded",
          `SELECT pg_promote(true, ${promoteTimeout})`,
          'CHECKPOINT',
          `record in the state file: promoted over ${state.peer.host}`,
        ],
        changes: true,
        async apply() {
          const s = await local.session();
          if (fencedAt) {
            const wanted = lsn(fencedAt);
            await until(
              `receiving the fenced primary's WAL up to ${fencedAt}`,
              async () => {
                const r = (await s.query<{ l: string | null }>('SELECT pg_last_wal_receive_lsn()::text AS l')).rows[0]!.l;
                return r && lsn(r) >= wanted ? true : undefined;
              },
              10_000,
              20,
            ).catch((error: Error) => log.warn(`promote: ${error.message}; promoting with what was received`));
          }
          received = (await s.query<{ l: string | null }>('SELECT coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text AS l')).rows[0]!.l ?? '';
          // The nodes' allow-list as this node has replayed it, in its own pg_hba.conf before it takes
          // writes. Not a reason to stay without a primary: a failure is said, and the promotion goes on.
          allowList = await applyAllowList(s, true).then(describeOutcome, (error: Error) => {
            log.warn(`promote: allow-list: ${error.message}`);
            return `allow-list NOT applied (${error.message}): run knocker exposedb --sync here`;
          });
          promoteSent = true;
          const done = (await s.query<{ done: boolean }>('SELECT pg_promote(true, $1) AS done', [promoteTimeout])).rows[0]?.done;
          if (!done)
            throw new Error(`the promotion did not finish within ${promoteTimeout} s (it may still: this node stays as it is, unwritable while in recovery)`);
          await s.query('CHECKPOINT');
          timeline = (await s.query<{ t: number }>('SELECT timeline_id AS t FROM pg_control_checkpoint()')).rows[0]!.t;
          await writeState(root, {
            ...state,
            promoted: { at: new Date().toISOString(), oldPrimary: state.peer, timeline, lastReceivedLsn: received, oldPrimaryFenced: fenced },
          });
          return `primary on timeline ${timeline}; ${allowList}`;
        },
        // A promotion asked for cannot be taken back: it may still finish (a stalled startup process resuming).
        async undo() {
          if (promoteSent)
            throw new Error(
              `this node was asked to promote (pg_promote) and may become the primary at any moment; until then it takes no writes. knocker standby status here shows when it is PRIMARY; then, once the old primary is back, knocker standby rejoin on its host`,
            );
        },
        async remains() {
          return promoteSent;
        },
      });
      const plan: Plan = {
        title: `Promote this standby (${state.self.host}) to primary`,
        steps,
        warnings: facts ? [] : [`the old primary ${state.peer.host} does not answer: writes it acknowledged after the last WAL this node received are lost`],
      };
      if (!(await run.showOrApply(plan))) return 0;
      io.err(`Done: this node is the primary on timeline ${timeline}; it had received WAL up to ${received}.`);
      io.err(`On ${state.peer.host}, once it is back: knocker standby rejoin (knocker refuses to start it as a second primary while this node answers).`);
      io.out(`primary ${state.self.host}:${state.self.port}`);
      return 0;
    } finally {
      await local.close();
      await peer?.close();
    }
  });
}
