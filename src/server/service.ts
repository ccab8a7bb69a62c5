// knocknoc-server as a service of this host: the systemd unit knocknoc.service where PID 1 is
// systemd and no sandbox root is used; otherwise a daemon with its pid file and log under the root.
// Starting waits until /_status answers 200, so "started" means "serving". The install plan ends
// with these steps, and `knocker service` uses the same start and stop.
import { parseListen, type ListenAddress } from '../config/values.js';
import { errorMessage } from '../errors.js';
import type { Release } from '../schema/index.js';
import { isSystemdHost } from '../system/host.js';
import { serverProgram } from '../system/package.js';
import type { Logger } from '../system/log.js';
import { fileStep, type Step } from '../system/plan.js';
import { PATHS, type Root } from '../system/root.js';
import { run } from '../system/run.js';
import {
  logSince,
  logTail,
  runningDaemon,
  startDaemon,
  stopDaemon,
  systemctl,
  unitActive,
  unitFailed,
  unitJournal,
  vanishedDaemon,
  type DaemonSpec,
} from '../system/service.js';
import { giveUp, orGiveUp, waitForOrUndefined } from '../system/wait.js';
import { describeStatus, fetchStatus, statusUrl, type StatusReply } from './probe.js';
import { isServing } from './status-body.js';

export const SERVER_UNIT = 'knocknoc.service';
const START_TIMEOUT_MS = 30_000;
/** The node drains requests for up to 10 s, then marks itself stopped. */
const STOP_GRACE_MS = 20_000;

export interface ServerService {
  root: Root;
  manager: 'systemd' | 'daemon';
  confFile: string;
  /** The installed package whose knocknoc-server runs (src/system/package.ts serverProgram). */
  packageDir: string;
}

export async function serverService(root: Root, packageDir: string): Promise<ServerService> {
  const manager = !root.isSandbox && (await isSystemdHost()) ? 'systemd' : 'daemon';
  return { root, manager, confFile: root.path(PATHS.conf), packageDir };
}

function serverCommand(service: ServerService, pidFile?: string): string[] {
  const args = [...serverProgram(service.packageDir), '--config', service.confFile];
  return pidFile ? [...args, '--pid-file', pidFile] : args;
}

export function daemonSpec(service: ServerService): DaemonSpec {
  const pidFile = service.root.path(PATHS.serverPid);
  const [program, ...args] = serverCommand(service, pidFile) as [string, ...string[]];
  return { program, args, pidFile, logFile: service.root.path(PATHS.serverLog), cwd: service.root.dir };
}

/** systemd's quoting for ExecStart= (double quotes, backslash escapes) where an argument needs it. */
function unitArgument(arg: string): string {
  return /^[A-Za-z0-9_./:=@+-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\])/g, '\\$1').replace(/%/g, '%%')}"`;
}

/** knocknoc.service. It runs as root: knocknoc.conf is root's, mode 0600 (CONTRACTS.md); the sandboxing keeps it read-only. */
export function unitText(service: ServerService): string {
  return [
    '# Written by knocker: the Knocknoc web node. Manage it with `knocker service start|stop|restart|status server`.',
    '[Unit]',
    'Description=Knocknoc server (web node)',
    'Documentation=https://docs.knocknoc.io/',
    'Wants=network-online.target',
    'After=network-online.target postgresql.service',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${serverCommand(service).map(unitArgument).join(' ')}`,
    'Restart=on-failure',
    'RestartSec=5s',
    // Exit 2 is a bad configuration: restarting cannot fix it.
    'RestartPreventExitStatus=2',
    'KillMode=mixed',
    `TimeoutStopSec=${STOP_GRACE_MS / 1000}s`,
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ProtectHome=read-only',
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'ProtectKernelTunables=yes',
    'ProtectControlGroups=yes',
    'RestrictSUIDSGID=yes',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

export interface ServerRunState {
  running: boolean;
  /** "pid 1234" or "knocknoc.service". */
  where: string;
  /** Not running, and not stopped cleanly: how it went (the pid that is gone, the failed unit) and its last log lines. */
  crashed?: { what: string; lastLines: string[] };
}

const CRASH_LINES = 3;

export async function serverRunState(service: ServerService): Promise<ServerRunState> {
  if (service.manager === 'systemd') {
    if (await unitActive(SERVER_UNIT)) return { running: true, where: SERVER_UNIT };
    if (!(await unitFailed(SERVER_UNIT))) return { running: false, where: SERVER_UNIT };
    return { running: false, where: SERVER_UNIT, crashed: { what: `${SERVER_UNIT} failed`, lastLines: await unitJournal(SERVER_UNIT, 0, CRASH_LINES) } };
  }
  const pidFile = service.root.path(PATHS.serverPid);
  const pid = await runningDaemon(pidFile);
  if (pid !== undefined) return { running: true, where: `pid ${pid}` };
  const gone = await vanishedDaemon(pidFile);
  if (gone === undefined) return { running: false, where: 'no process' };
  return {
    running: false,
    where: 'no process',
    crashed: { what: `pid ${gone} gone, its pid file still there`, lastLines: await logTail(service.root.path(PATHS.serverLog), CRASH_LINES) },
  };
}

/**
 * Polls /_status until it answers 200. Fails at once when the process is gone (with what it said)
 * or when the node is out of step with its database (waiting cannot fix that).
 */
async function waitUntilServing(listen: ListenAddress, gone: () => Promise<string[] | undefined>): Promise<StatusReply> {
  let last = 'no answer yet';
  const serving = await waitForOrUndefined(
    `${statusUrl(listen)} to answer 200`,
    async () => {
      const output = await orGiveUp(gone());
      if (output) giveUp(`knocknoc-server stopped instead of serving:\n${output.map((l) => `  ${l}`).join('\n')}`);
      const reply = await fetchStatus(listen, 1_000).catch((error: unknown) => {
        last = errorMessage(error);
        return undefined;
      });
      if (!reply) return undefined;
      if (isServing(reply)) return reply;
      last = describeStatus(reply);
      if (reply.body?.status === 'out-of-step') {
        giveUp(
          `knocknoc-server runs but cannot serve: ${last}; ` +
            (reply.body.databaseSchemaVersion !== null && reply.body.databaseSchemaVersion > reply.body.schemaVersion
              ? 'upgrade Knocknoc on this node to the release the database is at'
              : 'start an up-to-date node on this database, which migrates it'),
        );
      }
      return undefined;
    },
    { timeoutMs: START_TIMEOUT_MS },
  );
  if (!serving) throw new Error(`${statusUrl(listen)} did not answer 200 within ${START_TIMEOUT_MS / 1000} s (last: ${last})`);
  return serving;
}

/** Starts the server and waits until it serves; returns a line saying so. */
export async function startServerService(service: ServerService, listen: ListenAddress, log?: Logger): Promise<string> {
  if (service.manager === 'systemd') {
    const since = Math.floor(Date.now() / 1000);
    await systemctl(['start', SERVER_UNIT], log);
    const reply = await waitUntilServing(listen, async () => ((await unitActive(SERVER_UNIT)) ? undefined : unitJournal(SERVER_UNIT, since)));
    return `${SERVER_UNIT}; ${statusUrl(listen)}: ${describeStatus(reply)}`;
  }
  const spec = daemonSpec(service);
  const started = await startDaemon(spec, log);
  let exited = false;
  void started.exited.then(() => (exited = true));
  const reply = await waitUntilServing(listen, async () => (exited ? logSince(spec.logFile, started.logOffset) : undefined));
  return `pid ${started.pid}; ${statusUrl(listen)}: ${describeStatus(reply)}`;
}

export async function stopServerService(service: ServerService, log?: Logger): Promise<string> {
  if (service.manager === 'systemd') {
    await systemctl(['stop', SERVER_UNIT], log);
    return 'stopped';
  }
  const outcome = await stopDaemon(service.root.path(PATHS.serverPid), STOP_GRACE_MS, log);
  return outcome === 'killed' ? `it did not stop within ${STOP_GRACE_MS / 1000} s and was killed` : outcome;
}

export interface ServerStepsOptions {
  root: Root;
  release: Release;
  /** Listen of the configuration being installed. */
  listen: ListenAddress;
  /** Listen of the configuration a running server was started with (the existing knocknoc.conf). */
  runningListen: string | undefined;
  /** Whether the install changes knocknoc.conf. */
  confChanges: boolean;
  log: Logger;
}

/**
 * The install plan's service steps. `after` starts the server at the end and waits for /_status
 * 200. A running server the install changes (its configuration, its release, its unit) is stopped
 * by `before`, placed first, whose undo starts it again after the rest has been rolled back.
 */
export async function serverServiceSteps(options: ServerStepsOptions): Promise<{ before: Step[]; after: Step[] }> {
  const { root, release, listen, log } = options;
  const service = await serverService(root, release.root);
  const state = await serverRunState(service);
  const previous = options.runningListen === undefined ? undefined : parseListen(options.runningListen);
  const previousListen = previous?.ok ? previous.value : listen;
  const after: Step[] = [];
  const reasons: string[] = [];
  if (options.confChanges) reasons.push('its configuration changes');
  if (service.manager === 'systemd') {
    const unit = await fileStep({ file: root.path(PATHS.serverUnit), shownAs: PATHS.serverUnit, content: unitText(service), mode: 0o644 });
    if (unit.changes) reasons.push('its unit changes');
    after.push(unit);
  }
  if (state.running) {
    const answer = await fetchStatus(previousListen).catch(() => undefined);
    if (!answer?.body) reasons.push('it does not answer on /_status');
    else if (answer.body.version !== release.version) reasons.push(`it runs release ${answer.body.version}, this is ${release.version}`);
  }
  const restart = state.running && reasons.length > 0;
  const wasEnabled = service.manager === 'systemd' && (await run('systemctl', ['is-enabled', '--quiet', SERVER_UNIT], { allowFailure: true })).exitCode === 0;
  const how =
    service.manager === 'systemd'
      ? [`systemctl daemon-reload; systemctl enable ${SERVER_UNIT}; systemctl start ${SERVER_UNIT}`]
      : [`${serverCommand(service, root.path(PATHS.serverPid)).join(' ')}`, `(detached; log ${root.path(PATHS.serverLog)})`];
  const before: Step[] = restart
    ? [
        {
          kind: 'service',
          title: `Knocknoc server: stop it (${state.where}) for this change, as ${reasons.join(' and ')}; it starts again at the end`,
          details: [service.manager === 'systemd' ? `systemctl stop ${SERVER_UNIT}` : `SIGTERM to ${state.where}, waiting for its graceful stop`],
          changes: true,
          apply: () => stopServerService(service, log),
          undo: async () => {
            await startServerService(service, previousListen, log);
          },
        },
      ]
    : [];
  after.push({
    kind: 'service',
    title:
      state.running && !restart
        ? `Knocknoc server: running (${state.where}), ${statusUrl(listen)}`
        : `Knocknoc server: start it (${service.manager === 'systemd' ? SERVER_UNIT : 'daemon'}) and wait until ${statusUrl(listen)} answers 200`,
    details: [...how, `wait until ${statusUrl(listen)} answers 200 (at most ${START_TIMEOUT_MS / 1000} s)`],
    changes: !state.running || restart,
    async apply() {
      if (service.manager === 'systemd') {
        await systemctl(['daemon-reload'], log);
        await systemctl(['enable', SERVER_UNIT], log);
      }
      return startServerService(service, listen, log);
    },
    async undo() {
      await stopServerService(service, log);
      if (service.manager === 'systemd' && !wasEnabled) await systemctl(['disable', SERVER_UNIT], log);
    },
    remains: async () => (await serverRunState(service)).running,
  });
  return { before, after };
}
