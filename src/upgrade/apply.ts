// The upgrade applied: under its lock, the journal checked again and marked running, the plan built
// for real (with the log and the journal), applied, and the journal closed — done, or stopped with
// rotation put back and what to do next. The screen (applyUpgrade) and the plain run (plain.ts)
// both go through runUpgrade; the house's runner owns the lock and the log.
import { ApplyFailedError, PreflightError } from '../errors.js';
import { QUIET } from '../shared/output.js';
import type { Logger } from '../system/log.js';
import type { ApplyEvent, Plan } from '../system/plan.js';
import { PATHS, type Root } from '../system/root.js';
import { withRun, type RunSpec } from '../system/runner.js';
import { journalOwnerAlive, JournalWriter, readJournal, type Journal } from './journal.js';
import { hintFor } from './open-run.js';
import type { UpgradeSession } from './prepare.js';

export type UpgradeEvent =
  | { type: 'apply'; event: ApplyEvent }
  | { type: 'output'; server: string; line: string }
  /** What putting a server back did to it. */
  | { type: 'note'; server: string; text: string }
  | { type: 'journal'; journal: Journal };

export interface UpgradeHooks {
  /** The plan being applied (built again under the lock, from the journal). */
  onPlan?: (plan: Plan) => void;
  onEvent?: (event: UpgradeEvent) => void;
  stopRequested?: () => boolean;
}

export interface UpgradeOutcome {
  journal: Journal;
  ms: number;
  /** Time spent inside the upgrade commands. */
  commandMs: number;
  plan: Plan;
}

/** How every run that changes rotation for the upgrade is run: under the upgrade's own lock, logged in knocker's log. */
export const UPGRADE_RUN: RunSpec = { command: 'knocker upgrade', logFile: PATHS.opsLog, lockFile: PATHS.upgradeLock };

/** The screen's apply: one run of the house's runner, the plan's events handed to the screen. */
export function applyUpgrade(session: UpgradeSession, hooks: UpgradeHooks = {}): Promise<UpgradeOutcome> {
  return withRun(session.root, UPGRADE_RUN, { dryRun: false, json: false }, QUIET, (run) =>
    runUpgrade(session, run.log, hooks, (plan) => run.apply(plan, (event) => hooks.onEvent?.({ type: 'apply', event }))),
  );
}

/**
 * Under the upgrade's lock (the runner's): applies the plan with `apply`, journalling as it goes. A
 * failed step puts rotation back (the servers taken out come back once their checks pass) and
 * records the run as stopped: ApplyFailedError (exit 4). A run killed outright leaves the journal
 * "running" for --resume.
 */
export async function runUpgrade(session: UpgradeSession, log: Logger, hooks: UpgradeHooks, apply: (plan: Plan) => Promise<unknown>): Promise<UpgradeOutcome> {
  const { root } = session;
  // Checked again under the lock: another run may have started meanwhile.
  const now = await readJournal(session.journalFile).catch(() => undefined);
  if (now && journalOwnerAlive(now)) throw new PreflightError(`another knocker upgrade is running (pid ${now.pid})`);
  // A screen may have waited on its question while another run went on: start again from what is true now.
  if (now?.updatedAt !== session.journalSeen) {
    throw new PreflightError(
      `the upgrade record changed since this run checked the cluster (${now ? `now ${now.state}, ${now.updatedAt}` : 'it is gone'}): nothing was changed`,
      [`run knocker upgrade${session.resumed ? ' --resume' : ''} again${hintFor(root)}`],
    );
  }
  const writer = new JournalWriter(session.journalFile, structuredClone(session.journal), (journal) => hooks.onEvent?.({ type: 'journal', journal }));
  await writer.update(
    (j) => {
      j.state = 'running';
      j.reason = undefined;
    },
    session.resumed ? 'resumed' : `started: ${startNote(session)}`,
  );
  let commandMs = 0;
  const plan = await session.build({
    paths: session.facts.paths,
    log,
    journal: writer,
    onOutput: (server, line) => hooks.onEvent?.({ type: 'output', server, line }),
    onNote: (server, text) => hooks.onEvent?.({ type: 'note', server, text }),
    stopRequested: hooks.stopRequested,
    onCommandDone: (ms) => (commandMs += ms),
  });
  hooks.onPlan?.(plan);
  const started = Date.now();
  try {
    await apply(plan);
  } catch (error) {
    if (error instanceof ApplyFailedError) {
      await writer.update(
        (jr) => {
          jr.state = 'stopped';
          jr.reason = error.message;
        },
        `stopped: ${error.message.split('\n')[0]}`,
      );
      throw new ApplyFailedError(error.message, error.remaining, stoppedHints(writer.journal, root, error.remaining.length === 0));
    }
    throw error;
  }
  await writer.update(
    (jr) => {
      jr.state = 'done';
    },
    `done: every server on ${writer.journal.target ?? 'the new version'}`,
  );
  return { journal: writer.journal, ms: Date.now() - started, commandMs, plan };
}

function startNote(session: UpgradeSession): string {
  return `${session.journal.servers.map((s) => `${s.name} ${s.fromVersion}`).join(', ')}; ${session.journal.first} first`;
}

function stoppedHints(journal: Journal, root: Root, restored: boolean): string[] {
  const done = journal.servers.filter((s) => s.phase === 'done').map((s) => s.name);
  const first = journal.servers.find((s) => s.name === journal.first && s.phase !== 'done');
  const others = journal.servers.filter((s) => s.phase !== 'done' && s.name !== journal.first);
  const held = others.filter((s) => s.heldOut).map((s) => s.name);
  const back = others.filter((s) => !s.heldOut).map((s) => s.name);
  const are = (names: string[]) => `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'}`;
  const hints: string[] = [];
  if (!restored) hints.push('rotation could not be fully put back: see the lines above');
  if (done.length > 0) hints.push(`${are(done)} upgraded${journal.target ? ` to ${journal.target}` : ''} and in rotation`);
  if (restored && first) hints.push(`${first.name} stayed in rotation, its health checks on again`);
  if (restored && back.length > 0) hints.push(`${are(back)} back in rotation once ${back.length === 1 ? 'its' : 'their'} health check passes`);
  if (restored && held.length > 0) hints.push(`${are(held)} kept in maintenance: out of step with the migrated database until upgraded`);
  hints.push(`fix the cause, then go on: knocker upgrade --resume${hintFor(root)} (or forget it: knocker upgrade --rollback${hintFor(root)})`);
  return hints;
}
