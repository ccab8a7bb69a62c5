// HAProxy as a service of this host, in master-worker mode: the package's haproxy.service where
// PID 1 is systemd and no sandbox root is used; otherwise a daemon (`haproxy -W`, master in the
// foreground, its pid file and log under the root). A reload starts a new worker with the new
// configuration while the old one finishes its connections; before every reload or stop knocker
// saves the servers' state (DRAIN, MAINT) to the server-state file, which the new process reads.
import fs from 'node:fs/promises';
import path from 'node:path';
import { isSystemdHost } from '../system/host.js';
import type { Logger } from '../system/log.js';
import { writeFileAtomic } from '../system/files.js';
import { PATHS, type Root } from '../system/root.js';
import { run, which } from '../system/run.js';
import { logSince, runningDaemon, startDaemon, stopDaemon, systemctl, unitActive, unitJournal } from '../system/service.js';
import { lookupUser } from '../system/users.js';
import { waitForOrUndefined } from '../system/wait.js';
import type { ConfigLayout } from './config.js';
import { RuntimeApiError, serversStateText, showInfo, showProc, showServersState, type ProcessInfo, type SavedServerState } from './runtime.js';

export const HAPROXY_UNIT = 'haproxy.service';
const START_TIMEOUT_MS = 15_000;
const RELOAD_TIMEOUT_MS = 15_000;
/** A soft stop lets requests in flight finish; after this, it is ended. */
const STOP_GRACE_MS = 10_000;

/** Where HAProxy's files are on this host (real paths). */
export interface HaproxyPaths {
  conf: string;
  runDir: string;
  adminSocket: string;
  statusSocket: string;
  masterSocket: string;
  pidFile: string;
  stateDir: string;
  stateFile: string;
  logFile: string;
  /** knocker's note that the file in place has not been reloaded yet. */
  reloadPending: string;
}

export interface HaproxyService {
  root: Root;
  manager: 'systemd' | 'daemon';
  paths: HaproxyPaths;
}

export function haproxyPaths(root: Root): HaproxyPaths {
  return {
    conf: root.path(PATHS.haproxyConf),
    runDir: root.path(PATHS.haproxyRunDir),
    adminSocket: root.path(PATHS.haproxyAdminSocket),
    statusSocket: root.path(PATHS.haproxyStatusSocket),
    masterSocket: root.path(PATHS.haproxyMasterSocket),
    pidFile: root.path(PATHS.haproxyPid),
    stateDir: root.path(PATHS.haproxyStateDir),
    stateFile: root.path(PATHS.haproxyStateFile),
    logFile: root.path(PATHS.haproxyLog),
    reloadPending: root.path(PATHS.haproxyReloadPending),
  };
}

export async function haproxyService(root: Root): Promise<HaproxyService> {
  const manager = !root.isSandbox && (await isSystemdHost()) ? 'systemd' : 'daemon';
  return { root, manager, paths: haproxyPaths(root) };
}

/** The haproxy program: on PATH, or where packages put it. */
export async function findHaproxy(): Promise<string | undefined> {
  const found = await which('haproxy');
  if (found) return found;
  for (const candidate of ['/usr/sbin/haproxy', '/usr/local/sbin/haproxy']) {
    if (
      await fs.access(candidate).then(
        () => true,
        () => false,
      )
    )
      return candidate;
  }
  return undefined;
}

/** "2.6.12" from `haproxy -v`. */
export async function haproxyVersion(binary: string): Promise<string | undefined> {
  const result = await run(binary, ['-v'], { allowFailure: true });
  return /version (\d+\.\d+(?:\.\d+)?)/i.exec(result.stdout)?.[1];
}

/** How the configuration places HAProxy on this host. */
export async function configLayout(service: HaproxyService, writtenBy: string): Promise<ConfigLayout> {
  const { paths } = service;
  const user = service.root.isSandbox ? undefined : await lookupUser('haproxy');
  return {
    adminSocket: paths.adminSocket,
    statusSocket: paths.statusSocket,
    stateFile: paths.stateFile,
    // The package's user: HAProxy starts as root, binds, then drops to it in a chroot.
    identity: user ? { chroot: paths.stateDir, user: 'haproxy', group: 'haproxy' } : undefined,
    logTarget: service.manager === 'systemd' ? `the journal of ${HAPROXY_UNIT}` : paths.logFile,
    writtenBy,
  };
}

export function daemonCommand(binary: string, paths: HaproxyPaths): string[] {
  return [binary, '-W', '-f', paths.conf, '-p', paths.pidFile, '-S', `${paths.masterSocket},mode,600`];
}

export interface HaproxyRunState {
  running: boolean;
  /** "pid 1234" or "haproxy.service". */
  where: string;
  pid?: number;
}

export async function haproxyRunState(service: HaproxyService): Promise<HaproxyRunState> {
  if (service.manager === 'systemd') return { running: await unitActive(HAPROXY_UNIT), where: HAPROXY_UNIT };
  const pid = await runningDaemon(service.paths.pidFile);
  return pid === undefined ? { running: false, where: 'no process' } : { running: true, where: `pid ${pid}`, pid };
}

/** The folders HAProxy needs: its sockets' and its state file's. */
export async function ensureFolders(paths: HaproxyPaths): Promise<void> {
  await fs.mkdir(paths.runDir, { recursive: true, mode: 0o755 });
  await fs.mkdir(paths.stateDir, { recursive: true, mode: 0o755 });
  await fs.mkdir(path.dirname(paths.pidFile), { recursive: true, mode: 0o755 });
}

/**
 * Saves `show servers state` to the state file, keeping only the servers `keep` accepts: a node
 * whose address changed starts from the configuration (HAProxy would otherwise restore the old
 * address from the file). Does nothing when HAProxy does not answer.
 */
export async function saveServerState(paths: HaproxyPaths, log?: Logger, keep?: (server: SavedServerState) => boolean): Promise<boolean> {
  let state;
  try {
    state = await showServersState(paths.adminSocket);
  } catch (error) {
    if (error instanceof RuntimeApiError && error.unreachable) return false;
    throw error;
  }
  await writeFileAtomic(paths.stateFile, serversStateText(state, keep), { mode: 0o600, backup: false });
  log?.info(`saved the state of ${state.servers.length} servers to ${paths.stateFile}`);
  return true;
}

/** HAProxy runs the file in place now: no reload is owed any more (see PATHS.haproxyReloadPending). */
async function loaded(paths: HaproxyPaths): Promise<undefined> {
  await fs.rm(paths.reloadPending, { force: true });
  return undefined;
}

async function answering(paths: HaproxyPaths): Promise<ProcessInfo | undefined> {
  return showInfo(paths.adminSocket, 1_000).catch(() => undefined);
}

/** Starts HAProxy and waits until its admin socket answers; returns a line saying so. */
export async function startHaproxy(service: HaproxyService, binary: string, log?: Logger): Promise<string> {
  const { paths } = service;
  await ensureFolders(paths);
  if (service.manager === 'systemd') {
    const since = Math.floor(Date.now() / 1000);
    await systemctl(['start', HAPROXY_UNIT], log);
    // null: the unit is no longer active, waiting cannot help.
    const info = await waitForOrUndefined('HAProxy to answer', async () => (await answering(paths)) ?? ((await unitActive(HAPROXY_UNIT)) ? undefined : null), {
      timeoutMs: START_TIMEOUT_MS,
    });
    if (!info) throw new Error(`HAProxy did not start:\n${(await unitJournal(HAPROXY_UNIT, since)).map((l) => `  ${l}`).join('\n')}`);
    await loaded(paths);
    return `${HAPROXY_UNIT}, HAProxy ${info.version}, worker pid ${info.pid}`;
  }
  const [program, ...args] = daemonCommand(binary, paths) as [string, ...string[]];
  const started = await startDaemon({ program, args, pidFile: paths.pidFile, logFile: paths.logFile, cwd: service.root.dir }, log);
  let exited = false;
  void started.exited.then(() => (exited = true));
  const info = await waitForOrUndefined('HAProxy to answer', async () => (await answering(paths)) ?? (exited ? null : undefined), {
    timeoutMs: START_TIMEOUT_MS,
  });
  if (!info) {
    const output = await logSince(paths.logFile, started.logOffset);
    if (!exited) await stopDaemon(paths.pidFile, 1_000, log).catch(() => {});
    throw new Error(`HAProxy did not start${exited ? '' : ` within ${START_TIMEOUT_MS / 1000} s`}:\n${output.map((l) => `  ${l}`).join('\n')}`);
  }
  await loaded(paths);
  return `pid ${started.pid}, HAProxy ${info.version}, worker pid ${info.pid}`;
}

/** Stops HAProxy gracefully (requests in flight finish), saving the servers' state first. */
export async function stopHaproxy(service: HaproxyService, log?: Logger): Promise<string> {
  await saveServerState(service.paths, log);
  if (service.manager === 'systemd') {
    await systemctl(['stop', HAPROXY_UNIT], log);
    return 'stopped';
  }
  // SIGUSR1: the master asks its workers for a soft stop and exits after them.
  const outcome = await stopDaemon(service.paths.pidFile, STOP_GRACE_MS, log, 'SIGUSR1');
  return outcome === 'killed' ? `connections were still open after ${STOP_GRACE_MS / 1000} s: it was ended` : outcome;
}

/**
 * Reloads HAProxy with the configuration now in place, without dropping connections: saves the
 * servers' state, signals the master, and waits until a new worker answers. A configuration the
 * master cannot start (a port taken, say) leaves the old worker serving; that is reported as an
 * error with HAProxy's own words.
 */
export async function reloadHaproxy(service: HaproxyService, log?: Logger, keep?: (server: SavedServerState) => boolean): Promise<string> {
  const { paths } = service;
  // A configuration knocker did not write may have no admin socket: then the new one's answering is the sign.
  const before = await answering(paths);
  const failedBefore = (await showProc(paths.masterSocket).catch(() => undefined))?.failedReloads;
  await saveServerState(paths, log, keep);
  const since = Math.floor(Date.now() / 1000);
  const logOffset = (await fs.stat(paths.logFile).catch(() => undefined))?.size ?? 0;
  if (service.manager === 'systemd') {
    await systemctl(['reload', HAPROXY_UNIT], log);
  } else {
    const pid = await runningDaemon(paths.pidFile);
    if (pid === undefined) throw new Error('HAProxy stopped before it could be reloaded');
    log?.info(`reload: SIGUSR2 to the master, pid ${pid}`);
    process.kill(pid, 'SIGUSR2');
  }
  // null: the master counts one more failed reload, waiting cannot help.
  const info = await waitForOrUndefined(
    'a new HAProxy worker to answer',
    async () => {
      const info = await answering(paths);
      if (info && info.pid !== before?.pid) return info;
      const failed = failedBefore === undefined ? undefined : (await showProc(paths.masterSocket).catch(() => undefined))?.failedReloads;
      return failed !== undefined && failedBefore !== undefined && failed > failedBefore ? null : undefined;
    },
    { timeoutMs: RELOAD_TIMEOUT_MS },
  );
  if (info) return (await loaded(paths)) ?? `new worker pid ${info.pid}${before ? `; the old one (pid ${before.pid}) finishes its connections` : ''}`;
  const said = service.manager === 'systemd' ? await unitJournal(HAPROXY_UNIT, since) : await logSince(paths.logFile, logOffset);
  const alerts = said.filter((l) => /ALERT|WARNING.*Loading failure/.test(l));
  throw new Error(
    `HAProxy could not start the new configuration; the previous one keeps serving${before ? ` (worker pid ${before.pid})` : ''}:\n${(alerts.length > 0 ? alerts : said).map((l) => `  ${l}`).join('\n')}`,
  );
}
