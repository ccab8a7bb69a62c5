// The run log: timestamped lines in a 0600 file, with every known secret scrubbed before it is
// written. Secrets are registered as they become known (a generated password, a connection string).
import fs from 'node:fs';
import path from 'node:path';
import { redactUrl } from '../postgres/url.js';
import { printable } from '../shared/printable.js';

const MASK = '****';

/** Hides the password of any postgres:// URL in a text, read as the URL parser that connects reads it. */
export function redactUrls(text: string): string {
  return text.replace(/\bpostgres(?:ql)?:\/\/\S*/gi, (url) => redactUrl(url));
}

export class Scrubber {
  private readonly secrets = new Set<string>();

  add(secret: string | undefined): void {
    // Very short strings would mask ordinary words; real secrets are long.
    if (secret && secret.length >= 6) {
      this.secrets.add(secret);
      this.secrets.add(encodeURIComponent(secret));
    }
  }

  scrub(text: string): string {
    let out = redactUrls(text);
    for (const secret of this.secrets) out = out.split(secret).join(MASK);
    return out;
  }
}

export interface Logger {
  readonly file: string | undefined;
  /** Why the log could not be written, once it could not (a full disk): the run goes on without it. */
  readonly failure: string | undefined;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  addSecret(secret: string | undefined): void;
  scrub(text: string): string;
}

/** A log knocker writes is kept under this size: past it, the file becomes FILE.1 (one kept) and a new one begins. */
export const LOG_MAX_BYTES = 10 * 1024 * 1024;

/** Moves a log past LOG_MAX_BYTES aside as FILE.1 (replacing the one before). */
export function rotateIfLarge(file: string, maxBytes = LOG_MAX_BYTES): boolean {
  const size = fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  if (size <= maxBytes) return false;
  fs.renameSync(file, `${file}.1`);
  return true;
}

/**
 * A daemon's stdout when it is a log file (a daemon under a root, or without systemd): kept under
 * `maxBytes` by copying it to FILE.1 and truncating it in place, since the file is held open by
 * this process (and appended to, so writing goes on at its new end). Under systemd stdout is the
 * journal, which bounds itself.
 */
export function boundedStdout(maxBytes = LOG_MAX_BYTES, stream: NodeJS.WriteStream = process.stdout): { write(text: string): unknown } {
  let file: string | undefined;
  try {
    const fd = (stream as unknown as { fd?: number }).fd ?? 1;
    if (fs.fstatSync(fd).isFile()) file = fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    file = undefined;
  }
  let sinceCheck = 0;
  return {
    write(text: string) {
      const result = stream.write(text);
      if (file === undefined) return result;
      sinceCheck += text.length;
      // A stat per 256 kB written, not per line.
      if (sinceCheck < 256 * 1024) return result;
      sinceCheck = 0;
      try {
        const fd = (stream as unknown as { fd?: number }).fd ?? 1;
        if (fs.fstatSync(fd).size > maxBytes) {
          fs.copyFileSync(file, `${file}.1`);
          fs.ftruncateSync(fd, 0);
        }
      } catch {
        // A log that cannot be rotated (no space for the copy) is left as it is: serving goes on.
      }
      return result;
    },
  };
}

/** A logger appending to `file` (created 0600 with its folder). */
export function fileLogger(file: string): Logger {
  const scrubber = new Scrubber();
  let fd: number | undefined;
  let failure: string | undefined;
  const write = (level: string, message: string) => {
    // The log is an aid: a log that cannot be written (no space left) never fails the run itself.
    try {
      if (fd === undefined) {
        fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
        rotateIfLarge(file);
        fd = fs.openSync(file, 'a', 0o600);
        fs.fchmodSync(fd, 0o600);
      }
      const lines = printable(scrubber.scrub(message)).split('\n');
      const stamp = new Date().toISOString();
      // The lines after a message's first (a command's output) are marked as its continuation: no
      // text a message carries (a name from the database) can pass for an entry of its own.
      fs.writeSync(fd, lines.map((l, i) => `${stamp} ${level} ${i === 0 ? '' : '| '}${l}\n`).join(''));
    } catch (error) {
      failure ??= (error as NodeJS.ErrnoException).code ?? String(error);
    }
  };
  return {
    file,
    get failure() {
      return failure;
    },
    info: (m) => write('INFO ', m),
    warn: (m) => write('WARN ', m),
    error: (m) => write('ERROR', m),
    addSecret: (s) => scrubber.add(s),
    scrub: (t) => scrubber.scrub(t),
  };
}

/** A logger that keeps nothing (dry runs), but still scrubs what callers ask it to. */
export function nullLogger(): Logger {
  const scrubber = new Scrubber();
  return {
    file: undefined,
    failure: undefined,
    info: () => {},
    warn: () => {},
    error: () => {},
    addSecret: (s) => scrubber.add(s),
    scrub: (t) => scrubber.scrub(t),
  };
}
