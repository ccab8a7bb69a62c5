// The fence on return: before a node of a pair starts as it was (a primary), it asks the other
// node. When that one answers as a writable primary (it was promoted meanwhile), this node starts
// as a standby instead (standby.signal, primary_conninfo to the new primary): read-only, so it
// cannot take writes as a second primary. When the other node does not answer, it may have been
// promoted all the same: this node starts read-only too, and the note says how to decide.
// `knocker standby rejoin` (or `standby promote`, if the other host is lost) then brings it back.
// Two callers make the same decision: `knocker service start postgres`, and on a Debian host
// systemd itself, whose drop-in (boot-unit.ts) runs `knocker standby pre-start` before every start.
import type { PrivateCluster } from '../postgres/cluster.js';
import { knockerCommand } from '../shared/hint.js';
import type { Logger } from '../system/log.js';
import type { Root } from '../system/root.js';
import { sleep } from '../system/wait.js';
import { applyNodeConfig, hasStandbySignal, nodeAt, readState, type PairState } from './node.js';
import { peerFacts, tryPeer, type PeerFacts } from './peer.js';

/** How long asking the other node may take in all (connecting, then its answer): a start is never held longer. */
export const ASK_PEER_MS = 10_000;

/**
 * What a start of this node must be. `as-is`: it starts as its settings say (not one of a pair; a
 * standby already; or the other node answers as a standby or a fenced primary, so this one is the
 * primary). `fence`: it must start read-only as the other node's standby.
 */
export type StartDecision =
  | { kind: 'as-is'; role: 'not-paired' | 'standby' | 'primary'; why: string }
  | { kind: 'fence'; peerAnswered: boolean; note: string; state: PairState };

type Where = Pick<PrivateCluster, 'dataDir' | 'port'> & { host?: string };

/** The other node's facts, or undefined when it does not answer within `timeoutMs` (connect and query together). */
async function askPeer(root: Root, state: PairState, timeoutMs: number, log?: Logger): Promise<PeerFacts | undefined> {
  const started = Date.now();
  const link = await tryPeer(root, state.self, state.peer, true, log, timeoutMs);
  if (!link) return undefined;
  const deadline = new AbortController();
  let answered = false;
  try {
    const answer = peerFacts(link).catch((error: Error) => {
      log?.info(`peer ${state.peer.host}:${state.peer.port} did not answer the query: ${error.message}`);
      return undefined;
    });
    const late = sleep(Math.max(1, timeoutMs - (Date.now() - started)), deadline.signal).then(
      () => {
        log?.info(`peer ${state.peer.host}:${state.peer.port} connected but did not answer within ${timeoutMs} ms`);
        return undefined;
      },
      () => undefined,
    );
    const facts = await Promise.race([answer, late]);
    answered = facts !== undefined;
    return facts;
  } finally {
    deadline.abort();
    // A peer that stalled mid-answer never closes the connection cleanly: its socket is dropped.
    if (answered) await link.close();
    else link.client.connection.stream.destroy();
  }
}

export async function decideStart(root: Root, cluster: Where, log?: Logger, timeoutMs = ASK_PEER_MS): Promise<StartDecision> {
  const state = await readState(root);
  if (!state) return { kind: 'as-is', role: 'not-paired', why: 'this host is not one of a pair (no standby state)' };
  if (await hasStandbySignal(cluster.dataDir)) {
    return { kind: 'as-is', role: 'standby', why: 'its settings make it a standby (standby.signal): it starts read-only' };
  }
  const facts = await askPeer(root, state, timeoutMs, log);
  const peer = `${state.peer.host}:${state.peer.port}`;
  if (facts && (facts.inRecovery || facts.readOnly)) {
    return {
      kind: 'as-is',
      role: 'primary',
      why: `the other database host ${peer} answers as ${facts.inRecovery ? 'a standby' : 'a fenced (read-only) primary'}: this node starts as the primary`,
    };
  }
  if (facts) {
    return {
      kind: 'fence',
      peerAnswered: true,
      state,
      note: `fenced: ${state.peer.host} is the primary now, so this node starts read-only as its standby (bring it back with ${knockerCommand(root, 'standby rejoin')})`,
    };
  }
  return {
    kind: 'fence',
    peerAnswered: false,
    state,
    note: [
      `fenced: the other database host ${peer} does not answer, and it may have been promoted, so this node starts read-only as its standby.`,
      `To decide: once ${state.peer.host} answers, knocker standby status there (if it is the primary, this node already follows it).`,
      `If ${state.peer.host} is lost for good and this node must take writes, here: ${knockerCommand(root, 'standby promote')}`,
    ].join('\n'),
  };
}

/** Makes this node a standby of the other node in its own settings (standby.signal, primary_conninfo): whatever starts it next, it is read-only. */
export async function applyFence(root: Root, cluster: Where, state: PairState): Promise<void> {
  // A host's Debian cluster listens everywhere: it is this node of the pair, as the state names it.
  const node = await nodeAt(root, { host: cluster.host ?? state.self.host, port: cluster.port });
  await applyNodeConfig(node, cluster.dataDir, { standbyOf: state.peer, tls: true, peer: state.peer }, root.isSandbox);
}

/**
 * Returns a note when the node was fenced (set to start as a standby). Works on a sandbox root's
 * private cluster and on a host's Debian cluster (`cluster`: its data directory, address and port).
 */
export async function fenceBeforeStart(root: Root, cluster: Where): Promise<string | undefined> {
  const decision = await decideStart(root, cluster);
  if (decision.kind === 'as-is') return undefined;
  await applyFence(root, cluster, decision.state);
  return decision.note;
}
