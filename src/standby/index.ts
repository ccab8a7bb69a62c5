// knocker standby: a replicated standby of the shared-primary database (PostgreSQL streaming
// replication with PostgreSQL's own tools), and the moves between the two hosts. One module per
// concern: primary.ts (what exposedb --add-standby sets up), clone.ts, init.ts, status.ts,
// switchover.ts, promote.ts (and the fence), rejoin.ts (rewind or re-clone, decided in decide.ts),
// remove.ts, pre-start.ts (the check before a start, run by systemd through boot-unit.ts's drop-in);
// node.ts is this host's cluster, peer.ts the other host.
export { standbyInit } from './init.js';
export { standbyStatus } from './status.js';
export { standbySwitchover } from './switchover.js';
export { standbyPromote } from './promote.js';
export { standbyRejoin } from './rejoin.js';
export { standbyRemove } from './remove.js';
export { standbyPreStart } from './pre-start.js';
