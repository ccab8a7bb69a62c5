// A replicated pair for standby tests: two sandbox roots on their own loopback addresses (the
// primary installed with database option 1 and exposed), a table to write to, and a writer that
// keeps inserting through whichever host takes writes, recording every insert PostgreSQL
// acknowledged (so a test can count them afterwards).
import { adoptedAddress } from '../../src/ha/node-state.js';
import fs from 'node:fs/promises';
import type pg from 'pg';
import { withAdminSession } from '../../src/postgres/admin.js';
import { clusterOwner, findPgBinaries, readClusterSettings, type PrivateCluster } from '../../src/postgres/cluster.js';
import { connect } from '../../src/postgres/connect.js';
import { parseDatabaseUrl, type DatabaseUrl } from '../../src/postgres/url.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { waitFor } from './server.js';

/** SQL as the superuser of a root's private cluster, in `database`. */
export async function sql<T = Record<string, unknown>>(root: Root, text: string, values: unknown[] = [], database = 'knocknoc'): Promise<T[]> {
  const settings = (await readClusterSettings(root.path(PATHS.pgData), await adoptedAddress(root)))!;
  const access = { socketDir: root.path(PATHS.pgSocketDir), port: settings.port, osUser: await clusterOwner(), database };
  return withAdminSession(access, undefined, async (session) => (await session.query<T>(text, values)).rows);
}

export async function probeIds(root: Root): Promise<Set<number>> {
  return new Set((await sql<{ id: string }>(root, 'SELECT id::text FROM standby_probe')).map((r) => Number(r.id)));
}

export interface Writer {
  acked: number[];
  /** When each acknowledged insert was acknowledged (Date.now()), in the order of `acked`. */
  ackedAt: number[];
  failures: number;
  /** Longest time between two acknowledged inserts, ms. */
  longestGapMs: number;
  stop(): Promise<void>;
}

/** Inserts ids 1, 2, 3… through the first of `hosts` that takes writes (target_session_attrs=read-write, by hand). */
export function startWriter(nodesUrl: string, hosts: Array<{ host: string; port: number }>, sourceAddress: string, ca: string, firstId = 1): Writer {
  const parsed = parseDatabaseUrl(nodesUrl);
  if (!parsed.ok) throw new Error(parsed.error);
  const base = parsed.value;
  let running = true;
  let next = firstId;
  let client: pg.Client | undefined;
  let lastAck = Date.now();
  const writer: Writer = { acked: [], ackedAt: [], failures: 0, longestGapMs: 0, stop: async () => {} };
  const pick = async (): Promise<pg.Client | undefined> => {
    for (const h of hosts) {
      const target: DatabaseUrl = { ...base, host: h.host, port: h.port };
      const c = await connect(target, { sourceAddress, ca, connectTimeoutMs: 2000, queryTimeoutMs: 10_000 }).catch(() => undefined);
      if (!c) continue;
      c.on('error', () => {});
      const ro = await c.query<{ transaction_read_only: string }>('SHOW transaction_read_only').catch(() => undefined);
      if (ro?.rows[0]?.transaction_read_only === 'off') return c;
      await c.end().catch(() => {});
    }
    return undefined;
  };
  const loop = (async () => {
    while (running) {
      client ??= await pick();
      if (!client) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      const id = next;
      next += 1;
      try {
        await client.query('INSERT INTO standby_probe (id) VALUES ($1)', [id]);
        writer.acked.push(id);
        const now = Date.now();
        writer.ackedAt.push(now);
        writer.longestGapMs = Math.max(writer.longestGapMs, now - lastAck);
        lastAck = now;
      } catch {
        writer.failures += 1;
        await client.end().catch(() => {});
        client = undefined;
      }
    }
    await client?.end().catch(() => {});
  })();
  writer.stop = async () => {
    running = false;
    await loop;
  };
  return writer;
}

export async function createProbeTable(root: Root): Promise<void> {
  await sql(root, 'CREATE TABLE IF NOT EXISTS standby_probe (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())');
  await sql(root, 'ALTER TABLE standby_probe OWNER TO knocknoc');
}

export async function readJson<T>(file: string): Promise<T> {
  return JSON.parse(await fs.readFile(file, 'utf8')) as T;
}

/**
 * kill -9 of a root's postmaster, returning once it is gone (reaped: until then kill(pid, 0)
 * still answers, as PostgreSQL's own lock check sees it).
 */
export async function killPostmaster(root: Root): Promise<void> {
  const pid = Number((await fs.readFile(root.path(`${PATHS.pgData}/postmaster.pid`), 'utf8')).split('\n')[0]);
  process.kill(pid, 'SIGKILL');
  await waitFor('the primary gone', () => {
    try {
      process.kill(pid, 0);
      return undefined;
    } catch {
      return true;
    }
  });
}

/** The private cluster of a root as the test harness starts and stops it (as an operator's pg_ctl would). */
export async function clusterOf(root: Root, host: string, port: number): Promise<PrivateCluster> {
  return {
    bin: (await findPgBinaries())!,
    dataDir: root.path(PATHS.pgData),
    socketDir: root.path(PATHS.pgSocketDir),
    logFile: root.path(PATHS.pgLog),
    host,
    port,
    osUser: await clusterOwner(),
  };
}
