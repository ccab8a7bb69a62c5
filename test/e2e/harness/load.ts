// Steady GETs from a client host, as browsers without a cookie make them: curl inside the client
// fetching one URL after another at a fixed rate (each a new request on its kept-alive connection),
// one line per request with the HTTP code and the node that answered (X-Knocknoc-Server).
import type { Host } from './host.js';

export interface Reply {
  /** "200", or "000" when there was no HTTP answer at all. */
  code: string;
  node: string;
  /** When the line arrived here (ms since the epoch). */
  at: number;
}

export class Load {
  readonly replies: Reply[] = [];
  readonly errors: string[] = [];
  private readonly process: ReturnType<Host['start']>;
  private readonly ended: Promise<void>;

  constructor(client: Host, url: string, options: { rate: number; cacert?: string }) {
    this.process = client.start([
      'curl',
      '--silent',
      '--show-error',
      '--rate',
      `${options.rate}/s`,
      '--max-time',
      '15',
      ...(options.cacert ? ['--cacert', options.cacert] : []),
      // The bodies go to stdout (read and dropped); the line per request to stderr, with curl's errors.
      '--write-out',
      '%{stderr}%{http_code} %header{x-knocknoc-server}\\n',
      `${url}?n=[1-10000000]`,
    ]);
    const { child } = this.process;
    child.stdout!.resume();
    let partial = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        const match = /^(\d{3}) ?(\S*)$/.exec(line);
        if (match) this.replies.push({ code: match[1]!, node: match[2]!, at: Date.now() });
        else if (line.trim() !== '') this.errors.push(line);
      }
    });
    this.ended = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  get failed(): Reply[] {
    return this.replies.filter((r) => r.code !== '200');
  }

  /** The nodes that answered since `since` (ms since the epoch). */
  nodesSince(since: number): Set<string> {
    return new Set(this.replies.filter((r) => r.at >= since && r.code === '200').map((r) => r.node));
  }

  /** Resolves once `count` more requests have been answered. */
  async more(count: number, timeoutMs = 60_000): Promise<void> {
    const target = this.replies.length + count;
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length < target) {
      if (Date.now() > deadline)
        throw new Error(`the load made ${this.replies.length} of ${target} requests in time (curl said: ${this.errors.slice(-3).join(' | ')})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<{ total: number; failed: Reply[]; errors: string[]; byNode: Record<string, number> }> {
    this.process.stop();
    await this.ended;
    const byNode: Record<string, number> = {};
    for (const r of this.replies) byNode[r.node || r.code] = (byNode[r.node || r.code] ?? 0) + 1;
    return { total: this.replies.length, failed: this.failed, errors: this.errors, byNode };
  }
}
