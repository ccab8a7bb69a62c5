// `knocker status`: the cluster as the shared database, every server's /_status, HAProxy and
// PostgreSQL tell it. This file opens the monitor for a root (the database from knocknoc.conf,
// HAProxy from knocker's configuration) and prints one snapshot for `--once` and `--json`; the
// live screen is src/status-app.tsx, over the same monitor.
import { readHaNodeState } from '../ha/node-state.js';
import fs from 'node:fs/promises';
import os from 'node:os';
import { errorMessage, PreflightError } from '../errors.js';
import type { Output } from '../shared/output.js';
import { haproxyPaths } from '../haproxy/service.js';
import { sourceAddressFor } from '../postgres/connect.js';
import { loadServerConfig, type ServerConfig } from '../server/config.js';
import { describeTarget } from '../postgres/url.js';
import { knockerCommand, shellWord } from '../shared/hint.js';
import { PATHS, type Root } from '../system/root.js';
import { jsonSnapshot, outcomeOf, plainSnapshot } from './format.js';
import { printableData } from '../shared/printable.js';
import { StatusMonitor, type MonitorOptions } from './monitor.js';
import type { StatusEvent } from './model.js';
import { PairSessions } from './pair-session.js';
import { prometheusText } from './prometheus.js';
import { writeFileAtomic } from '../system/files.js';

export interface StatusOptions {
  intervalMs: number;
}

/** What the monitor takes from knocknoc.conf: the database to watch, from this node's address, and this node's name. */
function fromConfig(root: Root, config: ServerConfig): Pick<MonitorOptions, 'database' | 'localName'> {
  return {
    database: {
      url: config.databaseUrl,
      root,
      pair: new PairSessions(root),
      connect: {
        // From this node's own address, as the node itself connects (pg_hba.conf allows it).
        sourceAddress: sourceAddressFor(config.listen.host, config.databaseUrl.host),
        connectTimeoutMs: 3_000,
        queryTimeoutMs: 3_000,
        statementTimeoutMs: 2_500,
        applicationName: 'knocker status',
      },
    },
    localName: config.serverName,
  };
}

/** The file's identity and version: a rewrite (atomic or in place) changes it; a stat costs next to nothing. */
async function stampOf(file: string): Promise<string | undefined> {
  const stat = await fs.stat(file).catch(() => undefined);
  return stat ? `${stat.ino}:${stat.size}:${stat.mtimeMs}` : undefined;
}

/**
 * Follows knocknoc.conf: at each refresh, the file is read again only when its stamp changed; a new
 * DatabaseURL or ServerName is handed to the monitor (a node re-pointed at the multi-host string
 * is watched there from the next refresh). A file that no longer loads keeps the last good one.
 */
function followConfig(root: Root, file: string, first: ServerConfig, stamp: string | undefined): MonitorOptions['reloadConfig'] {
  let current = { stamp, config: first };
  const same = (a: ServerConfig, b: ServerConfig) =>
    a.serverName === b.serverName && a.listenText === b.listenText && JSON.stringify(a.databaseUrl) === JSON.stringify(b.databaseUrl);
  return async () => {
    const now = await stampOf(file);
    if (now === current.stamp) return undefined;
    const loaded = await loadServerConfig(file, os.hostname(), 'the dashboard goes on with the configuration it read before');
    if (!loaded.ok) {
      current = { ...current, stamp: now };
      return {
        problem: `${file} changed and does not load (${loaded.problems[0] ?? 'unreadable'}): still watching ${describeTarget(current.config.databaseUrl)}`,
      };
    }
    const changed = !same(current.config, loaded.config);
    current = { stamp: now, config: loaded.config };
    if (!changed) return undefined;
    return { options: fromConfig(root, loaded.config), note: `${file} changed: watching ${describeTarget(loaded.config.databaseUrl)} now` };
  };
}

/** The monitor of the cluster this root's knocknoc.conf belongs to (followed while it runs). */
export async function openMonitor(root: Root, options: StatusOptions): Promise<StatusMonitor> {
  const file = root.path(PATHS.conf);
  const stamp = await stampOf(file);
  const loaded = await loadServerConfig(file, os.hostname(), `run \`${knockerCommand(root, 'install')}\` to write it`);
  if (!loaded.ok) {
    throw new PreflightError(`cannot tell which database to watch: ${loaded.problems[0] ?? `${file} does not load`}`, [
      `the shared database is the one of DatabaseURL in ${file}: run this on a web node (or point --root at one)`,
    ]);
  }
  const config = loaded.config;
  const paths = haproxyPaths(root);
  const ha = await readHaNodeState(root);
  return new StatusMonitor({
    ...fromConfig(root, config),
    haproxy: { statusSocket: paths.statusSocket, confFile: paths.conf },
    retireHint: (name) => knockerCommand(root, `server forget ${shellWord(name)}`),
    intervalMs: options.intervalMs,
    ...(ha ? { formation: async () => (await import('../ha/formation.js')).readFormation(root, ha, { events: 5 }) } : {}),
    reloadConfig: followConfig(root, file, config, stamp),
  });
}

/** How many of the cluster's latest events the dashboard starts with. */
export const EARLIER_EVENTS = 50;

/**
 * The recent part of the cluster's history as events for the dashboard's pane; when it cannot be
 * read, one event saying why (the dashboard starts all the same).
 */
export async function recentHistory(root: Root, limit = EARLIER_EVENTS): Promise<StatusEvent[]> {
  try {
    const [{ listHistory }, { historyAsEvents }] = await Promise.all([import('../history/index.js'), import('./fold.js')]);
    return historyAsEvents((await listHistory(root, { limit }, 'knocker status')).events);
  } catch (error) {
    return [{ at: Date.now(), level: 'warn', text: `history: not loaded: ${errorMessage(error)}` }];
  }
}

/** Data older than this is shown as stale: two polls missed, plus a timeout. */
export function staleAfterMs(monitor: StatusMonitor): number {
  return 2 * monitor.intervalMs + monitor.timeoutMs();
}

export type SnapshotFormat = 'text' | 'json' | 'prometheus';

/**
 * `--once`, `--json`, `--format` (and a run without a terminal): one snapshot, exit 0 healthy, 1
 * degraded, 3 database unreachable. With `output`, the snapshot replaces that file atomically (a
 * textfile collector never reads half of it) and stdout stays empty.
 */
export async function printStatus(root: Root, options: StatusOptions & { format: SnapshotFormat; output?: string }, io: Output): Promise<number> {
  const monitor = await openMonitor(root, options);
  try {
    const snapshot = await monitor.refreshFully();
    const text =
      options.format === 'json'
        ? `${JSON.stringify(jsonSnapshot(snapshot), null, 2)}\n`
        : options.format === 'prometheus'
          ? prometheusText(snapshot)
          : // Names and errors from the registry are shown on one line each: a row is never split or forged.
            `${plainSnapshot(printableData(snapshot, true), staleAfterMs(monitor)).join('\n')}\n`;
    if (options.output !== undefined) {
      await writeFileAtomic(options.output, text, { mode: 0o644, backup: false });
      io.err(`knocker status: ${outcomeOf(snapshot).verdict}; written to ${options.output}`);
    } else {
      for (const line of text.replace(/\n$/, '').split('\n')) io.out(line);
    }
    return outcomeOf(snapshot).exitCode;
  } finally {
    await monitor.stop();
  }
}
