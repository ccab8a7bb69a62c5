// The unattended install: plain lines as it goes, never a prompt. Also --dry-run (text or JSON),
// --print-answers and --explain, which change nothing.
import { redactUrl } from '../postgres/url.js';
import { hasChanges, pendingSteps } from '../system/plan.js';
import { progressPrinter } from '../system/progress.js';
import { seconds } from '../system/units.js';
import { answersToYaml } from './answers-file.js';
import { answersFrom, describeSource, FIELDS, FILE_KEY, type Answers, type Field, type Source } from './answers.js';
import { completeAnswers, type InstallSession, type Prepared } from './index.js';
import { checkLine, PreflightFailed } from '../shared/checks.js';
import { PATHS } from '../system/root.js';
import { withRun } from '../system/runner.js';
import type { Output } from '../shared/output.js';
import { nextSteps } from './summary.js';

function shownValue(field: Field, value: unknown): string {
  if (field === 'databaseUrl') return redactUrl(String(value));
  if (field === 'databaseCa' && String(value).startsWith('-----BEGIN')) return '(a PEM certificate)';
  return Array.isArray(value) ? value.join(', ') : String(value);
}

/** Where each answer came from (--explain). */
export function explainAnswers(session: InstallSession, json: boolean, io: Output): void {
  const values = session.resolution.values;
  if (json) {
    const result: Record<string, { value: unknown; source: Source; from: string } | { missing: true }> = {};
    for (const field of FIELDS) {
      const entry = values[field];
      if (entry)
        result[FILE_KEY[field]] = {
          value: field === 'databaseUrl' ? redactUrl(String(entry.value)) : entry.value,
          source: entry.source,
          from: describeSource(entry.source),
        };
    }
    for (const missing of session.resolution.missing) result[missing.split(':')[0]!] = { missing: true };
    io.out(JSON.stringify(result, null, 2));
    return;
  }
  const rows = FIELDS.filter((f) => values[f]).map((f) => [FILE_KEY[f], shownValue(f, values[f]!.value), describeSource(values[f]!.source)] as const);
  const width = [Math.max(...rows.map((r) => r[0].length)), Math.max(...rows.map((r) => r[1].length))];
  for (const [key, value, source] of rows) io.out(`${key.padEnd(width[0]!)}  ${value.padEnd(width[1]!)}  ${source}`);
  for (const missing of session.resolution.missing) io.out(`${missing.split(':')[0]!.padEnd(width[0]!)}  (missing)`);
}

/** The resolved answers as an answers file, password redacted (--print-answers). */
export function printAnswers(session: InstallSession, options: { json: boolean; explain: boolean }, io: Output): void {
  const answers: Answers = answersFrom({ ...session.resolution, missing: [] });
  if (options.json) {
    io.out(JSON.stringify({ version: 1, ...answers, databaseUrl: answers.databaseUrl === undefined ? undefined : redactUrl(answers.databaseUrl) }, null, 2));
    return;
  }
  const sources = options.explain
    ? (Object.fromEntries(FIELDS.flatMap((f) => (session.resolution.values[f] ? [[f, session.resolution.values[f]!.source]] : []))) as Partial<
        Record<Field, Source>
      >)
    : undefined;
  io.out(answersToYaml(answers, { password: 'redact', sources }).trimEnd());
}

/**
 * --dry-run: preflight and the plan, nothing changed, through the one runner: text, or the one JSON
 * shape of every command with the answers (password redacted) under `details`. Returns the exit code.
 */
export async function dryRun(session: InstallSession, json: boolean, io: Output): Promise<number> {
  const answers = completeAnswers(session);
  try {
    return await withRun(session.root, { command: 'knocker install', logFile: PATHS.installLog }, { dryRun: true, json }, io, async (run) => {
      const prepared = await session.prepare(answers);
      const details = { answers: { ...answers, databaseUrl: answers.databaseUrl === undefined ? undefined : redactUrl(answers.databaseUrl) } };
      await run.showOrApply(prepared.plan, { preflight: prepared.report.checks, details });
      return 0;
    });
  } finally {
    await session.close();
  }
}

/**
 * Applies the install without asking anything. Returns the exit code (errors are thrown). Nothing
 * here is a result a script would capture: the checks, progress and next steps go to stderr.
 */
export async function runUnattended(session: InstallSession, io: Output): Promise<number> {
  const answers = completeAnswers(session);
  const started = Date.now();
  io.err(`knocker install (unattended)${session.root.isSandbox ? ` on root ${session.root.dir}` : ''}`);
  let prepared: Prepared;
  try {
    try {
      prepared = await session.prepare(answers);
    } catch (error) {
      if (error instanceof PreflightFailed) {
        io.err('Preflight:');
        for (const c of error.checks) io.err(checkLine(c));
        io.err('Nothing was changed. Once the failed checks are fixed, run the same command again: it starts over from the checks.');
      }
      throw error;
    }
    io.err('Preflight:');
    for (const c of prepared.report.checks) io.err(checkLine(c));
    for (const warning of prepared.plan.warnings) io.err(`warning: ${warning}`);
    if (!hasChanges(prepared.plan)) {
      io.err('Nothing to change: this host already matches these answers.');
      if (session.logFile) io.err(`Log: ${session.logFile}`);
      return 0;
    }
    const total = pendingSteps(prepared.plan).length;
    io.err(`Applying ${total} change${total === 1 ? '' : 's'}:`);
    const onEvent = progressPrinter(prepared.plan, io.err);
    await session.apply(prepared, onEvent);
    io.err(`Installed in ${seconds(Date.now() - started)}.`);
    for (const line of nextSteps(session, prepared)) io.err(line);
    return 0;
  } finally {
    await session.close();
  }
}
