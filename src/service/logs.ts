// `knocker service logs [server|postgres|haproxy] [-f] [-n N]`: the log of what the installer set
// up. Where systemd runs the service it is the unit's journal (journalctl); otherwise, and always
// under a root, the file the daemon writes. -f follows it (a file rotated or truncated meanwhile
// is read again from its start) until Ctrl-C.
import { execa } from 'execa';
import { PreflightError } from '../errors.js';
import { HAPROXY_UNIT } from '../haproxy/service.js';
import { findSystemClusters, pickCluster } from '../postgres/system-cluster.js';
import { SERVER_UNIT } from '../server/service.js';
import { knockerCommand } from '../shared/hint.js';
import type { Output } from '../shared/output.js';
import { isSystemdHost } from '../system/host.js';
import { PATHS, type Root } from '../system/root.js';
import { UnreadableFileError } from '../system/files.js';
import { openRegularFile } from '../system/regular-file.js';
import { logTail } from '../system/service.js';
import { sleep } from '../system/wait.js';

export type LogName = 'server' | 'postgres' | 'haproxy';

export interface LogOptions {
  follow: boolean;
  lines: number;
  /** Ends a follow (Ctrl-C); given by the door. */
  stop: AbortSignal;
}

type LogSource = { kind: 'journal'; unit: string } | { kind: 'file'; file: string };

async function sourceOf(root: Root, which: LogName): Promise<LogSource> {
  const systemd = !root.isSandbox && (await isSystemdHost());
  if (which === 'server') return systemd ? { kind: 'journal', unit: SERVER_UNIT } : { kind: 'file', file: root.path(PATHS.serverLog) };
  if (which === 'haproxy') return systemd ? { kind: 'journal', unit: HAPROXY_UNIT } : { kind: 'file', file: root.path(PATHS.haproxyLog) };
  if (root.isSandbox) return { kind: 'file', file: root.path(PATHS.pgLog) };
  // The host's PostgreSQL: Debian's clusters log to a file of their own; elsewhere, the journal.
  const cluster = pickCluster(await findSystemClusters());
  if (cluster?.layout === 'debian') return { kind: 'file', file: `/var/log/postgresql/postgresql-${cluster.version}-${cluster.name}.log` };
  return { kind: 'journal', unit: 'postgresql.service' };
}

/** A log that is there but not a regular file (a FIFO, a folder): refused with a sentence, never read. */
function notAFile(error: UnreadableFileError): PreflightError {
  return new PreflightError(`cannot read ${error.message}`, [
    'a service writes its log to a regular file: move what is there aside, then start the service again',
  ]);
}

async function followFile(file: string, from: number, io: Output, stop: AbortSignal): Promise<void> {
  let position = from;
  let partial = '';
  while (!stop.aborted) {
    const opened = await openRegularFile(file).catch((error: NodeJS.ErrnoException) => {
      if (error instanceof UnreadableFileError) throw notAFile(error);
      return undefined;
    });
    const size = opened?.size ?? 0;
    // Rotated (copied and truncated, or moved and made anew): go on from the new file's start.
    if (size < position) position = 0;
    if (opened && size > position) {
      try {
        const buffer = Buffer.alloc(Math.min(size - position, 1024 * 1024));
        const { bytesRead } = await opened.handle.read(buffer, 0, buffer.length, position);
        position += bytesRead;
        const lines = (partial + buffer.subarray(0, bytesRead).toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) io.out(line);
      } finally {
        await opened.handle.close();
      }
      continue;
    }
    await opened?.handle.close();
    // Ctrl-C ends the pause at once; the loop then sees the stop.
    await sleep(250, stop).catch(() => {});
  }
}

export async function serviceLogs(root: Root, which: LogName, options: LogOptions, io: Output): Promise<number> {
  const source = await sourceOf(root, which);
  if (source.kind === 'journal') {
    const args = ['-u', source.unit, '-n', String(options.lines), '--no-pager', ...(options.follow ? ['-f'] : [])];
    const child = execa('journalctl', args, { reject: false, cancelSignal: options.stop, stdin: 'ignore', stderr: 'pipe', lines: false, buffer: false });
    let partial = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) io.out(line);
    });
    const result = await child;
    if (partial) io.out(partial);
    if (options.stop.aborted) return 0;
    if (result.exitCode !== 0)
      throw new PreflightError(`journalctl -u ${source.unit} failed (exit ${result.exitCode})`, [
        'run it as root (sudo), or as a user in the systemd-journal group',
      ]);
    return 0;
  }
  const opened = await openRegularFile(source.file).catch((error: NodeJS.ErrnoException) => error);
  if (opened instanceof Error) {
    if (opened instanceof UnreadableFileError) throw notAFile(opened);
    if (opened.code !== 'ENOENT')
      throw new PreflightError(`cannot read ${source.file}: ${opened.code === 'EACCES' ? 'permission denied' : opened.message}`, [
        'run it as root (sudo), as knocker install was',
      ]);
    if (!options.follow) {
      throw new PreflightError(`${which}: no log yet (${source.file} does not exist)`, [
        `is it set up here? ${knockerCommand(root, `service status ${which}`)}`,
      ]);
    }
  } else {
    await opened.handle.close();
  }
  for (const line of await logTail(source.file, options.lines)) io.out(line);
  if (options.follow) await followFile(source.file, opened instanceof Error ? 0 : opened.size, io, options.stop);
  return 0;
}
