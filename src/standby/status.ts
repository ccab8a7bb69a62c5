// `knocker standby status`: this node's role and timeline, the replication it serves or receives
// (lag in bytes and time, the slot and the WAL it holds), the peer's role as it answers, and
// whether the standby could take over now. Exit 0 healthy, 1 degraded (not streaming, slot lost,
// two primaries), 3 this node's database is not running.
import { readHaNodeState } from '../ha/node-state.js';
import { keptCopies, type KeptCopy } from './kept.js';
import { readSlots, readStandbys, type SlotInfo, type StandbyInfo } from '../postgres/replication.js';
import type { Output } from '../shared/output.js';
import type { Root } from '../system/root.js';
import { bytes } from '../system/units.js';
import { controlData, existingNode, lsn, isRunning, linkTo, readState, type LocalNode, type PairState } from './node.js';
import { peerFacts, tryPeer, type PeerFacts } from './peer.js';
import { slotName } from './paths.js';

export interface StatusReport {
  node: {
    host: string;
    port: number;
    running: boolean;
    role: 'primary' | 'standby' | 'stopped';
    timeline: number | undefined;
    clusterState?: string;
    fenced?: boolean;
  };
  peer: { host: string; port: number; answers: boolean; role?: 'primary' | 'standby'; timeline?: number; readOnly?: boolean } | undefined;
  /** On the primary: its standbys as pg_stat_replication shows them. */
  replicas: StandbyInfo[];
  slots: SlotInfo[];
  /** On a standby: what it receives. */
  receiver?: {
    status: string | null;
    sender: string | null;
    receivedLsn: string | null;
    replayedLsn: string | null;
    lagBytes: number | null;
    lagSeconds: number | null;
  };
  canTakeOver: boolean;
  problems: string[];
  promoted?: PairState['promoted'];
  /** Copies a rejoin kept (old data directories, WAL past a divergence): nothing saved is deleted silently. */
  kept: KeptCopy[];
}

export async function readStatus(node: LocalNode, state: PairState | undefined): Promise<StatusReport> {
  const report: StatusReport = {
    node: { host: node.cluster.host, port: node.cluster.port, running: false, role: 'stopped', timeline: undefined },
    peer: undefined,
    replicas: [],
    slots: [],
    canTakeOver: false,
    problems: [],
    promoted: state?.promoted,
    kept: await keptCopies(node.cluster.dataDir),
  };
  let peer: PeerFacts | undefined;
  if (state) {
    const link = await tryPeer(node.root, state.self, state.peer, true);
    report.peer = { host: state.peer.host, port: state.peer.port, answers: Boolean(link) };
    if (link) {
      try {
        peer = await peerFacts(link);
        Object.assign(report.peer, { role: peer.inRecovery ? 'standby' : 'primary', timeline: peer.timeline, readOnly: peer.readOnly });
      } finally {
        await link.close();
      }
    }
  }
  if (!(await isRunning(node))) {
    const control = await controlData(node).catch(() => undefined);
    report.node.timeline = control?.timeline;
    report.node.clusterState = control?.state;
    report.problems.push(`PostgreSQL on this host (${node.cluster.host}:${node.cluster.port}) is not running`);
    return report;
  }
  report.node.running = true;
  const link = linkTo(node);
  try {
    const session = await link.session();
    const row = (
      await session.query<{ in_recovery: boolean; tli: number | null; fenced: boolean }>(
        `SELECT pg_is_in_recovery() AS in_recovery,
                (SELECT setting = 'on' AND source = 'configuration file' FROM pg_settings WHERE name = 'default_transaction_read_only') AS fenced,
                CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli FROM pg_stat_wal_receiver) ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS tli`,
      )
    ).rows[0]!;
    report.node.role = row.in_recovery ? 'standby' : 'primary';
    if (!row.in_recovery && row.fenced) report.node.fenced = true;
    report.node.timeline = row.tli ?? (await session.query<{ t: number }>('SELECT timeline_id AS t FROM pg_control_checkpoint()')).rows[0]!.t;
    report.slots = (await readSlots(session, !row.in_recovery)).filter((slot) => slot.type === 'physical');
    for (const slot of report.slots) {
      if (slot.walStatus === 'lost')
        report.problems.push(`slot ${slot.name} has lost WAL its standby needs: that standby must be cloned again (knocker standby remove, then init)`);
    }
    if (!row.in_recovery) {
      report.replicas = await readStandbys(session);
      if (report.node.fenced) {
        report.problems.push(
          `this node is fenced (read-only in its own settings)${state && peer && !peer.inRecovery ? `: ${state.peer.host} is the primary; bring this node back as its standby with knocker standby rejoin` : ''}`,
        );
      } else if (state && peer && !peer.inRecovery && !peer.readOnly) {
        report.problems.push(
          `TWO PRIMARIES: ${state.peer.host}:${state.peer.port} takes writes too; stop one of them (knocker standby rejoin on the old primary's host)`,
        );
      } else if (state && !report.replicas.some((r) => r.name === slotName(state.peer.host) && r.state === 'streaming')) {
        report.problems.push(`the standby ${state.peer.host} is not streaming from this primary`);
      }
    } else {
      const r = (
        await session.query<{
          status: string | null;
          sender: string | null;
          received: string | null;
          replayed: string | null;
          lag: string | null;
          seconds: string | null;
        }>(
          `SELECT w.status, w.sender_host || ':' || w.sender_port AS sender, pg_last_wal_receive_lsn()::text AS received, pg_last_wal_replay_lsn()::text AS replayed,
                  greatest(0, pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()))::text AS lag,
                  CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN '0' ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::text END AS seconds
             FROM (SELECT 1) one LEFT JOIN pg_stat_wal_receiver w ON true`,
        )
      ).rows[0]!;
      report.receiver = {
        status: r.status,
        sender: r.sender,
        receivedLsn: r.received,
        replayedLsn: r.replayed,
        lagBytes: r.lag === null ? null : Number(r.lag),
        lagSeconds: r.seconds === null ? null : Number(r.seconds),
      };
      if (r.status !== 'streaming') report.problems.push('this standby is not streaming from its primary');
      // Taking over now loses nothing only if it streams, has replayed what it received, and the primary is not behind it.
      report.canTakeOver = r.status === 'streaming' && (report.receiver.lagBytes ?? 1) === 0;
      if (peer && !peer.inRecovery && peer.lsn && r.received && lsn(peer.lsn) > lsn(r.received)) report.canTakeOver = false;
    }
  } finally {
    await link.close();
  }
  return report;
}

function size(n: number | null): string {
  return n === null ? 'unknown' : bytes(n);
}

export function formatStatus(report: StatusReport): string[] {
  const lines: string[] = [];
  const n = report.node;
  lines.push(
    `This node  ${n.host}:${n.port}  ${n.role.toUpperCase()}${n.fenced ? '  (fenced: read-only)' : ''}${n.timeline !== undefined ? `  timeline ${n.timeline}` : ''}${n.clusterState ? `  (${n.clusterState})` : ''}`,
  );
  if (report.peer) {
    const p = report.peer;
    lines.push(
      `Peer       ${p.host}:${p.port}  ${p.answers ? `${(p.role ?? 'unknown').toUpperCase()}${p.timeline !== undefined ? `  timeline ${p.timeline}` : ''}${p.role === 'primary' && p.readOnly ? '  (fenced: read-only)' : ''}` : 'NOT ANSWERING'}`,
    );
  }
  for (const r of report.replicas)
    lines.push(
      `Standby    ${r.name}  from ${r.clientAddress ?? '?'}  ${r.state}  lag ${size(r.lagBytes)}${r.lagSeconds !== null ? `, ${r.lagSeconds.toFixed(3)} s` : ''}`,
    );
  if (report.receiver) {
    const r = report.receiver;
    lines.push(
      `Receiving  ${r.status ?? 'not connected'}${r.sender ? ` from ${r.sender}` : ''}  received ${r.receivedLsn ?? '-'}  replayed ${r.replayedLsn ?? '-'}  lag ${size(r.lagBytes)}${r.lagSeconds !== null ? `, ${r.lagSeconds.toFixed(3)} s` : ''}`,
    );
    lines.push(`Take over  ${report.canTakeOver ? 'yes: it has replayed everything it received' : 'not without loss now (not streaming, or behind)'}`);
  }
  for (const s of report.slots)
    lines.push(
      `Slot       ${s.name}  ${s.active ? 'active' : 'INACTIVE'}  ${s.walStatus ?? ''}  holds ${size(s.retainedBytes)}${s.safeWalSizeBytes !== null ? ` (${size(s.safeWalSizeBytes)} before it is lost)` : ''}`,
    );
  if (report.promoted)
    lines.push(
      `Promoted   ${report.promoted.at} over ${report.promoted.oldPrimary.host} (timeline ${report.promoted.timeline}; received up to ${report.promoted.lastReceivedLsn})`,
    );
  for (const k of report.kept) lines.push(`Kept       ${k.path}  ${bytes(k.bytes)}: ${k.what}; remove with: ${k.remove}`);
  for (const p of report.problems) lines.push(`problem: ${p}`);
  if (report.problems.length === 0) lines.push('OK');
  return lines;
}

export async function standbyStatus(root: Root, flags: { json: boolean }, io: Output): Promise<number> {
  const ha = await readHaNodeState(root);
  if (ha) {
    const { readFormation, formatFormation, formationExit } = await import('../ha/formation.js');
    const report = await readFormation(root, ha, { events: 5 });
    if (flags.json) io.out(JSON.stringify(report, null, 2));
    else for (const line of formatFormation(report)) io.out(line);
    return formationExit(report);
  }
  const node = await existingNode(root);
  const state = await readState(root);
  const report = await readStatus(node, state);
  if (flags.json) io.out(JSON.stringify(report, null, 2));
  else for (const line of formatStatus(report)) io.out(line);
  if (!report.node.running) return 3;
  return report.problems.length === 0 ? 0 : 1;
}
