// A real pg_auto_failover formation on loopback, in temp sandbox roots, for the commands that read
// or move an automatic pair (issue 24). No mocks:
// - root A: a knocker primary (install, exposedb --init) whose only job is the cluster CA and the
//   monitor's bundle (exposedb --add-monitor); root M: `knocker ha monitor --bundle` (milestone 1);
// - two data nodes, each a sandbox root of its own with its own loopback address: `pg_autoctl create
//   postgres` (--hostname/--listen given, --skip-pg-hba, verify-full TLS with a certificate from the
//   cluster's CA, the monitor URI without password: the passfile has it), each supervised by its own
//   `pg_autoctl run` daemon (pid file, as a sandbox root's keeper is), pg_hba.conf written here (no
//   trust: peer locally, hostssl + SCRAM for the replicator and the test's writer role), the
//   replicator's password as a SCRAM verifier, and /var/lib/knocknoc/ha/node.json written with
//   writeHaNodeState, so knocker's commands on that root see an automatic pair.
// Node 1 is created first (empty PGDATA: pg_autoctl initdb's it, "single"); node 2 is cloned from it
// by pg_autoctl (pg_basebackup), so pg_hba.conf, postgresql.conf (TLS paths relative to PGDATA, a
// small tuning after pg_autoctl's include) are the same on both, as pg_rewind needs (research #8).
// `destroy()` stops every keeper (SIGTERM, then the group), the monitor, and removes the roots.
import fs from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';
import { keeperCtl } from '../../src/ha/keeper.js';
import { monitorFiles, runningMonitor, stopMonitor, TUNING } from '../../src/ha/monitor.js';
import { writeHaNodeState, type HaNodeState } from '../../src/ha/node-state.js';
import { executeQuoted, withAdminSession } from '../../src/postgres/admin.js';
import { issueServerCertificate } from '../../src/postgres/certificates.js';
import { findPgBinaries } from '../../src/postgres/cluster.js';
import { scramVerifier } from '../../src/postgres/scram.js';
import { freePort } from '../../src/system/host.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { runningDaemon, startDaemon, stopDaemon } from '../../src/system/service.js';
import { lookupUser } from '../../src/system/users.js';
import { installPrimary } from './exposedb.js';
import { run, startSampler, type Pair, type Sampler } from './failclosed.js';
import { destroyRoot, makeRoot } from './roots.js';
import { waitFor } from './server.js';
import { startWriter, type Writer } from './standby.js';

export interface DataNode {
  name: string;
  address: string;
  root: Root;
  state: HaNodeState;
  /** The keeper's folder (PGDATA's parent, the database user's). */
  dir: string;
  pgdata: string;
  pidFile: string;
  daemonLog: string;
}

export interface Formation {
  monitor: { address: string; port: number; root: Root; uri: string };
  primaryRoot: Root;
  nodes: [DataNode, DataNode];
  port: number;
  ca: string;
  /** The writer role's multi-host-free URL (host/port set per host by the writer). */
  writerUrl: string;
  client: string;
  /** pg_autoctl show state --json, parsed, as the monitor sees the formation. */
  state(): Promise<Array<{ nodename: string; current_group_state: string; assigned_group_state: string }>>;
  /** Waits until one node is `primary` and the other `secondary`, both settled; returns the primary. */
  settled(timeoutMs?: number): Promise<DataNode>;
  destroy(): Promise<void>;
}

const WRITER = 'writer';
const WRITER_PASSWORD = 'writer-password-of-the-test-only';

/** The keeper of a node: `pg_autoctl run` as a daemon of its root. */
export async function startKeeper(node: DataNode): Promise<void> {
  const user = (await lookupUser('postgres'))!;
  const env = Object.fromEntries(
    Object.entries({
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      LANG: 'C.UTF-8',
      HOME: node.dir,
      XDG_CONFIG_HOME: path.join(node.state.xdg, 'config'),
      XDG_DATA_HOME: path.join(node.state.xdg, 'share'),
      XDG_RUNTIME_DIR: path.join(node.state.xdg, 'run'),
      PGPASSFILE: node.state.passfile,
      PG_REGRESS_SOCK_DIR: node.root.path(PATHS.pgSocketDir),
    }),
  );
  await startDaemon({
    program: 'pg_autoctl',
    args: ['run', '--pgdata', node.pgdata],
    pidFile: node.pidFile,
    logFile: node.daemonLog,
    cwd: node.dir,
    env,
    user,
    mark: node.pgdata,
  });
}

export async function stopKeeper(node: DataNode): Promise<void> {
  await stopDaemon(node.pidFile, 30_000, undefined, 'SIGTERM', { mark: node.pgdata, group: true });
}

export const keeperRunning = (node: DataNode) => runningDaemon(node.pidFile, node.pgdata);

async function owned(dir: string, uid: number, gid: number, mode = 0o700): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode });
  await fs.chown(dir, uid, gid);
}

/** SQL as the superuser over a node's socket (peer), in `database`. */
export async function nodeSql<T = Record<string, unknown>>(
  node: DataNode,
  port: number,
  text: string,
  values: unknown[] = [],
  database = 'knocknoc',
): Promise<T[]> {
  return withAdminSession(
    { socketDir: node.root.path(PATHS.pgSocketDir), port, osUser: 'postgres', database },
    undefined,
    async (s) => (await s.query<T>(text, values)).rows,
  );
}

function hba(addresses: string[], client: string): string {
  const lines = ['# test/helpers/pgaf.ts (pg_autoctl was given --skip-pg-hba): nothing trusted', 'local all postgres peer'];
  for (const a of [...addresses, '127.0.0.1'])
    for (const db of ['replication', 'all']) lines.push(`hostssl ${db} pgautofailover_replicator ${a}/32 scram-sha-256`);
  lines.push(`hostssl knocknoc ${WRITER} ${client}/32 scram-sha-256`);
  return `${lines.join('\n')}\n`;
}

const SETTINGS = [
  '',
  '# test/helpers/pgaf.ts: after pg_autoctl include (later lines win); the same on both nodes (pg_rewind copies this file)',
  "ssl_cert_file = '../tls/server.crt'",
  "ssl_key_file = '../tls/server.key'",
  "ssl_ca_file = '../tls/ca.crt'",
  // The monitor's small tuning (pg_autoctl's include sized memory from the host's RAM).
  TUNING.trim(),
  '',
].join('\n');

/** Builds the formation: monitor on `addresses.monitor`, data nodes on `addresses.nodes`, the writer allowed from `addresses.client`. */
export async function makeFormation(addresses: { primary: string; monitor: string; nodes: [string, string]; client: string }): Promise<Formation> {
  const [rootA, rootM, root1, root2] = await Promise.all([makeRoot(), makeRoot(), makeRoot(), makeRoot()]);
  const roots = [rootA, rootM, root1, root2];
  const nodes: DataNode[] = [];
  const destroy = async () => {
    for (const node of nodes) await stopKeeper(node).catch(() => {});
    const files = monitorFiles(rootM);
    if ((await runningMonitor(files)) !== undefined) await stopMonitor(files);
    await Promise.all(roots.map((r) => destroyRoot(r)));
  };
  try {
    await installPrimary(rootA, addresses.primary);
    const init = await run(['exposedb', '--root', rootA.dir, '--init']);
    expect(init.exitCode, init.stderr).toBe(0);
    const monitorPort = await freePort(addresses.monitor);
    const made = await run(['exposedb', '--root', rootA.dir, '--add-monitor', `${addresses.monitor}:${monitorPort}`]);
    expect(made.exitCode, made.stderr).toBe(0);
    const bundle = JSON.parse(await fs.readFile(made.stdout.trim(), 'utf8')) as { password: string };
    const monitor = await run(['ha', '--root', rootM.dir, 'monitor', '--bundle', made.stdout.trim()]);
    expect(monitor.exitCode, monitor.stderr).toBe(0);
    const monitorUri = monitor.stdout.trim();
    const ca = await fs.readFile(rootA.path(PATHS.clusterCaCert), 'utf8');
    const user = (await lookupUser('postgres'))!;
    const port = await freePort(addresses.nodes[0]);
    const bin = (await findPgBinaries())!;
    const replicatorPassword = `repl-${Date.now()}-test-only`;

    for (const [i, [address, root]] of [
      [addresses.nodes[0], root1],
      [addresses.nodes[1], root2],
    ].entries() as IterableIterator<[number, [string, Root]]>) {
      const name = `node${i + 1}`;
      const dir = root.path('/var/lib/knocknoc/pgaf');
      await fs.mkdir(path.dirname(dir), { recursive: true });
      await owned(dir, user.uid, user.gid);
      for (const sub of ['tls', 'xdg', 'xdg/config', 'xdg/share', 'xdg/run']) await owned(path.join(dir, sub), user.uid, user.gid);
      await owned(root.path(PATHS.pgSocketDir), user.uid, user.gid, 0o755);
      const tls = path.join(dir, 'tls');
      await fs.copyFile(rootA.path(PATHS.clusterCaCert), path.join(tls, 'ca.crt'));
      await fs.chown(path.join(tls, 'ca.crt'), user.uid, user.gid);
      await issueServerCertificate({
        ca: { keyFile: rootA.path(PATHS.clusterCaKey), certFile: rootA.path(PATHS.clusterCaCert) },
        hosts: [address],
        keyFile: path.join(tls, 'server.key'),
        certFile: path.join(tls, 'server.crt'),
        owner: user,
      });
      const passfile = path.join(dir, 'pgpass');
      await fs.writeFile(
        passfile,
        `${addresses.monitor}:${monitorPort}:pg_auto_failover:autoctl_node:${bundle.password}\n*:*:*:pgautofailover_replicator:${replicatorPassword}\n`,
        { mode: 0o600 },
      );
      await fs.chown(passfile, user.uid, user.gid);
      const pgdata = path.join(dir, 'data');
      const state: HaNodeState = {
        version: 1,
        mode: 'automatic',
        name,
        address,
        monitorUri,
        pgdata,
        xdg: path.join(dir, 'xdg'),
        passfile,
        pidFile: path.join(dir, 'pg_autoctl.pid'),
        adoptedAt: new Date().toISOString(),
      };
      const node: DataNode = { name, address, root, state, dir, pgdata, pidFile: state.pidFile!, daemonLog: root.path('/var/log/knocknoc/ha-keeper.log') };
      nodes.push(node);
      const created = await keeperCtl(
        root,
        state,
        [
          'create',
          'postgres',
          '--pgctl',
          path.join(bin.dir, 'pg_ctl'),
          '--pghost',
          root.path(PATHS.pgSocketDir),
          '--pgport',
          String(port),
          '--listen',
          address,
          '--hostname',
          address,
          '--name',
          name,
          '--dbname',
          'knocknoc',
          '--skip-pg-hba',
          '--ssl-ca-file',
          path.join(tls, 'ca.crt'),
          '--server-cert',
          path.join(tls, 'server.crt'),
          '--server-key',
          path.join(tls, 'server.key'),
          '--ssl-mode',
          'verify-full',
          '--monitor',
          `${monitorUri}&sslrootcert=${path.join(tls, 'ca.crt')}`,
        ],
        { timeoutMs: 180_000, allowFailure: true },
      );
      expect(created.exitCode, `${created.stdout}\n${created.stderr}`).toBe(0);
      // pg_autoctl may leave its PostgreSQL running after create: stopped, so it starts under the keeper with our files.
      if (await fs.stat(path.join(pgdata, 'postmaster.pid')).catch(() => undefined))
        await keeperCtl(root, state, ['stop'], { allowFailure: true }).catch(() => {});
      await waitFor(
        'PostgreSQL stopped after create',
        async () => ((await fs.stat(path.join(pgdata, 'postmaster.pid')).catch(() => undefined)) ? undefined : true),
        60_000,
      );
      if (i === 0) {
        await fs.writeFile(path.join(pgdata, 'pg_hba.conf'), hba(addresses.nodes, addresses.client), { mode: 0o600 });
        await fs.appendFile(path.join(pgdata, 'postgresql.conf'), SETTINGS);
        for (const f of ['pg_hba.conf', 'postgresql.conf']) await fs.chown(path.join(pgdata, f), user.uid, user.gid);
      }
      await writeHaNodeState(root, state);
      await startKeeper(node);
      if (i === 0) {
        await waitFor(
          `${name} running`,
          () =>
            nodeSql(node, port, 'SELECT 1')
              .then(() => true)
              .catch(() => undefined),
          120_000,
        );
        await withAdminSession({ socketDir: root.path(PATHS.pgSocketDir), port, osUser: 'postgres', database: 'knocknoc' }, undefined, async (s) => {
          await executeQuoted(s, 'ALTER ROLE %I PASSWORD %L', ['pgautofailover_replicator', scramVerifier(replicatorPassword)]);
          await executeQuoted(s, 'CREATE ROLE %I LOGIN PASSWORD %L', [WRITER, scramVerifier(WRITER_PASSWORD)]);
          await s.query('CREATE TABLE standby_probe (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())');
          await executeQuoted(s, 'GRANT INSERT, SELECT ON standby_probe TO %I', [WRITER]);
        });
      }
    }
    const formation: Formation = {
      monitor: { address: addresses.monitor, port: monitorPort, root: rootM, uri: monitorUri },
      primaryRoot: rootA,
      nodes: nodes as [DataNode, DataNode],
      port,
      ca,
      writerUrl: `postgres://${WRITER}:${WRITER_PASSWORD}@${addresses.nodes[0]}:${port}/knocknoc?sslmode=verify-full`,
      client: addresses.client,
      async state() {
        const out = await keeperCtl(nodes[0]!.root, nodes[0]!.state, ['show', 'state', '--json']);
        return JSON.parse(out.stdout);
      },
      async settled(timeoutMs = 180_000) {
        const name = await waitFor(
          'the formation to settle (one primary, one secondary)',
          async () => {
            const rows = await formation.state().catch(() => undefined);
            if (rows?.length !== 2 || rows.some((r) => r.current_group_state !== r.assigned_group_state)) return undefined;
            const primary = rows.find((r) => r.current_group_state === 'primary');
            return primary && rows.some((r) => r.current_group_state === 'secondary') ? primary.nodename : undefined;
          },
          timeoutMs,
        );
        return nodes.find((n) => n.name === name)!;
      },
      destroy,
    };
    return formation;
  } catch (error) {
    for (const node of nodes) console.error(`${node.name} log:\n${await fs.readFile(node.daemonLog, 'utf8').catch(() => '')}`);
    await destroy();
    throw error;
  }
}

/** A writer through both nodes (the first that takes writes), recording every acknowledged id. */
export function formationWriter(f: Formation, firstId: number): Writer {
  return startWriter(
    f.writerUrl,
    f.nodes.map((n) => ({ host: n.address, port: f.port })),
    f.client,
    f.ca,
    firstId,
  );
}

/** Every acknowledged id is on `primary` (none lost). */
export async function expectNoAckedLostOn(f: Formation, primary: DataNode, writer: Writer): Promise<void> {
  const ids = new Set((await nodeSql<{ id: string }>(primary, f.port, 'SELECT id::text FROM standby_probe')).map((r) => Number(r.id)));
  expect(writer.acked.filter((id) => !ids.has(id))).toEqual([]);
}

/** The fail-closed sampler (helpers/failclosed.ts) over the formation's two data nodes. */
export function formationSampler(f: Formation): Sampler {
  return startSampler({ nodesUrl: f.writerUrl, port: f.port, client: f.client, ca: f.ca, A: f.nodes[0].address, B: f.nodes[1].address } as Pair);
}
