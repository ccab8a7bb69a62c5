// `knocker haproxy drain|maint|ready NAME`, and the dashboard's --admin keys: one node's rotation
// changed through HAProxy's admin socket, as a one-step plan that undoes itself on failure, run by
// the house's runner (the host's lock, the log); the state is saved for the next reload. stdout
// gets what HAProxy says of the node afterwards; progress and notes go to stderr.
import { PreflightError, UsageError } from '../errors.js';
import { knockerCommand } from '../shared/hint.js';
import { QUIET, type Output } from '../shared/output.js';
import type { Step } from '../system/plan.js';
import { PATHS, type Root } from '../system/root.js';
import { withRun } from '../system/runner.js';
import { upgradeInProgress } from '../system/upgrade-journal.js';
import { knockerSettings, unreachable } from './installed.js';
import { inspectHaproxy } from './plan.js';
import { adminStateOf, CheckTimeout, describeServer, readyAfterCheck, serverStat, setAdminState } from './rotation.js';
import type { AdminState, ServerStat } from './runtime.js';
import { saveServerState } from './service.js';

export type RotationAction = 'drain' | 'maint' | 'ready';

const ACTION_STATE: Record<RotationAction, AdminState> = { drain: 'drain', maint: 'maint', ready: 'ready' };

export interface RotationOptions {
  /** How long `ready` waits for a passing check. */
  timeoutSeconds: number;
  /** Who holds the host's lock meanwhile (default the command itself; "knocker status --admin"). */
  holder?: string;
  /** Each status HAProxy reports while `ready` waits for its check. */
  onStatus?: (stat: ServerStat) => void;
}

export interface RotationResult {
  changed: boolean;
  /** What HAProxy says of the node now ("DRAIN, check L7OK 200"), or was already saying. */
  now: string;
}

/** Changes one node's rotation; the plan's progress goes to `io`'s stderr (nowhere by default). */
export async function rotateNode(root: Root, action: RotationAction, name: string, options: RotationOptions, io: Output = QUIET): Promise<RotationResult> {
  const facts = await inspectHaproxy(root);
  const settings = knockerSettings(facts);
  if (!settings.nodes.some((n) => n.name === name)) {
    throw new UsageError(`no such node: ${name}`, [`the nodes are: ${settings.nodes.map((n) => n.name).join(', ')}`]);
  }
  const { paths } = facts.service;
  const socket = paths.adminSocket;
  const upgrade = await upgradeInProgress(root);
  if (upgrade) {
    throw new PreflightError(`knocker upgrade is taking servers in and out of rotation (pid ${upgrade.pid}): ${action} ${name} would work against it`, [
      'wait for it to finish, or stop it (Ctrl-C) first',
    ]);
  }
  const command = options.holder ?? `knocker haproxy ${action} ${name}`;
  return withRun(root, { command, logFile: PATHS.opsLog }, { dryRun: false, json: false }, io, async (run) => {
    const { log } = run;
    const before = await serverStat(socket, name).catch((error: unknown) => unreachable(error, root));
    if (!before)
      throw new PreflightError(`the running HAProxy has no node ${name}: it runs an older configuration`, [
        `reload it: ${knockerCommand(root, 'haproxy setup')}`,
      ]);
    const previous = (await adminStateOf(socket, name)) ?? 'ready';
    const wanted = ACTION_STATE[action];
    const already = action === 'ready' ? previous === 'ready' && before.status.state === 'UP' : previous === wanted;
    if (already) return { changed: false, now: describeServer(before) };
    const titles: Record<RotationAction, string> = {
      drain: `Drain ${name}: no new sessions; clients holding its cookie still reach it`,
      maint: `Put ${name} in maintenance: no traffic at all, health checks paused`,
      ready: `Bring ${name} back into rotation once a health check passes (at most ${options.timeoutSeconds} s)`,
    };
    let now = describeServer(before);
    const step: Step = {
      kind: 'command',
      title: titles[action],
      details: [`now: ${describeServer(before)}`],
      changes: true,
      async apply() {
        log.info(`${action} ${name}: was ${describeServer(before)} (admin state ${previous})`);
        if (action === 'ready') {
          try {
            const stat = await readyAfterCheck(socket, name, { timeoutMs: options.timeoutSeconds * 1000, onStatus: options.onStatus });
            await saveServerState(paths, log);
            now = describeServer(stat);
            return `now ${now}`;
          } catch (error) {
            if (error instanceof CheckTimeout) throw new Error(`${error.message}; it stays out of rotation`);
            throw error;
          }
        }
        await setAdminState(socket, name, wanted);
        await saveServerState(paths, log);
        const stat = await serverStat(socket, name);
        if (!stat) return undefined;
        now = describeServer(stat);
        return `now ${now}, ${stat.sessions} session${stat.sessions === 1 ? '' : 's'}`;
      },
      async undo() {
        await setAdminState(socket, name, previous);
        await saveServerState(paths, log);
        log.info(`${name}: admin state back to ${previous}`);
      },
    };
    await run.showOrApply({ title: `knocker haproxy ${action} ${name}`, steps: [step], warnings: [] });
    return { changed: true, now };
  });
}

/** `knocker haproxy drain|maint|ready NAME`: the change with its progress on stderr, the node's state after it on stdout. */
export async function haproxyRotation(root: Root, action: RotationAction, name: string, options: { timeoutSeconds: number }, io: Output): Promise<number> {
  const result = await rotateNode(
    root,
    action,
    name,
    { timeoutSeconds: options.timeoutSeconds, onStatus: (stat) => io.err(`    ${name}: ${describeServer(stat)}`) },
    io,
  );
  if (!result.changed) {
    io.err(`Nothing to change: ${name} is already ${action === 'ready' ? 'in rotation' : action === 'drain' ? 'drained' : 'in maintenance'} (${result.now}).`);
  }
  io.out(`${name}: ${result.now}`);
  return 0;
}
