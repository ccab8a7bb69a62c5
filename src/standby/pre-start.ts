// `knocker standby pre-start`: the check before this node's PostgreSQL starts, as systemd runs it
// (the ExecStartPre of boot-unit.ts's drop-in) and as an operator may run it by hand. The decision
// is fence.ts's, the one `knocker service start postgres` makes: the other node answers as the
// primary, or does not answer in time → this node becomes its standby in its own settings (it
// starts read-only); it answers as a standby → this node starts as it is. stdout: the outcome
// (`primary`, `standby`, `fenced`, `not-paired`); the reason on stderr (the unit's journal) and in
// the standby log. No lock: it runs inside knocker's own starts (switchover, rejoin) too, which
// hold it. Any failure exits non-zero, and systemd then does not start the server.
import { refuseOnAutomaticPair } from '../ha/node-state.js';
import { INSTEAD } from '../ha/refusals.js';
import type { Output } from '../shared/output.js';
import type { Plan } from '../system/plan.js';
import type { Root } from '../system/root.js';
import { withRun } from '../system/runner.js';
import { applyFence, decideStart } from './fence.js';
import { existingNode, readState } from './node.js';
import { STANDBY_PATHS } from './paths.js';

export async function standbyPreStart(root: Root, io: Output): Promise<number> {
  const spec = { command: 'knocker standby pre-start', logFile: STANDBY_PATHS.log, lock: false };
  return withRun(root, spec, { dryRun: false, json: false }, io, async (run) => {
    const { log } = run;
    // Exit 3: systemd keeps postgresql@… stopped; the keeper starts this PostgreSQL.
    await refuseOnAutomaticPair(root, 'knocker standby pre-start', INSTEAD.preStart);
    if (!(await readState(root))) {
      io.err('knocker standby pre-start: this host is not one of a pair (no standby state): PostgreSQL starts as it is.');
      io.out('not-paired');
      return 0;
    }
    const node = await existingNode(root);
    const where = { dataDir: node.cluster.dataDir, port: node.cluster.port, host: node.cluster.host };
    const decision = await decideStart(root, where, log);
    if (decision.kind === 'as-is') {
      log.info(`pre-start: ${decision.why}`);
      io.err(`knocker standby pre-start: ${decision.why}.`);
      io.out(decision.role);
      return 0;
    }
    const { peer } = decision.state;
    const plan: Plan = {
      title: `Fence ${node.cluster.dataDir} before it starts`,
      steps: [
        {
          kind: 'file',
          title: `Make this node a standby of ${peer.host}:${peer.port} in its own settings (standby.signal, primary_conninfo): it starts read-only`,
          details: [`${node.cluster.dataDir}/standby.signal`, `${node.cluster.dataDir}/postgresql.auto.conf`],
          changes: true,
          apply: () => applyFence(root, where, decision.state),
          // Left as it is: a fence taken away on a failure could let this node start writable.
          undo: async () => {},
        },
      ],
      warnings: [],
    };
    await run.showOrApply(plan);
    log.info(`pre-start: ${decision.note}`);
    io.err(decision.note);
    io.out('fenced');
    return 0;
  });
}
