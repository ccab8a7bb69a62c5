// Runs the real program (bin/knocker, bin/knocknoc-server) as a separate process, without a TTY,
// as scripts and CI run it.
import { execa } from 'execa';
import path from 'node:path';
import { packageRoot } from '../../src/system/package.js';

// The checkout: found by its package.json, so it is the same whether these helpers run from test/
// under vitest or compiled to bench/out/test/helpers/ by a benchmark.
export const REPO = packageRoot();
export const KNOCKER = path.join(REPO, 'bin', 'knocker');

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** The environment of a run: KNOCKNOC_* from the test's own environment never leak in. */
export function cleanEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith('KNOCKNOC_')) env[key] = value;
  }
  for (const [key, value] of Object.entries(extra)) if (value !== undefined) env[key] = value;
  return env;
}

export async function knocker(
  args: string[],
  options: { env?: Record<string, string | undefined>; input?: string; timeoutMs?: number; keepStdinOpen?: boolean; bin?: string; executable?: string } = {},
): Promise<RunResult> {
  // `bin`: another release's bin/knocker (test/helpers/release.ts); `executable`: the packaged
  // single executable, which runs without node.
  const [program, ...prefix] = options.executable ? [options.executable] : [process.execPath, options.bin ?? KNOCKER];
  const result = await execa(program!, [...prefix, ...args], {
    env: cleanEnv(options.env),
    extendEnv: false,
    // An open stdin that never sends anything: a run that waited for a key would hang.
    ...(options.keepStdinOpen ? { stdin: 'pipe' as const } : { input: options.input ?? '' }),
    reject: false,
    timeout: options.timeoutMs ?? 120_000,
  });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}
