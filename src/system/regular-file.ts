// Opening a file knocker reads as it goes (a log it prints or follows): only when it is a regular
// file. It is opened without blocking, so a FIFO put in its place never hangs the run (an open of a
// FIFO for reading waits for a writer, out of reach of Ctrl-C), and a folder or a device is refused
// with a sentence instead of failing on the first read.
import fsSync from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import { kindOf, UnreadableFileError } from './files.js';

/** The open file and its size; throws UnreadableFileError (ENOTREG) when it is not a regular file, and ENOENT as fs does. */
export async function openRegularFile(file: string): Promise<{ handle: FileHandle; size: number }> {
  const handle = await fs
    .open(file, fsSync.constants.O_RDONLY | fsSync.constants.O_NONBLOCK | fsSync.constants.O_NOCTTY)
    .catch(async (error: NodeJS.ErrnoException) => {
      // A socket cannot be opened at all (ENXIO): say what it is, as for the others.
      const stat = error.code === 'ENXIO' ? await fs.stat(file).catch(() => undefined) : undefined;
      throw stat && !stat.isFile() ? new UnreadableFileError(`${file} is ${kindOf(stat)}; only a regular file is read`, 'ENOTREG') : error;
    });
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new UnreadableFileError(`${file} is ${kindOf(stat)}; only a regular file is read`, 'ENOTREG');
    return { handle, size: stat.size };
  } catch (error) {
    await handle.close();
    throw error;
  }
}
