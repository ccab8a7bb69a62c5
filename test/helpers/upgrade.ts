// A sandbox cluster to upgrade, as an operator's would be: each web node is a sandbox root of its
// own (its knocknoc.conf, started with `knocker service start server`, so the release that runs it
// is the one whose knocker started it), the first node's root also holds knocker's HAProxy, and
// "upgrading" a node is `<newer release>/bin/knocker service restart server --root <its root>`:
// restarting it from a newer release folder. Load goes through HAProxy the whole time.
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { freePort } from '../../src/system/host.js';
import { PATHS, Root } from '../../src/system/root.js';
import { setupHaproxy, type Haproxy } from './haproxy.js';
import { knocker, REPO } from './knocker.js';
import type { ServerNode, SharedDatabase } from './server.js';
import { makeTempDir } from './temp.js';

export interface SandboxNode {
  name: string;
  host: string;
  port: number;
  root: Root;
}

export interface UpgradeCluster {
  base: string;
  /** The application's connection string of the shared database. */
  databaseUrl: string;
  nodes: SandboxNode[];
  /** The first node's root: knocknoc.conf and HAProxy, where knocker upgrade runs. */
  root: Root;
  haproxy: Haproxy;
  /** The upgrade command that restarts a node from `releaseDir`. */
  commandFor(releaseDir: string): string;
  stop(): Promise<void>;
}

/** Starts the nodes from `bin/knocker` of `releaseDir` (default: this checkout) and HAProxy in front. */
export async function startUpgradeCluster(options: {
  hosts: string[];
  haproxyHost: string;
  databaseUrl: string;
  releaseDir?: string;
}): Promise<UpgradeCluster> {
  const base = await makeTempDir('knocker-upgrade-');
  const knockerBin = path.join(options.releaseDir ?? REPO, 'bin', 'knocker');
  const nodes: SandboxNode[] = [];
  for (const [i, host] of options.hosts.entries()) {
    const name = `web-${i + 1}`;
    const root = new Root(path.join(base, name));
    const port = await freePort(host);
    await fs.mkdir(path.dirname(root.path(PATHS.conf)), { recursive: true });
    await fs.writeFile(
      root.path(PATHS.conf),
      [
        `Listen = ${host}:${port}`,
        'TrustedForwarders = 127.0.0.0/8',
        'DatabaseOption = 3',
        `DatabaseURL = ${options.databaseUrl}`,
        `ServerName = ${name}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    nodes.push({ name, host, port, root });
  }
  const stopAll = async () => {
    for (const node of nodes) await knocker(['service', 'stop', 'all', '--root', node.root.dir]).catch(() => undefined);
    await fs.rm(base, { recursive: true, force: true });
  };
  let haproxy: Haproxy;
  try {
    // One after the other: the first migrates the database, the others find it done.
    for (const node of nodes) {
      const started = await knocker(['service', 'start', 'server', '--root', node.root.dir], { bin: knockerBin });
      if (started.exitCode !== 0) throw new Error(`starting ${node.name} failed (${started.exitCode}):\n${started.stdout}\n${started.stderr}`);
    }
    haproxy = await setupHaproxy(nodes[0]!.root, options.haproxyHost, nodes as unknown as ServerNode[]);
  } catch (error) {
    // Nothing left running or on disk when the cluster cannot be made.
    await stopAll();
    throw error;
  }
  const root = nodes[0]!.root;
  return {
    base,
    databaseUrl: options.databaseUrl,
    nodes,
    root,
    haproxy,
    commandFor: (releaseDir) => `${path.join(releaseDir, 'bin', 'knocker')} service restart server --root ${base}/{name}`,
    stop: stopAll,
  };
}

let databases = 0;

/** A database of its own on the test cluster (an upgrade migrates it, so no two clusters share one): its URL. */
export async function newDatabase(db: SharedDatabase): Promise<string> {
  databases += 1;
  return db.cluster.createDatabase({ role: `upgrade_${databases}`, database: `upgrade_${databases}` });
}

export interface LoadReport {
  total: number;
  failed: Array<{ at: number; what: string }>;
  /** The slowest request, in ms. */
  longestMs: number;
  /** Which version answered, request by request counts. */
  versions: Map<string, number>;
}

/**
 * Steady load through HAProxy: `rate` requests a second of GET /_status from new clients (a fresh
 * connection each, no cookie), until stopped. A request fails when it is not answered 200.
 */
export function steadyLoad(url: string, rate = 50): { stop(): Promise<LoadReport> } {
  const report: LoadReport = { total: 0, failed: [], longestMs: 0, versions: new Map() };
  const inFlight = new Set<Promise<void>>();
  const one = () => {
    const started = performance.now();
    const done = new Promise<void>((resolve) => {
      const req = http.get(`${url}/_status`, { agent: false, timeout: 30_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          const ms = performance.now() - started;
          report.longestMs = Math.max(report.longestMs, ms);
          report.total += 1;
          if (res.statusCode !== 200) report.failed.push({ at: Date.now(), what: `HTTP ${res.statusCode}: ${body.slice(0, 200)}` });
          else {
            const version = (JSON.parse(body) as { version: string }).version;
            report.versions.set(version, (report.versions.get(version) ?? 0) + 1);
          }
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
      req.on('error', (error) => {
        report.total += 1;
        report.longestMs = Math.max(report.longestMs, performance.now() - started);
        report.failed.push({ at: Date.now(), what: error.message });
        resolve();
      });
    });
    inFlight.add(done);
    void done.then(() => inFlight.delete(done));
  };
  const timer = setInterval(one, 1000 / rate);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all([...inFlight]);
      return report;
    },
  };
}
