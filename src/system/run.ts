// Running commands: always a program and an argument array (never a shell string), secrets only
// ever on stdin, and every command written to the log.
import { errorMessage } from '../errors.js';
import type { Logger } from './log.js';

export interface RunOptions {
  /** Text written to the command's stdin (the only place a secret may travel). */
  input?: string;
  /** Run as this OS user (through runuser) when we are root and it is another user. */
  asUser?: string;
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  log?: Logger;
  /** Do not throw on a non-zero exit; the caller reads `exitCode`. */
  allowFailure?: boolean;
  /**
   * Leave out libpq's PG* variables of knocker's own environment: a postmaster started with
   * PGPASSWORD set hands it to its walreceiver, which then uses it instead of the passfile.
   */
  withoutPgEnv?: boolean;
}

/** The process's environment without libpq's PG* variables (PGPASSWORD, PGUSER, PGHOST, …). */
export function environmentWithoutPg(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined && !key.startsWith('PG')) env[key] = value;
  return { ...env, ...extra };
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  readonly argv: string[];
  readonly exitCode: number | undefined;
  readonly stderr: string;
  constructor(argv: string[], exitCode: number | undefined, stderr: string, reason: string) {
    const detail = stderr.trim().split('\n').slice(-6).join('\n');
    super(`${argv.join(' ')} ${reason}${detail ? `:\n${detail}` : ''}`);
    this.argv = argv;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** The argv actually run: wrapped in runuser when switching user as root. */
export function commandLine(file: string, args: string[], asUser?: string): string[] {
  if (asUser && process.getuid?.() === 0 && asUser !== 'root') {
    return ['runuser', '-u', asUser, '--', file, ...args];
  }
  return [file, ...args];
}

export async function run(file: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const argv = commandLine(file, args, options.asUser);
  const [program, ...rest] = argv as [string, ...string[]];
  options.log?.info(`run: ${argv.join(' ')}`);
  const started = Date.now();
  let result;
  try {
    // execa (with child_process and its helpers) is loaded when the first command runs: the
    // installer's first screen runs none.
    const { execa } = await import('execa');
    result = await execa(program, rest, {
      input: options.input ?? '',
      ...(options.withoutPgEnv ? { env: environmentWithoutPg(options.env), extendEnv: false } : { env: options.env }),
      cwd: options.cwd,
      timeout: options.timeoutMs,
      reject: false,
      stripFinalNewline: true,
    });
  } catch (error) {
    throw new CommandError(argv, undefined, '', `could not start: ${errorMessage(error)}`);
  }
  const stdout = String(result.stdout ?? '');
  const stderr = String(result.stderr ?? '');
  const exitCode = result.exitCode ?? -1;
  options.log?.info(`exit ${exitCode} after ${Date.now() - started} ms: ${argv[0]}${stderr ? `\n${stderr}` : ''}`);
  if (result.failed && !options.allowFailure) {
    const reason = result.timedOut
      ? `timed out after ${options.timeoutMs} ms`
      : result.exitCode === undefined
        ? `could not start: ${result.shortMessage}`
        : `failed with exit code ${exitCode}`;
    throw new CommandError(argv, result.exitCode, stderr, reason);
  }
  return { exitCode, stdout, stderr };
}

/** The full path of `program` as the OS would find it on PATH, or undefined. */
export async function which(program: string): Promise<string | undefined> {
  const { access, constants } = await import('node:fs/promises');
  const dirs = (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':');
  for (const dir of dirs) {
    const candidate = `${dir}/${program}`;
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}
