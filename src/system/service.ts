// Running a program as a service. Where PID 1 is systemd (and not under a sandbox root) it is a
// unit driven with systemctl; otherwise a detached daemon: its own session, stdout and stderr
// appended to a log file, and a pid file the program keeps itself (written when it starts, removed
// when it exits). A pid file only counts while its process is alive and names that pid file on its
// command line, so a stale file whose pid was reused by something else is never signalled.
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { isAlive } from './lock.js';
import type { Logger } from './log.js';
import { openRegularFile } from './regular-file.js';
import { run } from './run.js';
import { waitForOrUndefined } from './wait.js';

export interface DaemonSpec {
  /** Absolute path of the program (e.g. node) and its arguments; the arguments must include pidFile. */
  program: string;
  args: string[];
  pidFile: string;
  logFile: string;
  cwd: string;
  /** Its environment, in place of DAEMON_ENV: as small and fixed, never the caller's. */
  env?: Record<string, string>;
  /** The user it runs as (knocker runs as root). */
  user?: { uid: number; gid: number };
  /**
   * For a program that keeps no pid file of its own (pg_autoctl): knocker writes it once the
   * program has started, and the program is known by this argument of its command line instead.
   */
  mark?: string;
}

/** A fixed, small environment: a daemon inherits nothing from the shell that started it (no secrets). */
const DAEMON_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' };

async function isOurs(pid: number, mark: string): Promise<boolean> {
  const [stat, cmdline] = await Promise.all([
    fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined),
    fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined),
  ]);
  if (stat === undefined || cmdline === undefined) return false;
  // The state follows the command name in parentheses; Z is a zombie (it has exited).
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && cmdline.split('\0').includes(mark);
}

/** The daemon's pid while it runs, from its pid file (`mark`: see DaemonSpec). */
export async function runningDaemon(pidFile: string, mark = pidFile): Promise<number | undefined> {
  const text = await fs.readFile(pidFile, 'utf8').catch(() => undefined);
  const pid = Number((text ?? '').trim());
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  return (await isOurs(pid, mark)) ? pid : undefined;
}

/**
 * The pid a pid file still names although that process is gone: the daemon was killed outright
 * (kill -9, the OOM killer) or crashed, since a clean exit removes its pid file.
 */
export async function vanishedDaemon(pidFile: string): Promise<number | undefined> {
  const text = await fs.readFile(pidFile, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  return (await isOurs(pid, pidFile)) ? undefined : pid;
}

/** The last lines of a log, reading only its end (a log may be large). */
export async function logTail(logFile: string, lines: number, maxBytes = 64 * 1024): Promise<string[]> {
  // Not there, or not a regular file (a FIFO would hang a plain open): nothing to show.
  const opened = await openRegularFile(logFile).catch(() => undefined);
  if (!opened) return [];
  const { handle, size } = opened;
  try {
    const length = Math.min(size, maxBytes);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    const text = buffer.toString('utf8').split('\n');
    // A cut first line is not shown half.
    if (length < size) text.shift();
    return text.filter((l) => l.trim() !== '').slice(-lines);
  } finally {
    await handle.close();
  }
}

export interface StartedDaemon {
  pid: number;
  /** Resolves with the exit code if it exits while this process still runs. */
  exited: Promise<number | null>;
  /** Where this run's output begins in the log file. */
  logOffset: number;
}

export async function startDaemon(spec: DaemonSpec, log?: Logger): Promise<StartedDaemon> {
  await fs.mkdir(path.dirname(spec.pidFile), { recursive: true, mode: 0o755 });
  await fs.mkdir(path.dirname(spec.logFile), { recursive: true, mode: 0o755 });
  const output = await fs.open(spec.logFile, 'a', 0o640);
  const logOffset = (await output.stat()).size;
  log?.info(`start daemon: ${[spec.program, ...spec.args].join(' ')} (log ${spec.logFile})`);
  try {
    const child = spawn(spec.program, spec.args, {
      cwd: spec.cwd,
      env: spec.env ?? DAEMON_ENV,
      detached: true,
      stdio: ['ignore', output.fd, output.fd],
      ...(spec.user ? { uid: spec.user.uid, gid: spec.user.gid } : {}),
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('spawn', () => resolve(child.pid!));
    });
    child.unref();
    if (spec.mark !== undefined) await fs.writeFile(spec.pidFile, `${pid}\n`, { mode: 0o644 });
    return { pid, exited, logOffset };
  } finally {
    await output.close();
  }
}

async function gone(pid: number, mark: string, withinMs: number): Promise<boolean> {
  return (
    (await waitForOrUndefined(`pid ${pid} to end`, async () => (!isAlive(pid) || !(await isOurs(pid, mark)) ? true : undefined), {
      timeoutMs: withinMs,
      everyMs: 50,
    })) ?? false
  );
}

/**
 * Stops the daemon with `signal` (its graceful stop: SIGTERM for most) and waits for it to finish;
 * SIGKILL only after `graceMs`. Returns what happened, for the operator.
 */
export async function stopDaemon(
  pidFile: string,
  graceMs: number,
  log?: Logger,
  signal: NodeJS.Signals = 'SIGTERM',
  /** `mark`: see DaemonSpec; `group`: SIGKILL its whole process group (a supervisor's children too). */
  options: { mark?: string; group?: boolean } = {},
): Promise<'not running' | 'stopped' | 'killed'> {
  const mark = options.mark ?? pidFile;
  const pid = await runningDaemon(pidFile, mark);
  if (pid === undefined) {
    await fs.rm(pidFile, { force: true });
    return 'not running';
  }
  log?.info(`stop daemon: ${signal} to ${pid}`);
  process.kill(pid, signal);
  if (await gone(pid, mark, graceMs)) {
    if (options.mark !== undefined) await fs.rm(pidFile, { force: true });
    return 'stopped';
  }
  log?.warn(`daemon ${pid} still running after ${graceMs} ms: SIGKILL`);
  process.kill(options.group ? -pid : pid, 'SIGKILL');
  await gone(pid, mark, 5_000);
  await fs.rm(pidFile, { force: true });
  return 'killed';
}

/** What the daemon wrote to its log since `offset` (its own start-up messages), last lines only. */
export async function logSince(logFile: string, offset: number, lines = 12, maxBytes = 64 * 1024): Promise<string[]> {
  const opened = await openRegularFile(logFile).catch(() => undefined);
  if (!opened) return [];
  const { handle, size } = opened;
  try {
    // `offset` counts bytes: the text is cut as bytes, before decoding (a cut by characters after a
    // multi-byte character in the log lost the first letters of what followed).
    const from = Math.max(offset, size - maxBytes);
    const buffer = Buffer.alloc(Math.max(0, size - from));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, from);
    const text = buffer.subarray(0, bytesRead).toString('utf8').split('\n');
    if (from > offset) text.shift();
    return text.filter((l) => l.trim() !== '').slice(-lines);
  } finally {
    await handle.close();
  }
}

export async function systemctl(args: string[], log?: Logger): Promise<void> {
  await run('systemctl', args, { log, timeoutMs: 120_000 });
}

export async function unitActive(unit: string): Promise<boolean> {
  const result = await run('systemctl', ['is-active', '--quiet', unit], { allowFailure: true });
  return result.exitCode === 0;
}

/** The unit failed (it exited with an error or was killed, and systemd did not restart it). */
export async function unitFailed(unit: string): Promise<boolean> {
  const result = await run('systemctl', ['is-failed', '--quiet', unit], { allowFailure: true });
  return result.exitCode === 0;
}

/** The unit's recent journal lines (since a time), for an operator told that it failed. */
export async function unitJournal(unit: string, sinceEpochSeconds: number, lines = 12): Promise<string[]> {
  const result = await run('journalctl', ['-u', unit, '-n', String(lines), '--no-pager', '-o', 'cat', '--since', `@${sinceEpochSeconds}`], {
    allowFailure: true,
  });
  return result.stdout.split('\n').filter((l) => l.trim() !== '');
}
