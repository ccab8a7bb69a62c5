// A script that asked for --json always gets one JSON object on stdout (CONTRACTS.md, "Output
// channels"), also when the run fails before the command could print its own: this is that object,
// with the verdict and the error an operator would read on stderr.
import { ApplyFailedError, KnockerError, UsageError, errorMessage, type ExitCode } from '../errors.js';

/** Whether the run's arguments ask for --json (before a `--`, which ends the options). */
export function wantsJson(argv: string[]): boolean {
  return optionArgs(argv).includes('--json');
}

const KIND: Record<number, string> = { 1: 'bug', 2: 'usage', 3: 'preflight', 4: 'rolled-back', 5: 'rollback-incomplete' };

/** The arguments before a `--`, which ends the options. */
function optionArgs(argv: string[]): string[] {
  const args = argv.slice(2);
  const end = args.indexOf('--');
  return end === -1 ? args : args.slice(0, end);
}

/**
 * The one JSON object of a failed --json run. A dry run keeps the shape every `--dry-run --json`
 * has (src/system/runner.ts, DRY_RUN_KEYS), its error in `error`, also when it failed before its
 * command could plan (an answers file refused, a usage mistake).
 */
export function jsonFailure(error: unknown, exitCode: ExitCode, argv: string[] = []): string {
  const message = errorMessage(error).replace(/^error: /, '');
  const args = optionArgs(argv);
  if (args.includes('--dry-run')) {
    const words = args
      .slice(
        0,
        Math.max(
          0,
          args.findIndex((a) => a.startsWith('-')),
        ),
      )
      .filter((a) => a !== '');
    const rootAt = args.indexOf('--root');
    return JSON.stringify(
      {
        dryRun: true,
        command: ['knocker', ...words].join(' '),
        root: rootAt >= 0 && args[rootAt + 1] !== undefined ? args[rootAt + 1] : '/',
        preflight: [],
        plan: null,
        notes: [],
        details: null,
        error: { message, exitCode, problems: error instanceof UsageError ? error.problems : [], hints: error instanceof KnockerError ? error.hints : [] },
      },
      null,
      2,
    );
  }
  return JSON.stringify(
    {
      ok: false,
      exitCode,
      verdict: `failed: ${message.split('\n')[0]}`,
      error: {
        kind: KIND[exitCode] ?? 'error',
        message,
        problems: error instanceof UsageError ? error.problems : [],
        remaining: error instanceof ApplyFailedError ? error.remaining : [],
        hints: error instanceof KnockerError ? error.hints : [],
      },
    },
    null,
    2,
  );
}
