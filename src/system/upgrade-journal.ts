// The upgrade's record of its own progress (/var/lib/knocknoc/upgrade.json, 0600: the command may
// hold a token), as a file: its format, reading it, and whether the run that writes it is alive.
// Here rather than in src/upgrade/ because other commands must not work against a running upgrade
// (knocker haproxy drain|maint|ready refuses), and src/upgrade/ itself builds on src/haproxy/.
// The writer is src/upgrade/journal.ts.
import { errorMessage } from '../errors.js';
import { readIfExists } from './files.js';
import { isAlive } from './lock.js';
import { PATHS, type Root } from './root.js';

export const JOURNAL_VERSION = 1;

/** Where a server is in the upgrade. */
export type ServerPhase =
  | 'waiting'
  /** Taken out of rotation by this upgrade. */
  | 'out'
  /** Its upgrade command has started (and may have been cut off). */
  | 'upgrading'
  /** Answers /_status on the new version, in step. */
  | 'upgraded'
  /** Upgraded and back in rotation (or, the first one, never left it): done. */
  | 'done';

export interface JournalServer {
  name: string;
  host: string;
  port: number;
  backup: boolean;
  /** Its version when the upgrade started. */
  fromVersion: string;
  phase: ServerPhase;
  /** Left in maintenance by a rollback: out of step with the database until it is upgraded. */
  heldOut?: boolean;
}

export type JournalState =
  /** A run is (or was, if its pid is gone) under way. */
  | 'running'
  /** A step failed and rotation was restored; `--resume` goes on from here. */
  | 'stopped'
  | 'done'
  | 'rolled-back';

export interface Journal {
  version: typeof JOURNAL_VERSION;
  state: JournalState;
  pid: number;
  startedAt: string;
  updatedAt: string;
  /** The command (a template with {name}, {host}, {port}), any secret in it masked. */
  command: string;
  /** A secret was masked in `command`: --resume needs the command given again. */
  commandMasked?: boolean;
  /** The server upgraded alone, in rotation. */
  first: string;
  /** The version the first server came back with (or --to-version): every server must reach it. */
  target?: string;
  /** Given as --to-version. */
  toVersion?: string;
  /** The schema version of the target release, once a server answered on it: the database is (being) migrated to it. */
  targetSchema?: number;
  /** Health checks of this server are disabled by the upgrade (while it restarts alone). */
  healthDisabled?: string;
  /**
   * The upgrade command running now (its own session: it outlives a knocker killed outright).
   * Written before it starts: `marker` is in its environment (and its children's), so a run cut off
   * before it could write `pid` still finds it.
   */
  running?: { server: string; marker: string; pid?: number };
  servers: JournalServer[];
  /** Why it stopped, when it did. */
  reason?: string;
  /** Each step as it started and ended, for the operator and for `--resume`. */
  history: Array<{ at: string; text: string }>;
}

export class JournalError extends Error {}

export async function readJournal(file: string): Promise<Journal | undefined> {
  const text = await readIfExists(file);
  if (text === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new JournalError(`${file} is not readable JSON (${errorMessage(error)}): look at it, and remove it if no upgrade is under way`);
  }
  const journal = parsed as Partial<Journal>;
  if (journal.version !== JOURNAL_VERSION || !Array.isArray(journal.servers) || typeof journal.state !== 'string' || typeof journal.command !== 'string') {
    throw new JournalError(`${file} is not an upgrade record this knocker knows (version ${String(journal.version)})`);
  }
  return journal as Journal;
}

/** Whether the run that wrote it is still alive (another knocker upgrade going on now). */
export function journalOwnerAlive(journal: Journal): boolean {
  return journal.state === 'running' && journal.pid !== process.pid && isAlive(journal.pid);
}

/** The record of an upgrade going on now on this root (its run alive), or undefined; an unreadable record counts as none. */
export async function upgradeInProgress(root: Root): Promise<Journal | undefined> {
  const journal = await readJournal(root.path(PATHS.upgradeJournal)).catch(() => undefined);
  return journal && journalOwnerAlive(journal) ? journal : undefined;
}
