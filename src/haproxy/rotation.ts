// Taking a web node out of rotation and bringing it back through HAProxy's runtime API, the way
// a rolling upgrade needs it: DRAIN (no new sessions; clients holding its cookie still reach it),
// MAINT (no traffic at all, checks paused), and back to READY only after a health check has
// passed since the request — never straight from MAINT, which HAProxy would put in rotation
// before any check.
import { giveUp, orGiveUp, waitForOrUndefined } from '../system/wait.js';
import { BACKEND } from './config.js';
import {
  adminStateFromBits,
  drainUntilChecked,
  inRotation,
  readyWhenChecked,
  setServerState,
  showServersState,
  showStat,
  type AdminState,
  type ServerStat,
} from './runtime.js';

/** The server's row in `show stat`, or undefined if HAProxy has no such server. */
export async function serverStat(socket: string, name: string): Promise<ServerStat | undefined> {
  return (await showStat(socket)).servers.find((s) => s.backend === BACKEND && s.name === name);
}

/** The admin state an operator (or knocker) set: forced MAINT, forced DRAIN, or ready. */
export async function adminStateOf(socket: string, name: string): Promise<AdminState | undefined> {
  const saved = (await showServersState(socket)).servers.find((s) => s.backend === BACKEND && s.name === name);
  if (!saved) return undefined;
  return adminStateFromBits(saved);
}

/** "UP, check L7OK 200", "DOWN, check L4CON: Connection refused", "MAINT, checks paused". */
export function describeServer(stat: ServerStat): string {
  const check = stat.check;
  if (check.status === '') return `${stat.status.text}, checks paused`;
  const failed = !check.status.startsWith('L7OK') && check.detail ? `: ${check.detail}` : '';
  return `${stat.status.text}, check ${check.status}${check.code ? ` ${check.code}` : ''}${failed}`;
}

export function setAdminState(socket: string, name: string, state: AdminState): Promise<void> {
  return setServerState(socket, BACKEND, name, state);
}

export interface ReadyOptions {
  timeoutMs: number;
  /** Called with each new status while waiting. */
  onStatus?: (stat: ServerStat) => void;
  pollMs?: number;
}

export class CheckTimeout extends Error {
  readonly last: ServerStat | undefined;
  constructor(message: string, last: ServerStat | undefined) {
    super(message);
    this.last = last;
  }
}

/**
 * Brings a node back into rotation only once it has passed a health check: it is drained with
 * its health forced down, HAProxy's checks (which keep running) must pass `rise` times — the
 * status then reads DRAIN — and only then is it set ready. Returns its status once in rotation.
 * On timeout it stays out of rotation (drained and down) and CheckTimeout tells the last check.
 */
export async function readyAfterCheck(socket: string, name: string, options: ReadyOptions): Promise<ServerStat> {
  await drainUntilChecked(socket, BACKEND, name);
  let last: ServerStat | undefined;
  const passed = await waitForOrUndefined(
    `${name} to pass its health check`,
    async () => {
      const stat = await orGiveUp(serverStat(socket, name));
      if (!stat) giveUp(`HAProxy has no server ${name} any more`);
      if (last?.status.text !== stat.status.text || last?.check.status !== stat.check.status) options.onStatus?.(stat);
      last = stat;
      return stat.status.state === 'DRAIN' && !stat.status.transition ? stat : undefined;
    },
    { timeoutMs: options.timeoutMs, everyMs: options.pollMs ?? 100 },
  );
  if (!passed) {
    throw new CheckTimeout(
      `${name} did not pass its health check within ${Math.round(options.timeoutMs / 1000)} s (now ${last ? describeServer(last) : 'unknown'})`,
      last,
    );
  }
  await setServerState(socket, BACKEND, name, 'ready');
  const now = await serverStat(socket, name);
  if (!now || !inRotation(now.status)) throw new Error(`${name} was set ready but HAProxy shows it ${now ? describeServer(now) : 'gone'}`);
  return now;
}

/**
 * Back to ready after the upgrade had it out (a rollback), with its health forced down in the same
 * command: HAProxy gives it no traffic until `rise` checks pass, and then brings it into rotation
 * by itself — a server that cannot pass (out of step) stays out.
 */
export async function restoreRotation(socket: string, name: string): Promise<string> {
  await readyWhenChecked(socket, BACKEND, name);
  const stat = await serverStat(socket, name);
  return stat ? describeServer(stat) : 'not in HAProxy';
}
