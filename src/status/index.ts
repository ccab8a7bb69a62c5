// `knocker status`: the cluster as the shared database, every server's /_status, HAProxy and
// PostgreSQL tell it. This file opens the monitor for a root (the database from knocknoc.conf,
// HAProxy from knocker's configuration) and prints one snapshot for `--once` and `--json`; the
// live screen is src/status-app.tsx, over the same monitor.
import os from 'node:os';
import { errorMessage, PreflightError } from '../errors.js';
import type { Output } from '../shared/output.js';
import { haproxyPaths } from '../haproxy/service.js';
import { sourceAddressFor } from '../postgres/connect.js';
import { loadServerConfig } from '../server/config.js';
import { knockerCommand, shellWord } from '../shared/hint.js';
import { PATHS, type Root } from '../system/root.js';
import { jsonSnapshot, outcomeOf, plainSnapshot } from './format.js';
import { printableData } from '../shared/printable.js';
import { StatusMonitor } from './monitor.js';
import type { StatusEvent } from './model.js';
import { PairSessions } from './pair-session.js';
import { prometheusText } from './prometheus.js';
import { writeFileAtomic } from '../system/files.js';

export interface StatusOptions {
  intervalMs: number;
}

/** The monitor of the cluster this root's knocknoc.conf belongs to. */
export async function openMonitor(root: Root, options: StatusOptions): Promise<StatusMonitor> {
  const file = root.path(PATHS.conf);
  const loaded = await loadServerConfig(file, os.hostname(), `run \`${knockerCommand(root, 'install')}\` to write it`);
  if (!loaded.ok) {
    throw new PreflightError(`cannot tell which database to watch: ${loaded.problems[0] ?? `${file} does not load`}`, [
      `the shared database is the one of DatabaseURL in ${file}: run this on a web node (or point --root at one)`,
    ]);
  }
  const config = loaded.config;
  const paths = haproxyPaths(root);
  return new StatusMonitor({
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
    haproxy: { statusSocket: paths.statusSocket, confFile: paths.conf },
    localName: config.serverName,
    retireHint: (name) => knockerCommand(root, `server forget ${shellWord(name)}`),
    intervalMs: options.intervalMs,
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
