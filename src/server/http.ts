// The node's HTTP face: `/_status` for load balancers (CONTRACTS.md), `/` a small page naming the
// node that served it and the servers sharing its database, and a log line for every request with
// the client's address (X-Forwarded-For only through TrustedForwarders).
import type http from 'node:http';
import { clientAddress, type TrustedForwarders } from './client-address.js';
import type { DatabaseHealth } from './database.js';
import type { ServerLog } from './log.js';
import type { RegisteredServer } from './registry.js';

export interface NodeFacts {
  name: string;
  listen: string;
  version: string;
  /** The schema version this release expects. */
  schemaVersion: number;
  startedAt: number;
}

export interface HandlerContext {
  node: NodeFacts;
  trusted: TrustedForwarders;
  log: ServerLog;
  health(): Promise<DatabaseHealth>;
  servers(): Promise<RegisteredServer[]>;
  /** True once the node is shutting down: responses then close their connection. */
  stopping(): boolean;
  /** Health checks counted instead of logged one by one (none: every request is logged). */
  healthChecks?: HealthCheckTally;
}

/** Probers remembered for "first check from a client"; past this, every client counts as known. */
const MAX_PROBERS = 1_000;

/**
 * Load balancers check /_status once a second or more each, which would make most of the request
 * log. A check is logged only when it tells something: the first from a client, or an answer that
 * differs from that client's last. The rest are counted, and the count logged every few minutes
 * (and when the node stops).
 */
export class HealthCheckTally {
  private lastAnswer = new Map<string, number>();
  private count = 0;
  private byAnswer = new Map<number, number>();
  private clients = new Set<string>();
  private since = Date.now();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly log: ServerLog,
    everyMs = 300_000,
  ) {
    this.timer = setInterval(() => this.flush(), everyMs);
    this.timer.unref();
  }

  /** Counts a finished check; true when it is to be logged as a request of its own. */
  record(client: string, answer: number): boolean {
    const last = this.lastAnswer.get(client);
    if (last === answer) {
      this.count += 1;
      this.byAnswer.set(answer, (this.byAnswer.get(answer) ?? 0) + 1);
      if (this.clients.size < MAX_PROBERS) this.clients.add(client);
      return false;
    }
    if (last !== undefined || this.lastAnswer.size < MAX_PROBERS) this.lastAnswer.set(client, answer);
    return true;
  }

  /** Logs the count since the last one, if any. */
  flush(): void {
    if (this.count > 0) {
      const seconds = Math.round((Date.now() - this.since) / 1000);
      const answers = [...this.byAnswer]
        .sort((a, b) => a[0] - b[0])
        .map(([code, n]) => `${n} × ${code}`)
        .join(', ');
      const clients = [...this.clients].slice(0, 5).join(', ') + (this.clients.size > 5 ? `, … (${this.clients.size} clients)` : '');
      this.log.info(
        `health checks: ${this.count} more in the last ${seconds} s (${answers}) from ${clients}; only the first from a client and changes of answer are logged`,
      );
    }
    this.count = 0;
    this.byAnswer.clear();
    this.clients.clear();
    this.since = Date.now();
  }

  stop(): void {
    clearInterval(this.timer);
    this.flush();
  }
}

/** The body of GET /_status, field for field as in CONTRACTS.md. */
export interface StatusBody {
  status: 'ok' | 'out-of-step' | 'error';
  server: string;
  version: string;
  schemaVersion: number;
  databaseSchemaVersion: number | null;
  versionMatch: boolean;
  database: 'ok' | 'unreachable';
  /**
   * The host of DatabaseURL's list the node uses ("host:port" as written there); null while the
   * database is unreachable. Absent from nodes of releases before it (read it as unknown).
   */
  databaseHost: string | null;
  uptimeSeconds: number;
}

export function statusBody(node: NodeFacts, health: DatabaseHealth, now: number): StatusBody {
  const databaseSchemaVersion = health.reachable ? (health.schemaVersion ?? null) : null;
  const versionMatch = databaseSchemaVersion === node.schemaVersion;
  return {
    status: !health.reachable ? 'error' : versionMatch ? 'ok' : 'out-of-step',
    server: node.name,
    version: node.version,
    schemaVersion: node.schemaVersion,
    databaseSchemaVersion,
    versionMatch,
    database: health.reachable ? 'ok' : 'unreachable',
    databaseHost: health.reachable ? (health.host ?? null) : null,
    uptimeSeconds: Math.floor((now - node.startedAt) / 1000),
  };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function homePage(node: NodeFacts, client: string, servers: RegisteredServer[] | undefined, problem: string | undefined): string {
  const rows = (servers ?? []).map((s) => {
    const state = s.state === 'stopped' ? 'stopped' : s.online ? 'online' : 'offline';
    const inStep = s.schemaVersion === node.schemaVersion ? '' : ` (expects schema ${s.schemaVersion})`;
    return `<tr><td>${escapeHtml(s.name)}${s.name === node.name ? ' (this node)' : ''}</td><td>${escapeHtml(s.listen)}</td><td>${escapeHtml(s.version)}${inStep}</td><td>${state}</td><td>${s.lastSeen.toISOString()}</td></tr>`;
  });
  return [
    '<!doctype html>',
    `<html lang="en"><head><meta charset="utf-8"><title>Knocknoc: ${escapeHtml(node.name)}</title></head><body>`,
    `<h1>Knocknoc web node ${escapeHtml(node.name)}</h1>`,
    `<p>Served by <strong id="server">${escapeHtml(node.name)}</strong> (${escapeHtml(node.listen)}), Knocknoc ${escapeHtml(node.version)}, schema ${node.schemaVersion}.</p>`,
    `<p>Your address: <span id="client">${escapeHtml(client)}</span></p>`,
    '<h2>Servers sharing this database</h2>',
    problem
      ? `<p>The database is unreachable: ${escapeHtml(problem)}</p>`
      : `<table><thead><tr><th>Server</th><th>Listen</th><th>Version</th><th>State</th><th>Last seen</th></tr></thead><tbody>${rows.join('')}</tbody></table>`,
    '</body></html>',
    '',
  ].join('\n');
}

function send(
  res: http.ServerResponse,
  ctx: HandlerContext,
  code: number,
  type: string,
  body: string,
  head: boolean,
  extra: Record<string, string> = {},
): void {
  const headers: Record<string, string | number> = {
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    'X-Knocknoc-Server': ctx.node.name,
    ...extra,
  };
  if (ctx.stopping()) headers.Connection = 'close';
  res.writeHead(code, headers);
  res.end(head ? undefined : body);
}

async function route(req: http.IncomingMessage, res: http.ServerResponse, ctx: HandlerContext, client: string): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const head = req.method === 'HEAD';
  const readOnly = req.method === 'GET' || head;
  if (path === '/_status') {
    if (!readOnly) return send(res, ctx, 405, 'text/plain; charset=utf-8', 'use GET or HEAD\n', false, { Allow: 'GET, HEAD' });
    const body = statusBody(ctx.node, await ctx.health(), Date.now());
    return send(res, ctx, body.status === 'ok' ? 200 : 503, 'application/json', JSON.stringify(body), head);
  }
  if (path === '/') {
    if (!readOnly) return send(res, ctx, 405, 'text/plain; charset=utf-8', 'use GET or HEAD\n', false, { Allow: 'GET, HEAD' });
    let servers: RegisteredServer[] | undefined;
    let problem: string | undefined;
    try {
      servers = await ctx.servers();
    } catch (error) {
      problem = ctx.log.scrub((error as Error).message ?? String(error));
    }
    return send(res, ctx, problem ? 503 : 200, 'text/html; charset=utf-8', homePage(ctx.node, client, servers, problem), head);
  }
  return send(res, ctx, 404, 'text/plain; charset=utf-8', 'not found\n', head);
}

/** The request listener: routes, and logs each request with its client address when it ends. */
export function requestHandler(ctx: HandlerContext): http.RequestListener {
  return (req, res) => {
    const started = process.hrtime.bigint();
    const peer = req.socket.remoteAddress;
    const client = clientAddress(peer, req.headers['x-forwarded-for'], ctx.trusted);
    const healthCheck = (req.url ?? '/').split('?')[0] === '/_status' && (req.method === 'GET' || req.method === 'HEAD');
    res.on('close', () => {
      if (healthCheck && ctx.healthChecks && res.writableFinished && !ctx.healthChecks.record(client, res.statusCode)) return;
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const target = JSON.stringify(`${req.method} ${(req.url ?? '').slice(0, 200)} HTTP/${req.httpVersion}`);
      const via = peer && client !== peer && client !== peer.replace(/^::ffff:/, '') ? ` via ${peer}` : '';
      const outcome = res.writableFinished ? String(res.statusCode) : `${res.statusCode} (connection closed before the response was sent)`;
      ctx.log.request(`${client}${via} ${target} ${outcome} ${ms.toFixed(1)} ms`);
    });
    route(req, res, ctx, client).catch((error: unknown) => {
      ctx.log.error(`${req.method} ${req.url}: ${ctx.log.scrub((error as Error).stack ?? String(error))}`);
      if (!res.headersSent) send(res, ctx, 500, 'text/plain; charset=utf-8', 'internal error\n', false);
      else res.destroy();
    });
  };
}
