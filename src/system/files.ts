// Writing files safely: a temporary file in the same folder (so rename is atomic and keeps the
// folder's SELinux label), fsync, rename over the target, fsync the folder. The previous content is
// kept beside the target as `<name>.bak` before it is replaced.
// node:crypto is loaded when first used: the installer's first screen needs none of it (~10 ms,
// bench/RESULTS.md).
const crypto = () => process.getBuiltinModule('node:crypto');
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PreflightError } from '../errors.js';
import { removeStaleTemps } from './lock.js';

export interface WriteOptions {
  /** File mode; default: the existing file's mode, else 0644. */
  mode?: number;
  /** Owner uid/gid; default: the existing file's owner (when we may set it). */
  uid?: number;
  gid?: number;
  /** Keep the previous content as `<file>.bak` (default true). */
  backup?: boolean;
  /**
   * Checks the new content in its temporary file (same folder, final mode) before anything else
   * happens; when it throws, the temporary file is removed and the target and its backup are left
   * as they were.
   */
  validate?: (tempFile: string) => Promise<void>;
}

/** Files knocker reads are at most this big unless a caller says otherwise (a configuration, a journal). */
export const MAX_READ_BYTES = 16 * 1024 * 1024;

/** A file that is not one knocker reads: not a regular file (a FIFO, a device, a folder), or too big. */
export class UnreadableFileError extends Error {
  readonly code: 'ENOTREG' | 'EFBIG';
  constructor(message: string, code: 'ENOTREG' | 'EFBIG') {
    super(message);
    this.code = code;
  }
}

export function kindOf(stat: fsSync.Stats): string {
  if (stat.isDirectory()) return 'a folder';
  if (stat.isFIFO()) return 'a FIFO (named pipe)';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  if (stat.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Reads a regular file of at most `maxBytes`, as UTF-8. A FIFO, a device (/dev/zero) or a folder is
 * refused at once (opened without blocking, never read), and so is a file bigger than the cap, or
 * one that grows past it while read (/proc files say they are empty).
 */
export function readRegularFileSync(file: string, maxBytes = MAX_READ_BYTES): string {
  const fd = fsSync.openSync(file, fsSync.constants.O_RDONLY | fsSync.constants.O_NONBLOCK | fsSync.constants.O_NOCTTY);
  try {
    const stat = fsSync.fstatSync(fd);
    if (!stat.isFile()) throw new UnreadableFileError(`${file} is ${kindOf(stat)}; only a regular file is read`, 'ENOTREG');
    const tooBig = () => new UnreadableFileError(`${file} is bigger than ${maxBytes.toLocaleString('en')} bytes, more than such a file can need`, 'EFBIG');
    if (stat.size > maxBytes) throw tooBig();
    let buffer = Buffer.alloc(Math.min(maxBytes + 1, Math.max(stat.size + 1, 65_536)));
    let length = 0;
    for (;;) {
      if (length === buffer.length) {
        const bigger = Buffer.alloc(Math.min(maxBytes + 1, buffer.length * 2));
        buffer.copy(bigger);
        buffer = bigger;
      }
      const n = fsSync.readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
      if (length > maxBytes) throw tooBig();
    }
    return buffer.toString('utf8', 0, length);
  } finally {
    fsSync.closeSync(fd);
  }
}

/**
 * The content of a file knocker reads (its own or the host's configuration), or undefined when it
 * does not exist. A file that is not a regular one, or is too big, stops the run (exit 3).
 */
export async function readIfExists(file: string, maxBytes = MAX_READ_BYTES): Promise<string | undefined> {
  try {
    return readRegularFileSync(file, maxBytes);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (error instanceof UnreadableFileError) throw new PreflightError(`cannot read ${error.message}`);
    throw error;
  }
}

export async function statIfExists(file: string) {
  try {
    return await fs.stat(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

export function backupPath(file: string): string {
  return `${file}.bak`;
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Replaces `file` atomically with `content`; returns the backup path when one was written. */
export async function writeFileAtomic(file: string, content: string, options: WriteOptions = {}): Promise<string | undefined> {
  const dir = path.dirname(file);
  await fs.mkdir(dir, { recursive: true });
  const existing = await statIfExists(file);
  if (existing && !existing.isFile()) throw new Error(`${file} exists and is not a regular file`);
  const mode = options.mode ?? (existing ? existing.mode & 0o7777 : 0o644);
  const isRoot = process.getuid?.() === 0;
  const uid = options.uid ?? (existing && isRoot ? existing.uid : undefined);
  const gid = options.gid ?? (existing && isRoot ? existing.gid : undefined);

  // A run killed between writing its temporary file and renaming it leaves that file: gone with it.
  await removeStaleTemps(dir, `.${path.basename(file)}.`, '.tmp');
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${crypto().randomBytes(4).toString('hex')}.tmp`);
  const handle = await fs.open(temp, 'wx', mode);
  try {
    await handle.writeFile(content, 'utf8');
    await handle.chmod(mode);
    if (uid !== undefined && gid !== undefined) await handle.chown(uid, gid);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await fs.rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  let backup: string | undefined;
  try {
    await options.validate?.(temp);
    if (existing && options.backup !== false) {
      backup = backupPath(file);
      await writeFileAtomic(backup, await fs.readFile(file, 'utf8'), { mode: existing.mode & 0o7777, uid, gid, backup: false });
    }
    await fs.rename(temp, file);
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw error;
  }
  await fsyncDir(dir);
  return backup;
}

/** Creates a folder (and parents) with a mode, leaving an existing one as it is. */
export async function ensureDir(dir: string, mode = 0o755): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode });
}
