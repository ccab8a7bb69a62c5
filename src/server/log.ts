// knocknoc-server's log: timestamped lines on stdout (the journal under systemd, the log file of a
// daemon), secrets scrubbed. Lines are gathered and written once per turn of the event loop, so a
// request line costs no system call of its own under load.
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
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (pending.length === 0) return;
    const text = pending.join('');
    pending = [];
    sink.write(text);
  };
  const add = (level: string, message: string) => {
    const stamp = new Date().toISOString();
    for (const line of scrubber.scrub(message).split('\n')) pending.push(`${stamp} ${level} ${line}\n`);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
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
