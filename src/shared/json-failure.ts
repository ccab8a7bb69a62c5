// A script that asked for --json always gets one JSON object on stdout (CONTRACTS.md, "Output
// channels"), also when the run fails before the command could print its own: this is that object,
// with the verdict and the error an operator would read on stderr.
import { ApplyFailedError, KnockerError, UsageError, errorMessage, type ExitCode } from '../errors.js';

/** Whether the run's arguments ask for --json (before a `--`, which ends the options). */
export function wantsJson(argv: string[]): boolean {
  const args = argv.slice(2);
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).includes('--json');
}

const KIND: Record<number, string> = { 1: 'bug', 2: 'usage', 3: 'preflight', 4: 'rolled-back', 5: 'rollback-incomplete' };

/** The one JSON object of a failed --json run. */
export function jsonFailure(error: unknown, exitCode: ExitCode): string {
  const message = errorMessage(error).replace(/^error: /, '');
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
