// The upgrade's record of its own progress, kept by the run: written before and after every step,
// atomically, so that a run cut off anywhere (Ctrl-C, a lost SSH session, a crash) can be resumed
// or rolled back from what it says. The file's format and its reading: src/system/upgrade-journal.ts.
import { writeFileAtomic } from '../system/files.js';
import { JournalError, type Journal, type JournalServer, type ServerPhase } from '../system/upgrade-journal.js';

export {
  JOURNAL_VERSION,
  JournalError,
  journalOwnerAlive,
  readJournal,
  type Journal,
  type JournalServer,
  type JournalState,
  type ServerPhase,
} from '../system/upgrade-journal.js';

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
