// HAProxy in a sandbox root, driven through bin/knocker as an operator would, and requests through
// it as a browser would make them (one cookie jar per "client"). The root's pid files let
// destroyRoot stop HAProxy's master, whose workers then exit with it.
import { expect } from 'vitest';
import { freePort } from '../../src/system/host.js';
import type { Root } from '../../src/system/root.js';
import { knocker, type RunResult } from './knocker.js';
import { request, waitFor, type ServerNode } from './server.js';

export interface StatusRow {
  name: string;
  address: string;
  role: 'active' | 'backup';
  status: string;
  statusText: string;
  check: { status: string; code: number | null; detail: string };
  sessions: number;
  totalSessions: number;
}

export function spec(node: ServerNode): string {
  return `${node.name}=${node.host}:${node.port}`;
}

export class Haproxy {
  constructor(
    readonly root: Root,
    /** http://HOST:PORT of the frontend. */
    readonly url: string,
  ) {}

  run(...args: string[]): Promise<RunResult> {
    return knocker(['haproxy', ...args, '--root', this.root.dir]);
  }

  async status(): Promise<StatusRow[]> {
    const result = await this.run('status', '--json');
    if (![0, 1].includes(result.exitCode)) throw new Error(`knocker haproxy status exited ${result.exitCode}: ${result.stderr}`);
    return (JSON.parse(result.stdout) as { servers: StatusRow[] }).servers;
  }

  async statusOf(name: string): Promise<StatusRow> {
    const row = (await this.status()).find((r) => r.name === name);
    if (!row) throw new Error(`no node ${name} in knocker haproxy status`);
    return row;
  }

  /** Waits until HAProxy shows the node in this state (UP, DOWN, DRAIN, MAINT). */
  waitFor(name: string, status: string, timeoutMs = 30_000): Promise<StatusRow> {
    return waitFor(
      `${name} to be ${status} in HAProxy`,
      async () => {
        const row = await this.statusOf(name);
        return row.statusText === status ? row : undefined;
      },
      timeoutMs,
    );
  }

  /** One GET through HAProxy: the status, the node that answered, and a cookie HAProxy set. */
  async get(options: { cookie?: string; path?: string } = {}): Promise<{ status: number; node: string | undefined; setCookie: string | undefined }> {
    const reply = await request(`${this.url}${options.path ?? '/'}`, { headers: options.cookie ? { Cookie: options.cookie } : {} });
    const setCookie = reply.headers['set-cookie']?.[0]?.split(';')[0];
    return { status: reply.status, node: reply.headers['x-knocknoc-server'] as string | undefined, setCookie };
  }
}

/** `knocker haproxy setup` on a free port of `host`; resolves once every active node is UP. */
export async function setupHaproxy(root: Root, host: string, nodes: ServerNode[], options: { backup?: ServerNode[]; args?: string[] } = {}): Promise<Haproxy> {
  const bind = `${host}:${await freePort(host)}`;
  const result = await knocker([
    'haproxy',
    'setup',
    '--root',
    root.dir,
    '--bind',
    bind,
    ...nodes.map(spec),
    ...(options.backup ?? []).flatMap((n) => ['--backup', spec(n)]),
    ...(options.args ?? []),
  ]);
  expect(result.exitCode, result.stderr).toBe(0);
  // Progress goes to stderr; a warning there would be a node set up wrong.
  expect(result.stderr).not.toContain('warning:');
  const haproxy = new Haproxy(root, `http://${bind}`);
  for (const node of nodes) await haproxy.waitFor(node.name, 'UP');
  return haproxy;
}

/** The nodes that answered `count` requests from new clients (no cookie). */
export async function nodesSeenByNewClients(haproxy: Haproxy, count: number): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < count; i += 1) {
    const reply = await haproxy.get();
    expect(reply.status).toBe(200);
    seen.push(reply.node!);
  }
  return seen;
}
