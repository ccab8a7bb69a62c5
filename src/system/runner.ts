// The one runner of every command that changes a host (Shopify cli-kit's renderTasks, as
// src/standby/ first had it): it takes the host's lock and opens the command's scrubbed log for a
// run that changes something; it prints the plan for --dry-run, as text or as the one JSON shape
// every command shares (DRY_RUN_KEYS); it says "nothing to change" or applies the plan with
// progress, and logs the outcome. Output rule (CONTRACTS.md): stdout carries only what a script
// captures (the dry-run's plan, a connection string, a path, JSON); progress, notes, warnings and
// hints go to stderr. Each plan it applies is recorded in the cluster's history (src/history/), here
// and nowhere else, with its outcome.
import { ApplyFailedError, errorMessage, KnockerError, UsageError } from '../errors.js';
import { checkLine, PreflightFailed, type Check } from '../shared/checks.js';
import type { Output } from '../shared/output.js';
import { acquireLock } from './lock.js';
import { fileLogger, nullLogger, type Logger } from './log.js';
import { applyPlan, formatPlan, hasChanges, planToJson, type ApplyEvent, type ApplyOutcome, type Plan } from './plan.js';
import { progressPrinter } from './progress.js';
import { PATHS, type Root } from './root.js';

export interface RunFlags {
  dryRun: boolean;
  json: boolean;
}

/** The top-level keys of every `--dry-run --json` answer, in this order. */
export const DRY_RUN_KEYS = ['dryRun', 'command', 'root', 'preflight', 'plan', 'notes', 'details', 'error'] as const;

export interface DryRunJson {
  dryRun: true;
  command: string;
  root: string;
  preflight: Check[];
  plan: ReturnType<typeof planToJson> | null;
  notes: string[];
  /** What this command knows beyond the plan (HAProxy's settings, the nodes of an upgrade), or null. */
  details: Record<string, unknown> | null;
  error: { message: string; exitCode: number; problems: string[]; hints: string[] } | null;
}

export interface RunSpec {
  /** The command as the operator typed it, e.g. `knocker haproxy setup`: the lock's holder, the log's lines. */
  command: string;
  /** The log file, as a path inside the root (`PATHS.opsLog`). */
  logFile: string;
  /** False for a command that takes no lock (it changes nothing another run could be changing). */
  lock?: boolean;
  /** The lock file, as a path inside the root: the host's lock (`PATHS.installLock`) unless said. */
  lockFile?: string;
}

/** What a plan is shown with: the checks that passed, notes for the operator, the command's details. */
export interface Shown {
  preflight?: Check[];
  notes?: string[];
  details?: Record<string, unknown>;
  /** What is said (on stderr) when the plan changes nothing; default "TITLE: nothing to change". */
  unchanged?: string;
}

/** One run of a command: its log, and the plan shown (--dry-run) or applied. */
export class Run {
  constructor(
    readonly root: Root,
    readonly spec: RunSpec,
    readonly flags: RunFlags,
    readonly io: Output,
    readonly log: Logger,
  ) {}

  /**
   * Prints the plan (--dry-run: on stdout, text or JSON) or applies it with progress on stderr.
   * True when it was applied; false for a dry run and for a plan with nothing to change.
   */
  async showOrApply(plan: Plan, shown: Shown = {}): Promise<boolean> {
    const { io, flags } = this;
    if (flags.dryRun) {
      if (flags.json) {
        io.out(JSON.stringify(dryRunJson(this.spec.command, this.root, { ...shown, plan }), null, 2));
      } else {
        for (const note of shown.notes ?? []) io.err(note);
        if (shown.preflight?.length) {
          io.out('Preflight:');
          for (const check of shown.preflight) io.out(checkLine(check));
        }
        for (const line of formatPlan(plan)) io.out(line);
        io.out('Dry run: nothing was changed.');
      }
      return false;
    }
    for (const note of shown.notes ?? []) io.err(note);
    for (const warning of plan.warnings) io.err(`warning: ${warning}`);
    if (!hasChanges(plan)) {
      io.err(shown.unchanged ?? `${plan.title}: nothing to change`);
      this.log.info(`${plan.title}: nothing to change`);
      return false;
    }
    io.err(`${plan.title}:`);
    await this.apply(plan, progressPrinter(plan, io.err));
    return true;
  }

  /**
   * Applies a plan (the one way a run changes the host) and records it in the cluster's history
   * with its outcome. History never fails the run: a database that cannot take the event leaves it
   * spooled on this host, said on stderr.
   */
  apply(plan: Plan, onEvent?: (event: ApplyEvent) => void): Promise<ApplyOutcome> {
    return applyRecorded(this.root, this.spec.command, plan, { log: this.log, ...(onEvent ? { onEvent } : {}) }, this.io);
  }
}

/**
 * Applies a plan and records it in the cluster's history with its outcome: for a Run, and for the
 * interactive installer, which keeps its own lock and log.
 */
export async function applyRecorded(
  root: Root,
  command: string,
  plan: Plan,
  options: { log: Logger; onEvent?: (event: ApplyEvent) => void },
  io: Output,
): Promise<ApplyOutcome> {
  const { openRunHistory } = await import('../history/record.js');
  const history = await openRunHistory(root, command, io, options.log).catch(() => undefined);
  const startedAt = new Date();
  try {
    const outcome = await applyPlan(plan, options);
    await history?.record(plan.title, startedAt, 'ok', undefined);
    return outcome;
  } catch (error) {
    const outcome = error instanceof ApplyFailedError ? (error.remaining.length === 0 ? 'rolled-back' : 'incomplete') : 'failed';
    await history?.record(plan.title, startedAt, outcome, errorMessage(error));
    throw error;
  }
}

/** The one JSON shape of a dry run; `error` set when it stopped before or while planning. */
export function dryRunJson(command: string, root: Root, parts: Shown & { plan?: Plan; error?: unknown }): DryRunJson {
  const error = parts.error;
  return {
    dryRun: true,
    command,
    root: root.dir,
    preflight: parts.preflight ?? (error instanceof PreflightFailed ? error.checks : []),
    plan: parts.plan ? planToJson(parts.plan) : null,
    notes: parts.notes ?? [],
    details: parts.details ?? null,
    error:
      error === undefined
        ? null
        : {
            message: errorMessage(error),
            exitCode: error instanceof KnockerError ? error.exitCode : 1,
            problems: error instanceof UsageError ? error.problems : [],
            hints: error instanceof KnockerError ? error.hints : [],
          },
  };
}

/**
 * Runs `work` as one run of `spec.command`: under the host's lock and with the command's log when it
 * may change something; in a dry run with neither. A dry run with --json that fails still prints
 * its one JSON object (with `error`) before the error goes on to the door.
 */
export async function withRun<T>(root: Root, spec: RunSpec, flags: RunFlags, io: Output, work: (run: Run) => Promise<T>): Promise<T> {
  const log = flags.dryRun ? nullLogger() : fileLogger(root.path(spec.logFile));
  const lock = flags.dryRun || spec.lock === false ? undefined : await acquireLock(root.path(spec.lockFile ?? PATHS.installLock), spec.command);
  const run = new Run(root, spec, flags, io, log);
  try {
    log.info(`${spec.command}: root ${root.dir}`);
    const result = await work(run);
    log.info(`${spec.command}: done`);
    return result;
  } catch (error) {
    log.error(`${spec.command} failed: ${log.scrub(errorMessage(error))}`);
    if (flags.dryRun && flags.json) io.out(JSON.stringify(dryRunJson(spec.command, root, { error }), null, 2));
    throw error;
  } finally {
    await lock?.release();
  }
}
