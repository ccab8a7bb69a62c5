// What every `knocker standby` command shares: the host's lock and the standby log for a run that
// changes something, the plan printed for --dry-run (text or JSON), applied with progress otherwise.
import { errorMessage } from '../errors.js';
import type { Output } from '../shared/output.js';
import { acquireLock } from '../system/lock.js';
import { fileLogger, nullLogger, type Logger } from '../system/log.js';
import { applyPlan, formatPlan, planToJson, type Plan } from '../system/plan.js';
import { progressPrinter } from '../system/progress.js';
import { PATHS, type Root } from '../system/root.js';
import { waitFor } from '../system/wait.js';
import { STANDBY_PATHS } from './paths.js';

export interface RunFlags {
  dryRun: boolean;
  json: boolean;
}

export async function withRun<T>(root: Root, what: string, flags: RunFlags, work: (log: Logger) => Promise<T>): Promise<T> {
  const log = flags.dryRun ? nullLogger() : fileLogger(root.path(STANDBY_PATHS.log));
  const lock = flags.dryRun ? undefined : await acquireLock(root.path(PATHS.installLock), `knocker standby ${what}`);
  try {
    log.info(`standby ${what}: root ${root.dir}`);
    return await work(log);
  } catch (error) {
    log.error(`standby ${what} failed: ${errorMessage(error)}`);
    throw error;
  } finally {
    await lock?.release();
  }
}

/** Prints the plan (--dry-run) or applies it; true when it was applied. */
export async function showOrApply(plan: Plan, flags: RunFlags, io: Output, log: Logger): Promise<boolean> {
  if (flags.dryRun) {
    if (flags.json) io.out(JSON.stringify(planToJson(plan), null, 2));
    else for (const line of formatPlan(plan)) io.out(line);
    return false;
  }
  io.err(`${plan.title}:`);
  for (const warning of plan.warnings) io.err(`warning: ${warning}`);
  await applyPlan(plan, { log, onEvent: progressPrinter(plan, io.err) });
  return true;
}

/** Waits until `probe` gives a value (the house's one wait, src/system/wait.ts), or throws after the timeout. */
export function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  return waitFor(what, () => probe(), { timeoutMs, everyMs });
}
