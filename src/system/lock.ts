// A lock file so two knocker runs never change the same host at once. The file holds the owner's
// pid; a lock left by a process that no longer exists is taken over.
// node:crypto is loaded when first used: the installer's first screen needs none of it (~10 ms,
// bench/RESULTS.md).
const crypto = () => process.getBuiltinModule('node:crypto');
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { PreflightError } from '../errors.js';

export interface Lock {
  readonly file: string;
  release(): Promise<void>;
}

/**
 * Whether a process exists (EPERM: it exists, as another user's). A zombie — dead, not yet reaped,
 * as orphans are where PID 1 does not reap them (containers) — counts as gone.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return processState(pid) !== 'Z';
}

/** Whether the process is a zombie: it has ended and its parent has not reaped it yet. */
export function isZombie(pid: number): boolean {
  return processState(pid) === 'Z';
}

/** The process's state letter (R, S, Z, …) from /proc/PID/stat; undefined when it cannot be read. */
function processState(pid: number): string | undefined {
  try {
    // /proc/PID/stat: "pid (comm) S …"; comm may hold spaces and parentheses, the state follows the last ")".
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

/** Temporary files of runs that are gone (killed before they could remove them): `NAME.PID.HEX…`. */
export async function removeStaleTemps(dir: string, prefix: string, suffix = ''): Promise<void> {
  const entries = await fsp.readdir(dir).catch(() => [] as string[]);
  for (const entry of entries) {
    if (!entry.startsWith(prefix) || !entry.endsWith(suffix)) continue;
    const pid = Number(/^(\d+)\.[0-9a-f]{8}$/.exec(entry.slice(prefix.length, entry.length - suffix.length))?.[1]);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !isAlive(pid)) await fsp.rm(path.join(dir, entry), { force: true });
  }
}

/** An error of the file system (no space left, read-only) as a preflight failure: nothing was changed. */
function lockFailed(file: string, error: unknown): never {
  const code = (error as NodeJS.ErrnoException).code;
  throw new PreflightError(
    `cannot take the lock ${file}: ${(error as Error).message}`,
    code === 'ENOSPC' || code === 'EDQUOT' ? ['free some space on that file system, then run this again'] : [],
  );
}

export async function acquireLock(file: string, what: string): Promise<Lock> {
  await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o755 }).catch((error: unknown) => lockFailed(file, error));
  await removeStaleTemps(path.dirname(file), `${path.basename(file)}.`);
  for (let attempt = 0; attempt < 3; attempt += 1) {
    // The lock appears with its content already in it (link of a written file), so nobody can
    // read an empty lock and take it for a stale one. The pid, then what holds it: the installer,
    // exposedb and the service commands share the host's lock.
    const temp = `${file}.${process.pid}.${crypto().randomBytes(4).toString('hex')}`;
    try {
      await fsp.writeFile(temp, `${process.pid} ${what}\n`, { mode: 0o600 });
    } catch (error) {
      await fsp.rm(temp, { force: true });
      lockFailed(file, error);
    }
    try {
      await fsp.link(temp, file);
      let released = false;
      return {
        file,
        async release() {
          if (released) return;
          released = true;
          await fsp.rm(file, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') lockFailed(file, error);
    } finally {
      await fsp.rm(temp, { force: true });
    }
    const seen = await fsp.stat(file).catch(() => undefined);
    const content = (await fsp.readFile(file, 'utf8').catch(() => '')).trim();
    const owner = Number.parseInt(content, 10);
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
      const holder = /^\d+\s+(\S.*)$/.exec(content)?.[1] ?? what;
      throw new PreflightError(`another ${holder} is running (pid ${owner}); wait for it to finish`, [`if no such run exists, remove the lock file ${file}`]);
    }
    // Stale: its owner is gone. Remove that file only, not a new lock taken meanwhile.
    const now = await fsp.stat(file).catch(() => undefined);
    if (seen && now && now.ino === seen.ino) await fsp.rm(file, { force: true });
  }
  throw new PreflightError(`could not take the lock ${file}`);
}

/** Runs `work` while holding the lock. */
export async function withLock<T>(file: string, what: string, work: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(file, what);
  try {
    return await work();
  } finally {
    await lock.release();
  }
}
