// The dashboard's only changes, with --admin: a standby's switchover or promote on its host (below),
// or drain, maint or ready one server through HAProxy's
// admin socket, exactly as `knocker haproxy drain|maint|ready` does it (src/haproxy rotateNode: a
// one-step plan under the host's lock, undone on failure, the state saved for the next reload).
import type { RotationAction } from '../haproxy/index.js';
import type { ServerStat } from '../haproxy/runtime.js';
import type { Output } from '../shared/output.js';
import type { Root } from '../system/root.js';

export type AdminAction = RotationAction;

export const ACTION_TITLE: Record<AdminAction, (name: string) => string> = {
  drain: (name) => `Drain ${name}? No new sessions; clients holding its cookie still reach it.`,
  maint: (name) => `Put ${name} in maintenance? No traffic at all; its health checks pause.`,
  ready: (name) => `Bring ${name} back into rotation? Only once a health check passes.`,
};

const READY_TIMEOUT_SECONDS = 60;

/** Applies one action; resolves with what HAProxy now says of the server. */
export async function rotateServer(root: Root, name: string, action: AdminAction, onStatus?: (stat: ServerStat) => void): Promise<string> {
  // Loaded on the first action: the screen starts without HAProxy's configuration code.
  const { rotateNode } = await import('../haproxy/index.js');
  const result = await rotateNode(root, action, name, { timeoutSeconds: READY_TIMEOUT_SECONDS, holder: 'knocker status --admin', onStatus });
  return result.changed ? result.now : `unchanged, already ${result.now}`;
}

/** The standby's moves, from the dashboard on the host where they run (src/standby, through the runner). */
export type StandbyAction = 'switchover' | 'promote';

export const STANDBY_TITLE: Record<StandbyAction, string> = {
  switchover: "Switch over? This host's primary hands its role to the standby and follows it.",
  promote: "Promote this host's standby? Only when the primary is lost.",
};

async function runStandby(root: Root, action: StandbyAction, dryRun: boolean, io: Output): Promise<number> {
  // Loaded on the first use: the screen starts without the standby's code.
  const standby = await import('../standby/index.js');
  const flags = { dryRun, json: false };
  return action === 'switchover' ? standby.standbySwitchover(root, flags, io) : standby.standbyPromote(root, { ...flags, force: false }, io);
}

/**
 * The plan `knocker standby switchover|promote --dry-run` prints, line by line (its notes too);
 * throws what the command would say when it cannot plan (not the primary, no standby here).
 */
export async function standbyPlan(root: Root, action: StandbyAction): Promise<string[]> {
  const lines: string[] = [];
  await runStandby(root, action, true, { out: (line) => lines.push(line), err: (line) => lines.push(line) });
  return lines;
}

/** Applies the move as the command does; each line it prints (progress, notes) goes to `onLine`. */
export function standbyApply(root: Root, action: StandbyAction, onLine: (line: string) => void): Promise<number> {
  return runStandby(root, action, false, { out: onLine, err: onLine });
}
