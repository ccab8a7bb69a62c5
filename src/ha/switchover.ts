// `knocker standby switchover` on a data host of an automatic pair: pg_auto_failover's switchover
// (`pg_autoctl perform switchover`, asked through this host's keeper config), never knocker's own
// moves (they would fight the keeper). Refused (exit 3, nothing asked) unless the monitor answers and
// the pair is settled with a primary and a healthy secondary. The run waits (waitFor) until the
// formation has settled again with the other node as the primary, and prints it. A switchover cannot
// be taken back: there is no undo beyond pg_auto_failover's own (another switchover).
import { PreflightError } from '../errors.js';
import type { Output } from '../shared/output.js';
import type { Plan } from '../system/plan.js';
import type { Root } from '../system/root.js';
import { withRun, type RunFlags } from '../system/runner.js';
import { waitFor } from '../system/wait.js';
import { monitorView, type FormationNode } from './formation.js';
import { keeperCtl } from './keeper.js';
import type { HaNodeState } from './node-state.js';

export const HA_LOG = '/var/log/knocknoc/ha.log';

/** One primary, one healthy secondary, nobody moving: the primary's and the secondary's nodes, or why not. */
export function settledPair(nodes: FormationNode[]): { primary: FormationNode; secondary: FormationNode } | string {
  const moving = nodes.find((n) => n.inTransition);
  if (moving) return `${moving.name} is moving (${moving.reportedState} -> ${moving.goalState})`;
  const primary = nodes.find((n) => n.reportedState === 'primary');
  if (!primary) {
    const wait = nodes.find((n) => n.reportedState === 'wait_primary');
    return wait ? `${wait.name} is wait_primary: its standby is not in sync, there is nobody to switch over to` : 'no node is the primary';
  }
  const secondary = nodes.find((n) => n.reportedState === 'secondary' && n.health === 'healthy');
  if (!secondary) return 'no healthy secondary';
  return { primary, secondary };
}

export async function haSwitchover(root: Root, state: HaNodeState, flags: RunFlags & { settleTimeoutMs?: number }, io: Output): Promise<number> {
  return withRun(root, { command: 'knocker standby switchover', logFile: HA_LOG }, flags, io, async (run) => {
    const { log } = run;
    const view = await monitorView(root, state, 0, log);
    if ('error' in view)
      throw new PreflightError(`${view.unreadable ? view.error : `the monitor does not answer (${view.error})`}: a switchover is the monitor's to run`, [
        'knocker standby status shows what this host knows; run this again once the monitor answers',
      ]);
    const pair = settledPair(view.nodes);
    if (typeof pair === 'string')
      throw new PreflightError(`the automatic pair is not ready for a switchover: ${pair}`, ['knocker standby status; run this again once it shows OK']);
    const { primary, secondary } = pair;
    const timeoutMs = flags.settleTimeoutMs ?? 120_000;
    let unavailableMs: number | undefined;
    const plan: Plan = {
      title: `Switchover (pg_auto_failover): ${secondary.name} (${secondary.address}) becomes the primary, ${primary.name} (${primary.address}) its standby`,
      steps: [
        {
          kind: 'command',
          title: `Ask the monitor for a switchover (pg_autoctl perform switchover), then wait until the pair has settled with ${secondary.name} as the primary`,
          details: [
            `pg_autoctl perform switchover --pgdata ${state.pgdata}`,
            `wait up to ${Math.round(timeoutMs / 1000)} s: ${secondary.name} primary, ${primary.name} secondary`,
          ],
          changes: true,
          async apply() {
            const started = Date.now();
            await keeperCtl(root, state, ['perform', 'switchover', '--wait', String(Math.ceil(timeoutMs / 1000))], { log, timeoutMs: timeoutMs + 10_000 });
            await waitFor(
              `${secondary.name} to be the primary and ${primary.name} its secondary`,
              async (probe) => {
                const now = await monitorView(root, state, 0, log);
                if ('error' in now) {
                  probe.seen(now.error);
                  return undefined;
                }
                const settled = settledPair(now.nodes);
                if (typeof settled === 'string') {
                  probe.seen(settled);
                  return undefined;
                }
                return settled.primary.name === secondary.name ? true : undefined;
              },
              { timeoutMs, everyMs: 250 },
            );
            unavailableMs = Date.now() - started;
            return `${secondary.name} is the primary`;
          },
          // pg_auto_failover's switchover cannot be taken back (another switchover can).
          async undo() {},
        },
      ],
      warnings: ['writes stop for a moment while the primary changes (about a second when the standby is in sync)'],
    };
    const applied = await run.showOrApply(plan, {
      details: {
        mode: 'automatic',
        from: { name: primary.name, address: primary.address, port: primary.port },
        to: { name: secondary.name, address: secondary.address, port: secondary.port },
      },
    });
    if (!applied) return 0;
    io.err(
      `Done: ${secondary.name} (${secondary.address}:${secondary.port}) is the primary; ${primary.name} follows it (${((unavailableMs ?? 0) / 1000).toFixed(1)} s until settled).`,
    );
    io.out(`primary ${secondary.address}:${secondary.port}`);
    return 0;
  });
}
