// What knocker itself writes in the folders it shares with the operator (var/log/knocknoc,
// run/knocknoc): its logs and their rotations, its pid and lock files, its private cluster's
// sockets. An uninstall removes these by name and leaves any other file there (an operator's notes,
// another tool's log) as it found it.
import fs from 'node:fs/promises';
import path from 'node:path';
import { PATHS, type Root } from '../system/root.js';
import { STANDBY_PATHS } from '../standby/paths.js';

/** Logs knocker and the services it runs write; each may have a rotation beside it (FILE.1). */
const LOGS = [PATHS.installLog, PATHS.exposedbLog, PATHS.opsLog, PATHS.serverLog, PATHS.pgLog, PATHS.haproxyLog, STANDBY_PATHS.log];
/** Runtime files under run/knocknoc (the lock of the running command is its own to remove). */
const RUN_FILES = [PATHS.serverPid, PATHS.upgradeLock];
/** PostgreSQL's socket and its lock file in the private cluster's socket folder. */
const PG_SOCKET = /^\.s\.PGSQL\.\d+(\.lock)?$/;

/** The files of knocker's own names that exist under the root's log and run folders. */
export async function knockerWrittenFiles(root: Root): Promise<string[]> {
  const candidates = [...LOGS.flatMap((f) => [root.path(f), `${root.path(f)}.1`]), ...RUN_FILES.map((f) => root.path(f))];
  const socketDir = root.path(PATHS.pgSocketDir);
  const sockets = (await fs.readdir(socketDir).catch(() => [] as string[])).filter((name) => PG_SOCKET.test(name)).map((name) => path.join(socketDir, name));
  const found: string[] = [];
  for (const file of [...candidates, ...sockets]) {
    const stat = await fs.lstat(file).catch(() => undefined);
    if (stat && !stat.isDirectory()) found.push(file);
  }
  return found;
}
