// The dashboard's only changes, with --admin: drain, maint or ready one server through HAProxy's
// admin socket, as `knocker haproxy drain|maint|ready` does (the host's lock held, the state saved
// for the next reload, each command written to knocker's log). Ready waits for a passing check.
import { errorMessage } from '../errors.js';
import { adminStateOf, describeServer, readyAfterCheck, serverStat, setAdminState } from '../haproxy/rotation.js';
import type { ServerStat } from '../haproxy/runtime.js';
import { haproxyPaths, saveServerState } from '../haproxy/service.js';
import { withLock } from '../system/lock.js';
import { fileLogger } from '../system/log.js';
import { PATHS, type Root } from '../system/root.js';

export type AdminAction = 'drain' | 'maint' | 'ready';

export const ACTION_TITLE: Record<AdminAction, (name: string) => string> = {
  drain: (name) => `Drain ${name}? No new sessions; clients holding its cookie still reach it.`,
  maint: (name) => `Put ${name} in maintenance? No traffic at all; its health checks pause.`,
  ready: (name) => `Bring ${name} back into rotation? Only once a health check passes.`,
};

const READY_TIMEOUT_MS = 60_000;

/** Applies one action; resolves with what HAProxy now says of the server. */
export async function rotateServer(root: Root, name: string, action: AdminAction, onStatus?: (stat: ServerStat) => void): Promise<string> {
  const paths = haproxyPaths(root);
  const socket = paths.adminSocket;
  const log = fileLogger(root.path(PATHS.opsLog));
  return withLock(root.path(PATHS.installLock), 'knocker status --admin', async () => {
    const before = await serverStat(socket, name);
    if (!before) throw new Error(`HAProxy has no server ${name}`);
    const previous = (await adminStateOf(socket, name)) ?? 'ready';
    log.info(`status --admin: ${action} ${name}: was ${describeServer(before)} (admin state ${previous})`);
    try {
      if (action === 'ready') {
        const now = await readyAfterCheck(socket, name, { timeoutMs: READY_TIMEOUT_MS, onStatus });
        await saveServerState(paths, log);
        return describeServer(now);
      }
      await setAdminState(socket, name, action);
      await saveServerState(paths, log);
      const now = await serverStat(socket, name);
      return now ? describeServer(now) : 'done';
    } catch (error) {
      // As the haproxy commands do: a failed change leaves the server as it was.
      await setAdminState(socket, name, previous).catch(() => {});
      log.error(`status --admin: ${action} ${name} failed: ${errorMessage(error)}; admin state back to ${previous}`);
      throw error;
    }
  });
}
