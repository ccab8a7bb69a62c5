// A lock file so two knocker runs never change the same host at once. The file holds the owner's
// pid; a lock left by a process that no longer exists is taken over.
import fs from 'node:fs/promises';
import path from 'node:path';
import { PreflightError } from '../errors.js';

export interface Lock {
  readonly file: string;
  release(): Promise<void>;
}

/** Whether a process exists (EPERM: it exists, as another user's). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function acquireLock(file: string, what: string): Promise<Lock> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      const handle = await fs.open(file, 'wx', 0o600);
      // The pid, then what holds it: the installer and exposedb share the host's lock.
      await handle.writeFile(`${process.pid} ${what}\n`);
      await handle.close();
      let released = false;
      return {
        file,
        async release() {
          if (released) return;
          released = true;
          await fs.rm(file, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const content = (await fs.readFile(file, 'utf8').catch(() => '')).trim();
    const owner = Number.parseInt(content, 10);
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
      const holder = /^\d+\s+(\S.*)$/.exec(content)?.[1] ?? what;
      throw new PreflightError(`another ${holder} is running (pid ${owner}); wait for it to finish`, [
        `if no such run exists, remove the lock file ${file}`,
      ]);
    }
    // Stale: its owner is gone. Remove it and try again.
    await fs.rm(file, { force: true });
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
