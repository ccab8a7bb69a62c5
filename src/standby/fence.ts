// The fence on return: before knocker starts a node of a pair as it was (a primary), it asks the
// other node. When that one answers as a writable primary (it was promoted meanwhile), this node
// starts as a standby instead (standby.signal, primary_conninfo to the new primary): read-only,
// so it cannot take writes as a second primary. When the other node does not answer, it may have
// been promoted all the same: this node starts read-only too, and the note says how to decide.
// `knocker standby rejoin` (or `standby promote`, if the other host is lost) then brings it back.
import type { PrivateCluster } from '../postgres/cluster.js';
import { knockerCommand } from '../shared/hint.js';
import type { Root } from '../system/root.js';
import { applyNodeConfig, hasStandbySignal, nodeAt, readState } from './node.js';
import { peerFacts, tryPeer } from './peer.js';

/**
 * Returns a note when the node was fenced (set to start as a standby). Works on a sandbox root's
 * private cluster and on a host's Debian cluster (`cluster`: its data directory, address and port).
 */
export async function fenceBeforeStart(root: Root, cluster: Pick<PrivateCluster, 'dataDir' | 'port'> & { host?: string }): Promise<string | undefined> {
  const state = await readState(root);
  if (!state || (await hasStandbySignal(cluster.dataDir))) return undefined;
  const link = await tryPeer(root, state.self, state.peer, true);
  if (link) {
    try {
      const facts = await peerFacts(link);
      if (facts.inRecovery || facts.readOnly) return undefined;
    } finally {
      await link.close();
    }
  }
  // A host's Debian cluster listens everywhere: it is this node of the pair, as the state names it.
  const node = await nodeAt(root, { host: cluster.host ?? state.self.host, port: cluster.port });
  await applyNodeConfig(node, cluster.dataDir, { standbyOf: state.peer, tls: true, peer: state.peer }, root.isSandbox);
  if (link)
    return `fenced: ${state.peer.host} is the primary now, so this node starts read-only as its standby (bring it back with ${knockerCommand(root, 'standby rejoin')})`;
  return [
    `fenced: the other database host ${state.peer.host}:${state.peer.port} does not answer, and it may have been promoted, so this node starts read-only as its standby.`,
    `To decide: once ${state.peer.host} answers, knocker standby status there (if it is the primary, this node already follows it).`,
    `If ${state.peer.host} is lost for good and this node must take writes, here: ${knockerCommand(root, 'standby promote')}`,
  ].join('\n');
}
