// Asking a node for its /_status over HTTP, as a load balancer would: used by knocker to wait for
// a node it started and to report on it.
import { formatListen, type ListenAddress } from '../config/values.js';
import type { StatusBody } from './http.js';
import { MAX_STATUS_BODY_BYTES, parseStatusBody } from './status-body.js';

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
      const chunks: Buffer[] = [];
      let length = 0;
      let done = false;
      const finish = (body: StatusBody | undefined) => {
        if (done) return;
        done = true;
        resolve({ http: res.statusCode ?? 0, body });
      };
      res.on('data', (chunk: Buffer) => {
        length += chunk.length;
        // A /_status body is small: a bigger one is not a Knocknoc answer, and is not read to its end.
        if (length > MAX_STATUS_BODY_BYTES) {
          finish(undefined);
          res.destroy();
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => finish(parseStatusBody(Buffer.concat(chunks).toString('utf8'))));
      res.on('error', (error) => (done ? undefined : reject(error)));
      res.on('close', () => finish(undefined));
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
