// Errors are values an operator can act on. Each kind carries the exit code of CONTRACTS.md;
// `exitCodeOf` is the one place that maps an error to a code.

export const EXIT = {
  ok: 0,
  bug: 1,
  usage: 2,
  preflight: 3,
  rolledBack: 4,
  rollbackIncomplete: 5,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const BUG_REPORT_URL = 'https://github.com/knocknoc/knocker/issues';

export class KnockerError extends Error {
  readonly exitCode: ExitCode;
  /** Lines of advice shown under the message. */
  readonly hints: string[];
  constructor(message: string, exitCode: ExitCode, hints: string[] = []) {
    super(message);
    this.name = new.target.name;
    this.exitCode = exitCode;
    this.hints = hints;
  }
}

/** Invalid input or usage; nothing was changed (exit 2). */
export class UsageError extends KnockerError {
  /** Each problem on its own line (answers-file errors are reported all at once). */
  readonly problems: string[];
  constructor(message: string, problems: string[] = [], hints: string[] = []) {
    super(message, EXIT.usage, hints);
    this.problems = problems;
  }
}

/** A preflight check failed; nothing was changed (exit 3). */
export class PreflightError extends KnockerError {
  constructor(message: string, hints: string[] = []) {
    super(message, EXIT.preflight, hints);
  }
}

/** Applying failed; `remaining` lists what the rollback could not undo (exit 4 when empty, else 5). */
export class ApplyFailedError extends KnockerError {
  readonly remaining: string[];
  constructor(message: string, remaining: string[], hints: string[] = []) {
    super(message, remaining.length === 0 ? EXIT.rolledBack : EXIT.rollbackIncomplete, hints);
    this.remaining = remaining;
  }
}

export function exitCodeOf(error: unknown): ExitCode {
  return error instanceof KnockerError ? error.exitCode : EXIT.bug;
}

/** The lines an operator sees for an error, whatever its kind. */
export function formatError(error: unknown): string[] {
  if (error instanceof KnockerError) {
    const lines = [`error: ${error.message}`];
    if (error instanceof UsageError) lines.push(...error.problems.map((p) => `  ${p}`));
    if (error instanceof ApplyFailedError && error.remaining.length > 0) {
      lines.push('The rollback was incomplete; these changes remain and need a look:');
      lines.push(...error.remaining.map((r) => `  - ${r}`));
    }
    lines.push(...error.hints.map((h) => `hint: ${h}`));
    return lines;
  }
  const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
  return [
    `internal error: ${error instanceof Error ? error.message : String(error)}`,
    `This is a bug in knocker. Please report it at ${BUG_REPORT_URL} with the output below.`,
    detail,
  ];
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
