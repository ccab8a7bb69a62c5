// Real knocknoc-server processes for tests: a knocknoc.conf in a temporary folder, bin/knocknoc-server
// (or another release's) started as a separate process on a loopback "host", and plain HTTP
// requests to it. Every process started here is killed by `stopServers()` (afterEach).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { connect } from '../../src/postgres/connect.js';
import { parseDatabaseUrl } from '../../src/postgres/url.js';
import type { StatusBody } from '../../src/server/http.js';
import { freePort } from '../../src/system/host.js';
import { waitFor as productWaitFor } from '../../src/system/wait.js';
import { startTestCluster, type TestCluster } from './pg.js';
import { cleanEnv, REPO } from './knocker.js';
import { makeTempDir } from './temp.js';

export const SERVER_BIN = path.join(REPO, 'bin', 'knocknoc-server');

export interface HttpReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request on a fresh connection, optionally from a chosen local address. */
export function request(
  url: string,
  options: { method?: string; headers?: Record<string, string>; localAddress?: string; timeoutMs?: number } = {},
): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers, localAddress: options.localAddress, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.setTimeout(options.timeoutMs ?? 10_000, () => req.destroy(new Error(`no answer from ${url} in time`)));
    req.on('error', reject);
    req.end();
  });
}

/** Polls `probe` until it returns something other than undefined; fails with `what` after the timeout (the product's one wait). */
export function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  return productWaitFor(what, () => probe(), { timeoutMs });
}

export interface ServerNode {
  name: string;
  host: string;
  port: number;
  confFile: string | undefined;
  child: ChildProcess;
  /** What the process wrote so far (stdout: its log; stderr: start-up errors). */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code when the process ends. */
  exited: Promise<number | null>;
  url(pathname?: string): string;
  status(options?: { localAddress?: string }): Promise<{ http: number; body: StatusBody }>;
  /** Waits until /_status answers with this HTTP status. */
  waitForStatus(code: number, timeoutMs?: number): Promise<StatusBody>;
}

const launched = new Set<ChildProcess>();
const folders: string[] = [];

/** Writes a knocknoc.conf (mode 0600) in a new temporary folder; returns its path. */
export async function writeServerConf(lines: string[]): Promise<string> {
  const dir = await makeTempDir('knocknoc-server-');
  folders.push(dir);
  const file = path.join(dir, 'knocknoc.conf');
  await fs.writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600 });
  return file;
}

export interface LaunchOptions {
  /** Passed as --config (none: the server finds its configuration itself). */
  confFile?: string;
  /** bin/knocknoc-server of another release (default: this checkout's). */
  bin?: string;
  args?: string[];
  env?: Record<string, string | undefined>;
  name?: string;
  host?: string;
  port?: number;
}

/** Starts the process and returns at once. */
export function launchServer(options: LaunchOptions): ServerNode {
  const config = options.confFile === undefined ? [] : ['--config', options.confFile];
  const child = spawn(process.execPath, [options.bin ?? SERVER_BIN, ...config, ...(options.args ?? [])], {
    env: cleanEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  launched.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  // 'close', not 'exit': by then everything the process wrote has been read.
  const exited = new Promise<number | null>((resolve) => {
    child.on('close', (code) => {
      launched.delete(child);
      resolve(code);
    });
  });
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 0;
  const url = (pathname = '/_status') => `http://${host}:${port}${pathname}`;
  const node: ServerNode = {
    name: options.name ?? '',
    host,
    port,
    confFile: options.confFile,
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    url,
    async status(opts = {}) {
      const reply = await request(url('/_status'), { localAddress: opts.localAddress });
      return { http: reply.status, body: JSON.parse(reply.body) as StatusBody };
    },
    waitForStatus(code, timeoutMs) {
      return waitFor(
        `${node.name} /_status ${code}`,
        async () => {
          const { http: status, body } = await node.status();
          return status === code ? body : undefined;
        },
        timeoutMs,
      );
    },
  };
  return node;
}

export interface NodeOptions {
  host: string;
  databaseUrl: string;
  name: string;
  trustedForwarders?: string;
  /** More knocknoc.conf lines. */
  extra?: string[];
  bin?: string;
}

/** Writes a conf for a node on `host` (a free port there) and starts it; resolves once it listens. */
export async function startServer(options: NodeOptions): Promise<ServerNode> {
  const port = await freePort(options.host);
  const confFile = await writeServerConf([
    `Listen = ${options.host}:${port}`,
    `DatabaseURL = ${options.databaseUrl}`,
    `ServerName = ${options.name}`,
    ...(options.trustedForwarders ? [`TrustedForwarders = ${options.trustedForwarders}`] : []),
    ...(options.extra ?? []),
  ]);
  const node = launchServer({ confFile, bin: options.bin, name: options.name, host: options.host, port });
  await untilListening(node);
  return node;
}

/** Resolves once the node logs that it listens; throws with its output if it exits first. */
export async function untilListening(node: ServerNode, timeoutMs = 30_000): Promise<void> {
  let exited = false;
  void node.exited.then(() => (exited = true));
  await waitFor(
    `${node.name} to listen`,
    () => {
      if (exited) throw new Error(`${node.name} exited:\n${node.stdout()}\n${node.stderr()}`);
      return node.stdout().includes(' listening on ') ? true : undefined;
    },
    timeoutMs,
  ).catch((error: Error) => {
    throw new Error(`${error.message}\n--- stdout\n${node.stdout()}\n--- stderr\n${node.stderr()}`);
  });
}

/** Kills every process started here and removes their folders (afterEach). */
export async function stopServers(): Promise<void> {
  const waits = [...launched].map((child) => {
    const done = new Promise<void>((resolve) => child.once('close', () => resolve()));
    child.kill('SIGKILL');
    return done;
  });
  await Promise.all(waits);
  await Promise.all(folders.splice(0).map((dir) => fs.rm(dir, { recursive: true, force: true })));
}

/** Lets these loopback "hosts" log in to the cluster with a password (pg_hba.conf), then reloads it. */
export async function allowHosts(cluster: TestCluster, hosts: string[]): Promise<void> {
  const lines = hosts.map((h) => `host    all       all   ${h}/32  scram-sha-256`);
  await fs.appendFile(path.join(cluster.dataDir, 'pg_hba.conf'), `${lines.join('\n')}\n`);
  await cluster.admin('SELECT pg_reload_conf()');
}

/** A client of the application's database connecting from a loopback "host" (the caller ends it). */
export async function connectFrom(host: string, databaseUrl: string): Promise<pg.Client> {
  const parsed = parseDatabaseUrl(databaseUrl);
  if (!parsed.ok) throw new Error(parsed.error);
  return connect(parsed.value, { sourceAddress: host });
}

export interface SharedDatabase {
  cluster: TestCluster;
  /** The application's connection string (role and database `knocknoc`). */
  url: string;
}

/**
 * For a test file: a cluster on `host` with database `knocknoc`, letting the nodes' loopback
 * `hosts` log in; nodes are killed after each test and the cluster removed after the file.
 */
export function sharedDatabase(options: { host?: string; allow?: string[] } = {}): SharedDatabase {
  const shared = {} as SharedDatabase;
  beforeAll(async () => {
    shared.cluster = await startTestCluster({ host: options.host ?? '127.0.0.5' });
    if (options.allow) await allowHosts(shared.cluster, options.allow);
    shared.url = await shared.cluster.createDatabase({ role: 'knocknoc', database: 'knocknoc' });
  });
  afterEach(stopServers);
  afterAll(async () => {
    await shared.cluster?.destroy();
  });
  return shared;
}
