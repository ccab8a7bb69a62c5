// `knocker standby remove`. On the primary: the standby's walsender ended, its slot dropped (the
// WAL it held is freed), its replication lines taken out of pg_hba.conf, the pair's state and the
// bundle file removed. On the standby: its slot on the primary dropped, the standby stopped and
// its copy removed (on a Debian host, the empty cluster standby init set aside put back).
import { refuseOnAutomaticPair } from '../ha/node-state.js';
import { INSTEAD } from '../ha/refusals.js';
import fs from 'node:fs/promises';
import { PreflightError } from '../errors.js';
import { discardHalfMadeCluster } from '../postgres/cluster.js';
import type { Output } from '../shared/output.js';
import { withRun } from '../system/runner.js';
import type { Plan, Step } from '../system/plan.js';
import { ctlCommand, existingNode, isRunning, linkTo, readState, startNode, stopNode, type LocalNode } from './node.js';
import { tryPeer } from './peer.js';
import type { Root } from '../system/root.js';
import { dropReplicationRoleStep, standbyHbaStep, withoutBlock } from './primary.js';
import { replicationPassword } from './peer.js';
import { PATHS } from '../system/root.js';
import { removeBootFenceStep } from './boot-unit.js';
import { bundleFile, slotName, STANDBY_PATHS } from './paths.js';
import { readIfExists, writeFileAtomic } from '../system/files.js';
import type { Logger } from '../system/log.js';
import type { RunFlags } from './run.js';
import { dropStaleSlot } from './clone.js';

/**
 * Debian's layout: the host's configuration of the cluster stays; the empty cluster standby init set
 * aside is put back and started (the host as it was before), and the replication lines go.
 */
function debianRestoreStep(node: LocalNode, log: Logger): Step {
  const system = node.system!;
  const keptAs = `${node.cluster.dataDir}.before-standby`;
  return {
    kind: 'file',
    title: `Cluster ${system.label}: put back the cluster Debian created (${keptAs}), if standby init kept it, and start it; the replication lines leave ${system.hbaFile}`,
    details: [`mv ${keptAs} ${node.cluster.dataDir}`, ctlCommand(node, 'start')],
    changes: true,
    async apply() {
      const hba = (await readIfExists(system.hbaFile)) ?? '';
      const next = withoutBlock(hba);
      if (next !== hba) await writeFileAtomic(system.hbaFile, next, { mode: 0o640, ...node.owner });
      if (!(await fs.stat(keptAs).catch(() => undefined)))
        return `no cluster of Debian's was kept; drop Debian's configuration of it with pg_dropcluster ${system.version} ${system.name}`;
      await fs.rename(keptAs, node.cluster.dataDir);
      await startNode(node, log);
      return undefined;
    },
    async undo() {},
  };
}

export async function standbyRemove(root: Root, flags: RunFlags, io: Output): Promise<number> {
  return withRun(root, { command: 'knocker standby remove', logFile: STANDBY_PATHS.log }, flags, io, async (run) => {
    const { log } = run;
    await refuseOnAutomaticPair(root, 'knocker standby remove', INSTEAD.remove);
    const node = await existingNode(root);
    const state = await readState(root);
    if (!state) throw new PreflightError('this host has no standby state: nothing to remove');
    if (!(await isRunning(node))) throw new PreflightError('PostgreSQL on this host is not running', ['start it first']);
    const local = linkTo(node, log);
    try {
      const session = await local.session();
      const standby = (await session.query<{ r: boolean; hba: string }>(`SELECT pg_is_in_recovery() AS r, current_setting('hba_file') AS hba`)).rows[0]!;
      const slot = slotName(state.peer.host);
      const steps: Step[] = [];
      // systemd's check before a start (a Debian host): the pair it asks about is going.
      const dropIn = node.system ? await removeBootFenceStep(root, node.system, log) : undefined;
      if (!standby.r) {
        steps.push({
          kind: 'database',
          title: `End the standby's replication and drop its slot ${slot} (the WAL it held is freed)`,
          details: [
            `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '${slot}'`,
            `SELECT pg_drop_replication_slot('${slot}')`,
          ],
          changes: true,
          async apply() {
            const s = await local.session();
            await s.query('SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL', [slot]);
            await s.query('SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = $1', [slot]);
            await dropStaleSlot({ client: { query: (t: string, v?: unknown[]) => s.query(t, v) } as never, close: async () => {} }, slot);
          },
          async undo() {},
        });
        steps.push(await standbyHbaStep(local, standby.hba, [], true, root.isSandbox));
        // What exposedb --add-standby made for the standby: its role (and the fence function) too.
        const password = await replicationPassword(root).catch(() => undefined);
        if (password) log.addSecret(password);
        steps.push(dropReplicationRoleStep(local, password, state.database));
      } else {
        steps.push({
          kind: 'database',
          title: `The primary ${state.peer.host}: drop this standby's slot ${slotName(state.self.host)}`,
          details: [`SELECT pg_drop_replication_slot('${slotName(state.self.host)}')  -- once this standby has stopped`],
          changes: true,
          async apply() {
            await stopNode(node, log, 'fast');
            const peer = await tryPeer(root, state.self, state.peer, true, log);
            if (!peer) return `${state.peer.host} does not answer: drop the slot there with knocker standby remove`;
            try {
              await dropStaleSlot(peer, slotName(state.self.host));
            } finally {
              await peer.close();
            }
          },
          async undo() {},
        });
        steps.push({
          kind: 'file',
          title: `Remove this standby's copy ${node.cluster.dataDir}`,
          details: [`rm -r ${node.cluster.dataDir}`],
          changes: true,
          async apply() {
            await discardHalfMadeCluster(node.cluster.dataDir, log);
          },
          async undo() {},
        });
        // Before Debian's own cluster is started again: the check would make it this pair's standby.
        if (dropIn) steps.push(dropIn);
        if (node.system) steps.push(debianRestoreStep(node, log));
      }
      if (!standby.r && dropIn) steps.push(dropIn);
      // The pair's secrets and state on this host (the bundle on the primary; this host's key from it on the standby, whose copy is gone).
      const secrets = [
        root.path(STANDBY_PATHS.state),
        root.path(STANDBY_PATHS.passfile),
        root.path(STANDBY_PATHS.ca),
        bundleFile(root, state.peer.host),
        ...(standby.r ? [root.path(PATHS.pgTlsKey), root.path(PATHS.pgTlsCert)] : []),
      ];
      steps.push({
        kind: 'file',
        title: `Remove the pair's state and secrets: ${secrets.join(', ')}`,
        details: secrets.map((f) => `rm -f ${f}`),
        changes: true,
        async apply() {
          for (const file of secrets) await fs.rm(file, { force: true });
        },
        async undo() {},
      });
      await local.close();
      const plan: Plan = {
        title: standby.r ? `Remove this standby (${state.self.host})` : `Remove the standby ${state.peer.host} of this primary`,
        steps,
        warnings: [],
      };
      if (!(await run.showOrApply(plan))) return 0;
      io.err(
        standby.r
          ? `Done: this standby is gone and its slot on ${state.peer.host} dropped.`
          : `Done: the standby ${state.peer.host} can no longer replicate; its slot is dropped and this primary holds no WAL for it.`,
      );
      return 0;
    } finally {
      await local.close();
    }
  });
}
