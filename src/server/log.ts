// knocknoc-server's log: timestamped lines on stdout (the journal under systemd, the log file of a
// daemon), secrets scrubbed. Lines are gathered and written every 50 ms (or 64 KB), so under load a
// request line costs no system call of its own; `flush()` writes the rest before the process exits.
import { printable } from '../shared/printable.js';
import { Scrubber } from '../system/log.js';

export interface ServerLog {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** One line per HTTP request. */
  request(line: string): void;
  addSecret(secret: string | undefined): void;
  scrub(text: string): string;
  /** Writes what is pending now (before exiting). */
  flush(): void;
}

export interface LogSink {
  write(text: string): unknown;
}

export function serverLog(sink: LogSink = process.stdout): ServerLog {
  const scrubber = new Scrubber();
  let pending: string[] = [];
  let pendingBytes = 0;
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (pending.length === 0) return;
    const text = pending.join('');
    pending = [];
    pendingBytes = 0;
    sink.write(text);
  };
  const add = (level: string, message: string) => {
    const stamp = new Date().toISOString();
    // Request lines carry what clients sent (paths, X-Forwarded-For): shown, never obeyed by a terminal.
    for (const line of printable(scrubber.scrub(message)).split('\n')) {
      const text = `${stamp} ${level} ${line}\n`;
      pending.push(text);
      pendingBytes += text.length;
    }
    if (pendingBytes >= 65_536) flush();
    else timer ??= setTimeout(flush, 50);
  };
  return {
    info: (m) => add('INFO ', m),
    warn: (m) => add('WARN ', m),
    error: (m) => add('ERROR', m),
    request: (m) => add('HTTP ', m),
    addSecret: (s) => scrubber.add(s),
    scrub: (t) => scrubber.scrub(t),
    flush,
  };
}
