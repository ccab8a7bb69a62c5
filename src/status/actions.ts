// The dashboard's only changes, with --admin: drain, maint or ready one server through HAProxy's
// admin socket, exactly as `knocker haproxy drain|maint|ready` does it (src/haproxy rotateNode: a
// one-step plan under the host's lock, undone on failure, the state saved for the next reload).
import type { RotationAction } from '../haproxy/index.js';
import type { ServerStat } from '../haproxy/runtime.js';
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
