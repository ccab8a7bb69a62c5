// The fail-closed standby tests' harness: a pair on real PostgreSQL (primary root A, standby root
// B, both option-1 private clusters on loopback), a writer walking the multi-host string as libpq
// does (helpers/standby.ts), and a sampler that, through the whole run, opens a fresh session on
// each host as a web node would and records every round in which both took writes.
import fs from 'node:fs/promises';
import type pg from 'pg';
import { expect } from 'vitest';
import { connect } from '../../src/postgres/connect.js';
import { parseDatabaseUrl } from '../../src/postgres/url.js';
import { freePort } from '../../src/system/host.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { installPrimary } from './exposedb.js';
import { knocker, type RunResult } from './knocker.js';
import { destroyRoot, makeRoot } from './roots.js';
import { waitFor } from './server.js';
import { createProbeTable, probeIds, sql, startWriter, type Writer } from './standby.js';

export interface Pair {
  A: string;
  B: string;
  client: string;
  rootA: Root;
  rootB: Root;
  port: number;
  nodesUrl: string;
  ca: string;
  bundle: string;
  hosts: Array<{ host: string; port: number }>;
  destroy(): Promise<void>;
}

export const run = (args: string[], env?: Record<string, string>): Promise<RunResult> => knocker(args, { env, timeoutMs: 120_000 });
export const standby = (root: Root, ...args: string[]) => run(['standby', '--root', root.dir, ...args]);

/** A primary on `A` with a streaming standby on `B`; `client` is allowed in as the web nodes are. */
/**
 * makePair's beforeStandby for a standby host that runs a web node too: `B` allowed in, then an
 * option-3 node on B's root on the primary's single-host string (add-standby gives it the pair's).
 */
export function webNodeOnStandbyHost(B: string, serverName = 'web-b'): NonNullable<Parameters<typeof makePair>[3]>['beforeStandby'] {
  return async ({ rootA, rootB, nodesUrl }) => {
    expect((await run(['exposedb', '--root', rootA.dir, '--add', `${B}/32`])).exitCode).toBe(0);
    const installed = await knocker(
      [
        'install',
        '--root',
        rootB.dir,
        '--listen',
        `${B}:${await freePort(B)}`,
        '--server-name',
        serverName,
        '--database-option',
        '3',
        '--database-ca',
        rootA.path(PATHS.clusterCaCert),
      ],
      { env: { KNOCKNOC_DATABASE_URL: nodesUrl }, timeoutMs: 120_000 },
    );
    expect(installed.exitCode, installed.stderr).toBe(0);
  };
}

export async function makePair(
  A: string,
  B: string,
  client: string,
  options: {
    /** Runs once the primary is exposed, before the standby is added (e.g. a web node on B's root). */
    beforeStandby?: (ends: { rootA: Root; rootB: Root; nodesUrl: string; port: number }) => Promise<void>;
  } = {},
): Promise<Pair> {
  const [rootA, rootB] = await Promise.all([makeRoot(), makeRoot()]);
  await installPrimary(rootA, A);
  const init = await run(['exposedb', '--root', rootA.dir, '--init']);
  expect(init.exitCode, init.stderr).toBe(0);
  const nodesUrl = init.stdout.trim();
  const port = Number(new URL(nodesUrl).port);
  const ca = await fs.readFile(rootA.path(PATHS.clusterCaCert), 'utf8');
  expect((await run(['exposedb', '--root', rootA.dir, '--add', `${client}/32`])).exitCode).toBe(0);
  await createProbeTable(rootA);
  await options.beforeStandby?.({ rootA, rootB, nodesUrl, port });
  const add = await run(['exposedb', '--root', rootA.dir, '--add-standby', B]);
  expect(add.exitCode, add.stderr).toBe(0);
  const bundle = add.stdout.trim();
  const made = await standby(rootB, 'init', '--bundle', bundle);
  expect(made.exitCode, made.stderr).toBe(0);
  return {
    A,
    B,
    client,
    rootA,
    rootB,
    port,
    nodesUrl,
    ca,
    bundle,
    hosts: [
      { host: A, port },
      { host: B, port },
    ],
    destroy: () => Promise.all([destroyRoot(rootA), destroyRoot(rootB)]).then(() => {}),
  };
}

export async function postmasterPid(root: Root): Promise<number> {
  return Number((await fs.readFile(root.path(`${PATHS.pgData}/postmaster.pid`), 'utf8')).split('\n')[0]);
}

/** The pid of a cluster's startup process (recovery), found by its title under the postmaster. */
export async function startupPid(root: Root): Promise<number> {
  const parent = await postmasterPid(root);
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await fs.readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid !== parent) continue;
    const cmdline = await fs.readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (/startup/.test(cmdline)) return Number(entry);
  }
  throw new Error('no startup process');
}

export interface Sampler {
  /** Rounds in which both hosts gave a fresh session that takes writes. */
  twoWritable: string[];
  rounds: number;
  stop(): Promise<void>;
}

/** Asks every host, round after round, whether a new session there takes writes (in recovery or read-only: no). */
export function startSampler(pair: Pair): Sampler {
  const parsed = parseDatabaseUrl(pair.nodesUrl);
  if (!parsed.ok) throw new Error(parsed.error);
  const base = parsed.value;
  let running = true;
  const sampler: Sampler = { twoWritable: [], rounds: 0, stop: async () => {} };
  const writable = async (host: string): Promise<boolean> => {
    let client: pg.Client | undefined;
    try {
      client = await connect({ ...base, host, port: pair.port }, { sourceAddress: pair.client, ca: pair.ca, connectTimeoutMs: 1000, queryTimeoutMs: 2000 });
      client.on('error', () => {});
      const row = (await client.query<{ r: boolean; ro: string }>(`SELECT pg_is_in_recovery() AS r, current_setting('transaction_read_only') AS ro`)).rows[0]!;
      return !row.r && row.ro === 'off';
    } catch {
      return false;
    } finally {
      await client?.end().catch(() => {});
    }
  };
  const loop = (async () => {
    while (running) {
      const [a, b] = await Promise.all([writable(pair.A), writable(pair.B)]);
      sampler.rounds += 1;
      if (a && b) sampler.twoWritable.push(new Date().toISOString());
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  sampler.stop = async () => {
    running = false;
    await loop;
  };
  return sampler;
}

export function writerFor(pair: Pair, firstId: number): Writer {
  return startWriter(pair.nodesUrl, pair.hosts, pair.client, pair.ca, firstId);
}

/** Every id the writer saw acknowledged is in `root`'s table (waits for replay to bring them). */
export async function expectNoAckedLost(root: Root, writer: Writer): Promise<void> {
  const ids = await probeIds(root);
  expect(writer.acked.filter((id) => !ids.has(id))).toEqual([]);
}

export async function role(root: Root): Promise<'primary' | 'standby' | 'read-only' | 'down'> {
  try {
    const row = (await sql<{ r: boolean; ro: string }>(root, `SELECT pg_is_in_recovery() AS r, current_setting('transaction_read_only') AS ro`))[0]!;
    return row.r ? 'standby' : row.ro === 'on' ? 'read-only' : 'primary';
  } catch {
    return 'down';
  }
}

export const waitRole = (root: Root, wanted: string, timeoutMs = 60_000) =>
  waitFor(`the cluster to be ${wanted}`, async () => ((await role(root)) === wanted ? true : undefined), timeoutMs);

/** The end of every run: writes go on through the primary `on`, then no acknowledged id is missing there and never were two hosts writable. */
export async function finish(on: Root, writer: Writer, sampler: Sampler): Promise<void> {
  const before = writer.acked.length;
  await waitFor('writes through the primary', () => (writer.acked.length > before + 30 ? true : undefined), 60_000);
  await writer.stop();
  await sampler.stop();
  await expectNoAckedLost(on, writer);
  expect(sampler.rounds).toBeGreaterThan(0);
  expect(sampler.twoWritable).toEqual([]);
  console.info(
    `fail-closed run: ${writer.acked.length} writes acknowledged (none missing), ${writer.failures} refused or cut, ${sampler.rounds} sampler rounds (never two writable), longest write gap ${writer.longestGapMs} ms`,
  );
}

/** Waits until `root`'s standby streams from its primary (as standby status --json says it). */
export async function waitStreaming(root: Root, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    `${root.dir} streaming`,
    async () => {
      const s = JSON.parse((await standby(root, 'status', '--json')).stdout) as { receiver?: { status: string } };
      return s.receiver?.status === 'streaming' ? true : undefined;
    },
    timeoutMs,
  );
}

/** A writer and a sampler started, some writes acknowledged, then a switchover run on `from` (its primary), which ends as the standby. */
export async function switchoverUnderLoad(pair: Pair, from: Root, firstId: number): Promise<{ writer: Writer; sampler: Sampler }> {
  const writer = writerFor(pair, firstId);
  const sampler = startSampler(pair);
  await waitFor('writes before the switchover', () => (writer.acked.length > 30 ? true : undefined));
  const over = await standby(from, 'switchover');
  expect(over.exitCode, over.stderr).toBe(0);
  await waitRole(from, 'standby');
  return { writer, sampler };
}

export interface OldPrimaryProbe {
  /** Inserts the old primary acknowledged: a write there after the new primary took over is a split brain. */
  acked: number[];
  /** Connection attempts, and what the host answered (or why no answer), by message. */
  attempts: number;
  answers: Map<string, number>;
  /** When the first answer from PostgreSQL itself came (a session opened, an error of the server's, its certificate). */
  firstAnswerAt?: number;
  stop(): Promise<void>;
}

/**
 * Inserts through `host` ONLY (no read-write check, as a web node holding an old connection
 * string would), one session after another, recording every insert the host acknowledged and every
 * answer it gave: the check on a resumed hung primary, counting acknowledged writes rather than
 * sampling its read-only flag.
 */
export function probeOldPrimary(pair: Pair, host: string, firstId: number): OldPrimaryProbe {
  const parsed = parseDatabaseUrl(pair.nodesUrl);
  if (!parsed.ok) throw new Error(parsed.error);
  const target = { ...parsed.value, host, port: pair.port };
  let running = true;
  let next = firstId;
  const probe: OldPrimaryProbe = { acked: [], attempts: 0, answers: new Map(), stop: async () => {} };
  const note = (what: string, fromServer: boolean) => {
    probe.answers.set(what, (probe.answers.get(what) ?? 0) + 1);
    if (fromServer) probe.firstAnswerAt ??= Date.now();
  };
  const loop = (async () => {
    while (running) {
      probe.attempts += 1;
      let client: pg.Client | undefined;
      try {
        client = await connect(target, { sourceAddress: pair.client, ca: pair.ca, connectTimeoutMs: 1000, queryTimeoutMs: 3000 });
        client.on('error', () => {});
        note('session opened', true);
        while (running) {
          const id = next;
          next += 1;
          await client.query('INSERT INTO standby_probe (id) VALUES ($1)', [id]);
          probe.acked.push(id);
        }
      } catch (error) {
        const e = error as { code?: string; message?: string };
        // A SQLSTATE is PostgreSQL's own answer, and so is a certificate it presented that does not
        // match; anything else (EPIPE, ECONNREFUSED, a timeout) is not.
        const sqlstate = Boolean(e.code && /^[0-9A-Z]{5}$/.test(e.code) && !/^E[A-Z]+$/.test(e.code));
        const certificate = e.code === 'ERR_TLS_CERT_ALTNAME_INVALID';
        note(sqlstate ? `${e.code} ${e.message}` : String(e.message ?? error).slice(0, 80), sqlstate || certificate);
        await new Promise((r) => setTimeout(r, 10));
      } finally {
        await client?.end().catch(() => {});
      }
    }
  })();
  probe.stop = async () => {
    running = false;
    await loop;
  };
  return probe;
}
