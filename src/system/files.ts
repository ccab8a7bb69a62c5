// Writing files safely: a temporary file in the same folder (so rename is atomic and keeps the
// folder's SELinux label), fsync, rename over the target, fsync the folder. The previous content is
// kept beside the target as `<name>.bak` before it is replaced.
// node:crypto is loaded when first used: the installer's first screen needs none of it (~10 ms,
// bench/RESULTS.md).
const crypto = () => process.getBuiltinModule('node:crypto');
import fs from 'node:fs/promises';
import path from 'node:path';

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

export async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
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
