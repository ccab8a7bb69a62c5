// Preflight results: each check, and the error that carries all of them when any failed. Kept
// apart from preflight.ts so that screens and output code need not load the database driver.
import { PreflightError } from '../errors.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  hints?: string[];
}

/** A check as one line of plain output: "  ✔ ok   NAME: DETAIL" or "  ✗ FAIL NAME: DETAIL". */
export function checkLine(check: Check): string {
  return `  ${check.ok ? '✔ ok  ' : '✗ FAIL'} ${check.name}: ${check.detail}`;
}

export class PreflightFailed extends PreflightError {
  readonly checks: Check[];
  constructor(checks: Check[]) {
    const failed = checks.filter((c) => !c.ok);
    super(
      failed.length === 1
        ? `preflight failed: ${failed[0]!.name}: ${failed[0]!.detail}`
        : `preflight failed:\n${failed.map((c) => `  ✗ ${c.name}: ${c.detail}`).join('\n')}`,
      failed.flatMap((c) => c.hints ?? []),
    );
    this.checks = checks;
  }
}
