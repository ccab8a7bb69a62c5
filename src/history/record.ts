// Recording a run in the cluster's history, for the one runner (src/system/runner.ts): what it
// applied, where, when and how it ended, written to the shared database of this host's
// knocknoc.conf, with any events kept earlier in the spool. A database that cannot take it (down,
// read-only, an older schema) never fails or holds up the command: the event is spooled on this
// host and the operator is told so, in one line on stderr.
import fs from 'node:fs';
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import { errorMessage } from '../errors.js';
import { connect, describeConnectError, sourceAddressFor } from '../postgres/connect.js';
import type { DatabaseUrl } from '../postgres/url.js';
import { loadServerConfig } from '../server/config.js';
import type { Output } from '../shared/output.js';
import type { Logger } from '../system/log.js';
import { plural } from '../system/units.js';
import { PATHS, type Root } from '../system/root.js';
import type { HistoryEvent, Outcome } from './event.js';
import { isMissingTable, writeEvents } from './store.js';
import { flushSpool, HISTORY_SPOOL, spoolEvents } from './spool.js';

/** The shared database as this host's web node reaches it. */
export interface NodeDatabase {
  url: DatabaseUrl;
  sourceAddress: string | undefined;
  serverName: string;
}

/** The database of this root's knocknoc.conf, or undefined when it has none that loads. */
export async function nodeDatabase(root: Root): Promise<NodeDatabase | undefined> {
  const loaded = await loadServerConfig(root.path(PATHS.conf), os.hostname()).catch(() => undefined);
  if (!loaded?.ok) return undefined;
  const { config } = loaded;
  return { url: config.databaseUrl, sourceAddress: sourceAddressFor(config.listen.host, config.databaseUrl.host), serverName: config.serverName };
}

/** Short bounds: history is an aid, and a database that does not answer must not hold up the command. */
export const HISTORY_CONNECT = { connectTimeoutMs: 3_000, statementTimeoutMs: 3_000, queryTimeoutMs: 4_000 };

/** Runs `work` on a connection to the node's database. */
export async function withNodeDatabase<T>(db: NodeDatabase, applicationName: string, work: (client: import('pg').Client) => Promise<T>): Promise<T> {
  const client = await connect(db.url, { ...HISTORY_CONNECT, sourceAddress: db.sourceAddress, applicationName });
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** An error the database server sent (a SQLSTATE), not one of reaching it. */
export function isSqlState(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

/** Why the database did not take an event, in words. */
function whyNot(error: unknown, db: NodeDatabase): string {
  if ((error as { code?: string } | undefined)?.code === '25006') return 'the database is read-only here (a standby, or a switchover under way)';
  if (isMissingTable(error)) return 'the database has no history table yet (its nodes run an older release)';
  if (isSqlState(error)) return errorMessage(error);
  return describeConnectError(error, db.url).message;
}

export interface RunHistory {
  /** Records a finished application of a plan; never throws. */
  record(action: string, startedAt: Date, outcome: Outcome, detail: string | undefined): Promise<void>;
}

/**
 * The history of one run of `command` on this root. The database is looked up when the run starts
 * (an uninstall removes knocknoc.conf) and again when an event is recorded (an install writes it).
 */
export async function openRunHistory(root: Root, command: string, io: Output, log: Logger): Promise<RunHistory> {
  const atStart = await nodeDatabase(root);
  const stateDir = root.path(PATHS.stateDir);
  const stateDirAtStart = fs.existsSync(stateDir);
  return {
    async record(action, startedAt, outcome, detail) {
      const event: HistoryEvent = {
        id: randomUUID(),
        startedAt,
        finishedAt: new Date(),
        host: os.hostname(),
        server: null,
        command,
        action,
        outcome,
        detail: detail === undefined ? null : log.scrub(detail),
      };
      const now = await nodeDatabase(root);
      const db = now ?? atStart;
      if (!db) {
        // A host that is no web node of a cluster (no knocknoc.conf before or after: a standby's host
        // alone, a first install that failed) has no cluster history to write to: said in its log only.
        log.info(`history: not recorded: this host has no ${PATHS.conf} naming a cluster's database`);
        return;
      }
      event.server = db.serverName;
      let why: string;
      try {
        const flushed = await withNodeDatabase(db, 'knocker history', async (client) => {
          await writeEvents(client, [event]);
          return flushSpool(root, (events) => writeEvents(client, events));
        });
        if (flushed.written > 0)
          io.err(`history: ${plural(flushed.written, 'earlier event')} kept on this host while the database could not take them now written to it`);
        return;
      } catch (error) {
        why = whyNot(error, db);
      }
      // A run that took this host's node away (an uninstall) leaves nothing behind to write it later.
      if (!now) io.err(`history: not recorded: ${why}, and this run removed ${PATHS.conf}, so nothing here would write it later`);
      else await keepLocally(root, event, why, { stateDir, stateDirAtStart }, io);
    },
  };
}

/** The event in the spool, and a line saying so; a host whose state folder this run removed keeps nothing. */
async function keepLocally(root: Root, event: HistoryEvent, why: string, state: { stateDir: string; stateDirAtStart: boolean }, io: Output): Promise<void> {
  const file = root.path(HISTORY_SPOOL);
  try {
    if (state.stateDirAtStart && !fs.existsSync(state.stateDir)) {
      io.err(`history: not recorded: ${why}, and this run removed ${PATHS.stateDir}, where it would be kept`);
      return;
    }
    fs.mkdirSync(state.stateDir, { recursive: true, mode: 0o755 });
    await spoolEvents(root, [event]);
    io.err(`history: ${why}; this event is kept in ${file} and written by the next knocker command that reaches the database`);
  } catch (error) {
    io.err(`history: not recorded: ${why}, and ${file} could not be written (${errorMessage(error)})`);
  }
}
