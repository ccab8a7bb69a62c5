// One plan/apply/undo model for every change knocker makes to a host (installer, exposedb,
// haproxy, upgrade). A plan is a list of steps; each step describes itself (for the plan screen and
// --dry-run), applies, and undoes. Steps that find the host already as wanted are kept in the plan
// as "unchanged" and never applied. A failed step rolls back every applied step, newest first.
import fs from 'node:fs/promises';
import { createTwoFilesPatch } from 'diff';
import { ApplyFailedError, errorMessage } from '../errors.js';
import { readIfExists, statIfExists, writeFileAtomic } from './files.js';
import { killPoint } from './kill-hook.js';
import type { Logger } from './log.js';
import { plural } from './units.js';

export type StepKind = 'package' | 'file' | 'database' | 'service' | 'command';

export interface Step {
  kind: StepKind;
  /** One line in the operator's words: "Write /opt/knocknoc/etc/knocknoc.conf". */
  title: string;
  /** What exactly will change: a diff, SQL, a command line. Secrets are already masked. */
  details: string[];
  /** False when the host already matches; the step is shown as unchanged and not applied. */
  changes: boolean;
  /** Applies the change; may return a short note for the progress line ("already present"). */
  apply(): Promise<string | void>;
  /** Reverses `apply`. Only called for steps whose `apply` completed or failed half-way. */
  undo(): Promise<void>;
  /**
   * Whether the change is still on the host, asked once the rollback is over for a step whose undo
   * failed: an earlier step's undo may have taken it away (a cluster removed with what was in it).
   * Without it, a failed undo is taken to have left its change.
   */
  remains?(): Promise<boolean>;
}

export interface Plan {
  title: string;
  steps: Step[];
  /** Things the operator should know before confirming (not errors). */
  warnings: string[];
}

export type ApplyEvent =
  | { type: 'step-start'; index: number; step: Step }
  | { type: 'step-done'; index: number; step: Step; ms: number; note?: string }
  | { type: 'step-failed'; index: number; step: Step; ms: number; error: string }
  | { type: 'undo-start'; index: number; step: Step }
  | { type: 'undo-done'; index: number; step: Step }
  | { type: 'undo-failed'; index: number; step: Step; error: string };

export interface ApplyOptions {
  log?: Logger;
  onEvent?: (event: ApplyEvent) => void;
}

export interface ApplyOutcome {
  applied: number;
  ms: number;
}

export function pendingSteps(plan: Plan): Step[] {
  return plan.steps.filter((s) => s.changes);
}

export function hasChanges(plan: Plan): boolean {
  return plan.steps.some((s) => s.changes);
}

/**
 * Applies every changing step in order. On failure, undoes the applied steps (and the failed one,
 * which may have half-applied) newest first, then throws ApplyFailedError: exit 4 when the rollback
 * was complete, 5 with the list of what remains when it was not.
 */
export async function applyPlan(plan: Plan, options: ApplyOptions = {}): Promise<ApplyOutcome> {
  const { log, onEvent } = options;
  const started = Date.now();
  const touched: Array<{ index: number; step: Step }> = [];
  log?.info(`apply: ${plan.title}`);
  for (const [index, step] of plan.steps.entries()) {
    if (!step.changes) continue;
    killPoint('before', touched.length + 1);
    onEvent?.({ type: 'step-start', index, step });
    log?.info(`step ${index + 1}: ${step.title}`);
    const stepStarted = Date.now();
    touched.push({ index, step });
    try {
      const note = await step.apply();
      const ms = Date.now() - stepStarted;
      log?.info(`step ${index + 1} done in ${ms} ms${note ? ` (${note})` : ''}`);
      onEvent?.({ type: 'step-done', index, step, ms, note: note || undefined });
      killPoint('after', touched.length);
    } catch (error) {
      const ms = Date.now() - stepStarted;
      const message = log ? log.scrub(errorMessage(error)) : errorMessage(error);
      log?.error(`step ${index + 1} failed: ${message}`);
      onEvent?.({ type: 'step-failed', index, step, ms, error: message });
      const remaining = await rollback(touched, options);
      throw new ApplyFailedError(`${step.title} failed: ${message}`, remaining, [
        remaining.length === 0 ? 'every change made before the failure was rolled back' : 'see the log for details',
        ...(log?.file ? [log.failure ? `the log ${log.file} could not be written (${log.failure})` : `log: ${log.file}`] : []),
      ]);
    }
  }
  const ms = Date.now() - started;
  log?.info(`apply finished in ${ms} ms`);
  return { applied: touched.length, ms };
}

async function rollback(touched: Array<{ index: number; step: Step }>, options: ApplyOptions): Promise<string[]> {
  const { log, onEvent } = options;
  const failed: Array<{ step: Step; message: string }> = [];
  for (const { index, step } of [...touched].reverse()) {
    onEvent?.({ type: 'undo-start', index, step });
    try {
      await step.undo();
      log?.info(`undo ${index + 1}: ${step.title}`);
      onEvent?.({ type: 'undo-done', index, step });
    } catch (error) {
      const message = log ? log.scrub(errorMessage(error)) : errorMessage(error);
      log?.error(`undo ${index + 1} failed: ${message}`);
      onEvent?.({ type: 'undo-failed', index, step, error: message });
      failed.push({ step, message });
    }
  }
  // What remains is said once every undo has run: only what is still on the host.
  const remaining: string[] = [];
  for (const { step, message } of failed) {
    const still = step.remains ? await step.remains().catch(() => true) : true;
    if (still) remaining.push(`${step.title} (undo failed: ${message})`);
    else log?.info(`${step.title}: its undo failed, but nothing of it remains`);
  }
  return remaining;
}

/** The plan as plain text lines, for --dry-run and the non-interactive run. */
export function formatPlan(plan: Plan): string[] {
  const lines: string[] = [];
  const pending = pendingSteps(plan).length;
  lines.push(`${plan.title}: ${pending === 0 ? 'nothing to change' : plural(pending, 'change')}`);
  for (const step of plan.steps) {
    lines.push(`  ${step.changes ? '+' : '='} [${step.kind}] ${step.title}${step.changes ? '' : ' (unchanged)'}`);
    if (step.changes) lines.push(...step.details.map((d) => `      ${d}`));
  }
  for (const warning of plan.warnings) lines.push(`  warning: ${warning}`);
  return lines;
}

export function planToJson(plan: Plan) {
  return {
    title: plan.title,
    changes: pendingSteps(plan).length,
    steps: plan.steps.map((s) => ({ kind: s.kind, title: s.title, changes: s.changes, details: s.details })),
    warnings: plan.warnings,
  };
}

export interface FileStepOptions {
  /** The real path to write (already under the root). */
  file: string;
  /** The path shown to the operator (the target path). */
  shownAs: string;
  content: string;
  mode: number;
  /** Masks secrets in the diff shown. */
  redact?: (text: string) => string;
  /** Checks the new content before it replaces the file (see WriteOptions.validate). */
  validate?: (tempFile: string) => Promise<void>;
}

/** A step that writes one file atomically with a backup, showing a diff; undo restores the old file. */
export async function fileStep(options: FileStepOptions): Promise<Step> {
  const { file, shownAs, content, mode } = options;
  const redact = options.redact ?? ((t: string) => t);
  const before = await readIfExists(file);
  const stat = await statIfExists(file);
  const beforeMode = stat ? stat.mode & 0o7777 : undefined;
  const changes = before !== content || beforeMode !== mode;
  const details: string[] = [];
  if (before !== content) {
    const patch = createTwoFilesPatch(shownAs, shownAs, redact(before ?? ''), redact(content), before === undefined ? '(new file)' : '', '', { context: 2 });
    details.push(
      ...patch
        .split('\n')
        .slice(2)
        .map((l) => l.trimEnd())
        .filter((l) => l !== '' && !l.startsWith('\\')),
    );
  }
  if (beforeMode !== undefined && beforeMode !== mode) {
    details.push(`mode ${beforeMode.toString(8).padStart(4, '0')} -> ${mode.toString(8).padStart(4, '0')}`);
  }
  return {
    kind: 'file',
    title: `${before === undefined ? 'Create' : 'Update'} ${shownAs} (mode ${mode.toString(8).padStart(4, '0')})`,
    details,
    changes,
    async apply() {
      const backup = await writeFileAtomic(file, content, { mode, validate: options.validate });
      return backup ? `previous version kept as ${backup}` : undefined;
    },
    async undo() {
      if (before === undefined) {
        await fs.rm(file, { force: true });
      } else {
        await writeFileAtomic(file, before, { mode: beforeMode, backup: false });
      }
    },
    async remains() {
      return (await readIfExists(file).catch(() => content)) !== before;
    },
  };
}
