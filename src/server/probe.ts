// Asking a node for its /_status over HTTP, as a load balancer would: used by knocker to wait for
// a node it started and to report on it.
import { formatListen, type ListenAddress } from '../config/values.js';
import type { StatusBody } from './http.js';

/** Where to reach a node listening on `listen`: a wildcard address is reached on loopback. */
export function statusUrl(listen: ListenAddress): string {
  const host = listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
  return `http://${formatListen({ ...listen, host })}/_status`;
}

export interface StatusReply {
  http: number;
  /** The parsed body; undefined when it was not the node's JSON. */
  body: StatusBody | undefined;
}

/** One GET /_status on a fresh connection; rejects when nothing answers in time. */
export async function fetchStatus(listen: ListenAddress, timeoutMs = 2_000): Promise<StatusReply> {
  // Loaded when first needed: the installer's first screen comes sooner without Node's HTTP client.
  const { default: http } = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = http.get(statusUrl(listen), { agent: false, headers: { Connection: 'close' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        // A /_status body is small; anything else is not worth keeping.
        if (text.length < 16_384) text += chunk;
      });
      res.on('end', () => {
        let body: StatusBody | undefined;
        try {
          body = JSON.parse(text) as StatusBody;
        } catch {
          body = undefined;
        }
        resolve({ http: res.statusCode ?? 0, body });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from ${statusUrl(listen)} within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** "200 ok (Knocknoc 1.0.0, schema 1)" and the like, for one line of output. */
export function describeStatus(reply: StatusReply): string {
  const body = reply.body;
  if (!body) return `${reply.http} (not a Knocknoc /_status answer)`;
  const detail =
    body.status === 'out-of-step'
      ? `out of step: this release expects schema ${body.schemaVersion}, the database has ${body.databaseSchemaVersion}`
      : body.database === 'unreachable'
        ? 'database unreachable'
        : body.status;
  return `${reply.http} ${detail} (Knocknoc ${body.version}, schema ${body.schemaVersion})`;
}
