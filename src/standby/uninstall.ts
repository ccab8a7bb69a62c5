// What `knocker uninstall` does on a host of a replicated pair (issue 22, rule 6). On the primary
// it refuses, first, with the commands to run: its standby replicates from it (standby remove, or
// a switchover so this host becomes the standby). On the standby (made by standby init, or the old
// primary after a switchover) PostgreSQL is stopped before anything is removed (the uninstall
// plan's postgres stop, src/service), then this standby's slot on the primary is dropped (it would
// hold WAL for a standby that is gone), and the pair's secrets here go with knocker's files: the
// replication passfile, the CA copy, this host's certificate and key from the bundle, the state.
// What exposedb --add-standby made on the primary (role, replication lines, passfile, bundle) is
// that host's to remove: `knocker standby remove` there, which the plan says.
import { PreflightError } from '../errors.js';
import { knockerCommand } from '../shared/hint.js';
import type { Logger } from '../system/log.js';
import type { Step } from '../system/plan.js';
import { PATHS, type Root } from '../system/root.js';
import { dropStaleSlot } from './clone.js';
import { existingNode, hasStandbySignal, isRunning, linkTo, readState, type PairState } from './node.js';
import { connectPeerWith, keptCredentials, type PeerCredentials } from './peer.js';
import { bundleFile, REPLICATION_ROLE, slotName, STANDBY_PATHS } from './paths.js';

export interface PairUninstall {
  /** Right after PostgreSQL is stopped: this standby's slot on the primary dropped. */
  afterStop: Step[];
  /** The pair's secrets and state on this host, removed with knocker's other files. */
  files: string[];
  warnings: string[];
}

/** The pair's files on this host that hold secrets or name the pair (a bundle this host made while it was the primary too). */
export function pairFiles(root: Root, state: PairState): string[] {
  return [
    ...[STANDBY_PATHS.passfile, STANDBY_PATHS.ca, STANDBY_PATHS.state, PATHS.pgTlsKey, PATHS.pgTlsCert].map((f) => root.path(f)),
    bundleFile(root, state.peer.host),
  ];
}

/** Whether this node is the pair's writable primary now: asked when it runs, else its settings (standby.signal). */
async function isPrimaryHere(root: Root, log: Logger): Promise<boolean> {
  const node = await existingNode(root).catch(() => undefined);
  if (!node) return false;
  if (!(await isRunning(node))) return !(await hasStandbySignal(node.cluster.dataDir));
  const link = linkTo(node, log);
  try {
    const row = (
      await (await link.session()).query<{ r: boolean; ro: string }>(`SELECT pg_is_in_recovery() AS r, current_setting('default_transaction_read_only') AS ro`)
    ).rows[0]!;
    return !row.r && row.ro !== 'on';
  } finally {
    await link.close();
  }
}

function dropSlotStep(state: PairState, credentials: PeerCredentials | undefined, log: Logger): Step {
  const slot = slotName(state.self.host);
  const peer = `${state.peer.host}:${state.peer.port}`;
  let dropped = false;
  const open = () => connectPeerWith(credentials!, state.self, state.peer, log, 3000);
  return {
    kind: 'database',
    title: `The primary ${peer}: drop this standby's slot ${slot} (it would hold WAL for a standby that is gone)`,
    details: [`SELECT pg_drop_replication_slot('${slot}')  -- as ${REPLICATION_ROLE}, once this standby has stopped`],
    changes: true,
    async apply() {
      const link = credentials ? await open().catch(() => undefined) : undefined;
      if (!link) return `${peer} does not answer: drop the slot there with knocker standby remove`;
      try {
        dropped = await dropStaleSlot(link, slot);
        return dropped ? undefined : 'no such slot there';
      } finally {
        await link.close();
      }
    },
    async undo() {
      if (!dropped) return;
      const link = await open();
      try {
        // WAL from now on is held again; the standby started again catches up from there, or status says to clone it again.
        await link.client.query('SELECT pg_create_physical_replication_slot($1, true)', [slot]);
      } finally {
        await link.close();
      }
    },
  };
}

/** The pair's part of an uninstall here; undefined when this host is not one of a pair. Throws on the primary. */
export async function pairUninstall(root: Root, log: Logger): Promise<PairUninstall | undefined> {
  const state = await readState(root);
  if (!state) return undefined;
  const peer = `${state.peer.host}:${state.peer.port}`;
  if (await isPrimaryHere(root, log)) {
    throw new PreflightError(`this host is the primary of a replicated pair: the standby ${peer} replicates from it; nothing was changed`, [
      `to retire the standby: ${knockerCommand(root, 'standby remove')} here (its replication ended, its slot, lines, role and secrets gone), uninstall on ${state.peer.host}, then this again`,
      `to keep the database on ${state.peer.host}: ${knockerCommand(root, 'standby switchover')} here first; this host is then the standby, and uninstall takes it out of the pair`,
    ]);
  }
  const credentials = await keptCredentials(root).catch(() => undefined);
  if (credentials) log.addSecret(credentials.password);
  return {
    afterStop: [dropSlotStep(state, credentials, log)],
    files: pairFiles(root, state),
    warnings: [
      `this host is the standby of ${peer}: on ${state.peer.host}, run knocker standby remove to drop what exposedb --add-standby made there for it (its replication lines, role, passfile and bundle)`,
    ],
  };
}
