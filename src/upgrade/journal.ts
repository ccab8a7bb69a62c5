// The upgrade's record of its own progress (/var/lib/knocknoc/upgrade.json, 0600: the command may
// hold a token): written before and after every step, atomically, so that a run cut off anywhere
// (Ctrl-C, a lost SSH session, a crash) can be resumed or rolled back from what it says.
import { errorMessage } from '../errors.js';
import { readIfExists, writeFileAtomic } from '../system/files.js';
import { isAlive } from '../system/lock.js';

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

/** Keeps the journal on disk in step with the run. Writes are queued, never interleaved. */
export class JournalWriter {
  private writing: Promise<void> = Promise.resolve();
  constructor(
    readonly file: string,
    public journal: Journal,
    /** Told after every change (the screen shows each server's phase). */
    private readonly onChange?: (journal: Journal) => void,
  ) {}

  /** Applies `change` and writes the result; resolves once it is on disk. */
  update(change: (j: Journal) => void, note?: string): Promise<void> {
    change(this.journal);
    this.journal.updatedAt = new Date().toISOString();
    this.journal.pid = process.pid;
    if (note) this.journal.history.push({ at: this.journal.updatedAt, text: note });
    const text = `${JSON.stringify(this.journal, null, 2)}\n`;
    // In order, and one failed write does not fail the ones after it.
    const write = this.writing.catch(() => {}).then(() => writeFileAtomic(this.file, text, { mode: 0o600, backup: false }).then(() => undefined));
    this.writing = write;
    this.onChange?.(structuredClone(this.journal));
    return write;
  }

  server(name: string): JournalServer {
    const server = this.journal.servers.find((s) => s.name === name);
    if (!server) throw new JournalError(`the upgrade record has no server ${name}`);
    return server;
  }

  setPhase(name: string, phase: ServerPhase, note?: string): Promise<void> {
    return this.update(() => {
      this.server(name).phase = phase;
    }, note);
  }
}
