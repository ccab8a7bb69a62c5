// knocknoc.conf as `knocker service` meets it. Before anything is stopped or started, the file is
// checked the way knocknoc-server will read it (src/server/config.ts, the one check of the file):
// a line the server refuses is reported with its file:line and nothing is touched, so a restart
// never takes a healthy node down for a configuration it cannot start with. And a file that cannot
// be read at all (overwritten, a FIFO, too big) hides nothing: what knocker started is found from
// its own records instead (src/service/index.ts).
import os from 'node:os';
import { KnocknocConf } from '../config/knocknoc-conf.js';
import { UsageError } from '../errors.js';
import { loadServerConfig } from '../server/config.js';
import { knockerCommand } from '../shared/hint.js';
import { readRegularFileSync, UnreadableFileError } from '../system/files.js';
import { MAX_CONF_BYTES } from '../server/config.js';
import type { Root } from '../system/root.js';

export interface ConfRead {
  /** The file as parsed, when it could be read (it may still have lines the server refuses). */
  conf: KnocknocConf | undefined;
  /** Why the file is not one to go by: missing, unreadable, or with lines the server refuses. */
  problem: string | undefined;
}

/** Reads knocknoc.conf for `knocker service`; only a permission problem stops the run (nothing else can be read either). */
export function readConfForService(confFile: string): ConfRead {
  let text: string;
  try {
    text = readRegularFileSync(confFile, MAX_CONF_BYTES);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES') throw error;
    if (code === 'ENOENT') return { conf: undefined, problem: `no ${confFile}` };
    const why = error instanceof UnreadableFileError ? error.message : `cannot read ${confFile}: ${code ?? String(error)}`;
    return { conf: undefined, problem: why };
  }
  const conf = KnocknocConf.parse(text);
  const first = conf.problems[0];
  return { conf, problem: first ? `${confFile}:${first.line}: ${first.message}` : undefined };
}

/**
 * Refuses (exit 2, nothing changed) when knocknoc-server would not start with the file as it is:
 * every problem with its file:line, as the server itself would print them.
 */
export async function checkConfBeforeStart(root: Root, confFile: string, command: string): Promise<void> {
  const loaded = await loadServerConfig(confFile, os.hostname(), `run \`${knockerCommand(root, 'install')}\` to write it`);
  if (loaded.ok) return;
  throw new UsageError(`knocknoc-server would not start with ${confFile}; nothing was stopped or started`, loaded.problems, [
    `fix ${loaded.problems.length === 1 ? 'it' : 'them'}, then run ${knockerCommand(root, command)} again (a running node keeps serving meanwhile)`,
  ]);
}
