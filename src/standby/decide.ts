// Does the old primary need pg_rewind, a fresh clone, or neither? Decided from its pg_controldata
// and the new primary's timeline and system identifier, never guessed (Patroni's rewind.py model).
// Pure: tested on its own.

export type RejoinDecision = { kind: 'follow'; why: string } | { kind: 'rewind'; why: string } | { kind: 'reclone'; why: string };

export interface RejoinFacts {
  /** pg_controldata's "Database cluster state" of this node. */
  state: string;
  timeline: number;
  walLogHints: boolean;
  checksums: boolean;
  systemIdentifier: string;
  /** The new primary's. */
  peerTimeline: number;
  peerSystemIdentifier: string;
  /** This node's slot on the primary has lost WAL it needs (wal_status 'lost'). */
  slotLost?: boolean;
}

export function ranAsPrimary(state: string): boolean {
  return !/recovery/.test(state) || state === 'in crash recovery';
}

export function decideRejoin(f: RejoinFacts): RejoinDecision {
  if (f.systemIdentifier !== f.peerSystemIdentifier) {
    return { kind: 'reclone', why: `this cluster (system ${f.systemIdentifier}) is not a copy of the primary's (${f.peerSystemIdentifier})` };
  }
  const primaryBefore = ranAsPrimary(f.state);
  if (f.slotLost && !primaryBefore && f.timeline === f.peerTimeline) {
    return { kind: 'reclone', why: 'the primary has removed WAL this standby still needed (its slot lost it)' };
  }
  if (f.timeline > f.peerTimeline) return { kind: 'reclone', why: `this node is on timeline ${f.timeline}, ahead of the primary's ${f.peerTimeline}` };
  if (f.timeline === f.peerTimeline) {
    // Trap 6: a node that ran as a primary on the primary's own timeline may hold writes at LSNs the
    // primary also wrote; pg_rewind sees no divergence ("no rewind required"). Only a clone is safe.
    return primaryBefore
      ? { kind: 'reclone', why: `this node ran as a primary on the primary's own timeline ${f.timeline} (same-timeline divergence: pg_rewind cannot see it)` }
      : { kind: 'follow', why: `this node is a standby on the primary's timeline ${f.timeline}` };
  }
  if (!f.walLogHints && !f.checksums) {
    return { kind: 'reclone', why: `this node (timeline ${f.timeline}) has neither data checksums nor wal_log_hints, which pg_rewind needs` };
  }
  return { kind: 'rewind', why: `this node is on timeline ${f.timeline}, the primary on ${f.peerTimeline}: pg_rewind brings it onto the primary's history` };
}

/** "servers diverged at WAL location 0/3000D78 on timeline 6" or "no rewind required", from pg_rewind's output. */
export function rewindOutcome(output: string): { diverged?: string; timeline?: number; noRewind: boolean } {
  const m = /servers diverged at WAL location ([0-9A-F]+\/[0-9A-F]+) on timeline (\d+)/i.exec(output);
  return { diverged: m?.[1], timeline: m ? Number(m[2]) : undefined, noRewind: /no rewind required/.test(output) };
}
