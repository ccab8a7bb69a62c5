// exposedb on a host's own PostgreSQL in Debian's layout, found through pg_lsclusters and
// restarted through pg_ctlcluster. PG_CLUSTER_CONF_ROOT gives a real Debian-layout cluster in a
// temporary folder (as in install-host-debian.test.ts); its SSL is on with a self-signed "snakeoil"
// certificate, as Debian sets every cluster up, which verifies nothing: exposedb replaces it with
// one from the cluster's CA, and the printed string asks for verify-full. exposedb's own files go
// to a sandbox root.
import { execa } from 'execa';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runExposeDb, type ExposeRequest } from '../../src/exposedb/index.js';
import { findSystemCluster } from '../../src/postgres/locate.js';
import { executeQuoted, withAdminSession } from '../../src/postgres/admin.js';
import { findPgBinaries } from '../../src/postgres/cluster.js';
import { withClient } from '../../src/postgres/connect.js';
import { generatePassword, scramVerifier } from '../../src/postgres/scram.js';
import { findSystemClusters, stopSystemCluster, type SystemCluster } from '../../src/postgres/system-cluster.js';
import { buildDatabaseUrl } from '../../src/postgres/url.js';
import { freePort } from '../../src/system/host.js';
import { probeTls } from '../../src/postgres/tls-probe.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { url } from '../helpers/exposedb.js';
import { destroyRoot, makeRoot } from '../helpers/roots.js';
import { createDebianCluster } from '../helpers/pg.js';
import { makeTempDir } from '../helpers/temp.js';

let base: string;
let cluster: SystemCluster;
let root: Root;
let appConn: string;
const saved = process.env.PG_CLUSTER_CONF_ROOT;

beforeAll(async () => {
  base = await makeTempDir('knocker-exposedb-debian-');
  const etc = path.join(base, 'etc');
  await fs.mkdir(etc);
  process.env.PG_CLUSTER_CONF_ROOT = etc;
  const bin = (await findPgBinaries())!;
  const port = await freePort('127.0.0.1');
  await createDebianCluster({ base, etc, version: bin.version, name: 'exposetest', port, snakeoil: true });
  await execa('pg_ctlcluster', [bin.version, 'exposetest', 'start'], { env: { PG_CLUSTER_CONF_ROOT: etc } });
  cluster = (await findSystemClusters())[0]!;
  // The application's role and database, as option 1 on this host would have made them.
  const password = generatePassword();
  await withAdminSession({ socketDir: cluster.socketDir, port: cluster.port, osUser: cluster.osUser }, undefined, async (s) => {
    await executeQuoted(s, 'CREATE ROLE %I LOGIN PASSWORD %L', ['knocknoc', scramVerifier(password)]);
    await executeQuoted(s, 'CREATE DATABASE %I OWNER %I', ['knocknoc', 'knocknoc']);
  });
  appConn = buildDatabaseUrl({ host: '127.0.0.1', port: cluster.port, user: 'knocknoc', password, database: 'knocknoc' });
  root = await makeRoot();
  // Traversable, as a real host's / is: PostgreSQL reads the certificate knocker puts under it.
  await fs.chmod(root.dir, 0o755);
});

afterAll(async () => {
  if (cluster) await stopSystemCluster(cluster).catch(() => {});
  if (saved === undefined) delete process.env.PG_CLUSTER_CONF_ROOT;
  else process.env.PG_CLUSTER_CONF_ROOT = saved;
  if (root) await destroyRoot(root);
  if (base) await fs.rm(base, { recursive: true, force: true });
});

async function exposedb(request: Omit<ExposeRequest, 'conn'>): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runExposeDb(
    { ...request, conn: appConn },
    { root, io: { out: (l) => out.push(l), err: (l) => err.push(l) }, findCluster: findSystemCluster },
  );
  return { code, out, err };
}

async function startedAt(): Promise<string> {
  return withAdminSession(
    { socketDir: cluster.socketDir, port: cluster.port, osUser: cluster.osUser },
    undefined,
    async (s) => (await s.query<{ t: string }>('SELECT pg_postmaster_start_time()::text AS t')).rows[0]!.t,
  );
}

test("--init on a Debian cluster: found by port, snakeoil replaced by a certificate from the cluster's CA, restarted through pg_ctlcluster, hostssl lines, verify-full", async () => {
  const before = await startedAt();
  const init = await exposedb({ action: 'init', host: '127.0.0.65' });
  expect(init.code).toBe(0);
  expect(init.err[0]).toMatch(
    new RegExp(`^Exposing database knocknoc of cluster ${cluster.version}/exposetest \\(PostgreSQL ${cluster.version}\\.\\d+\\) to other web nodes:$`),
  );
  expect(init.err.join('\n')).toMatch(/PostgreSQL: listen on every address \(listen_addresses 'localhost' -> '\*'\), restart cluster .*\/exposetest/);
  expect(init.err.join('\n')).not.toContain('warning');
  expect(init.err).toContain(
    "note: PostgreSQL presents Debian's self-signed snakeoil certificate, which verifies nothing: it is replaced by a certificate from the cluster's CA",
  );
  expect(init.out).toHaveLength(1);
  const printed = init.out[0]!;
  expect(printed).toMatch(new RegExp(`^postgres://knocknoc_remote:[A-Za-z0-9_-]{32}@127\\.0\\.0\\.65:${cluster.port}/knocknoc\\?sslmode=verify-full$`));
  // PostgreSQL now presents knocker's certificate, for the printed host, from the cluster's CA.
  const ca = await fs.readFile(root.path(PATHS.clusterCaCert), 'utf8');
  const presented = await probeTls('127.0.0.1', cluster.port, { ca });
  expect(presented).toMatchObject({ offered: true, chainVerified: true, certificate: { altNames: ['IP Address:127.0.0.65'] } });
  expect(await startedAt()).not.toBe(before);

  const hba = await fs.readFile(cluster.hbaFile, 'utf8');
  expect(hba.indexOf('# BEGIN exposedb managed block')).toBeLessThan(hba.search(/^local\s+all\s+postgres\s+peer/m));
  // Debian's own rules are left as they were.
  expect(hba).toMatch(/^local\s+all\s+postgres\s+peer$/m);

  expect((await exposedb({ action: 'add', cidr: '127.0.0.66/32' })).out).toEqual([
    'Allowed 127.0.0.66/32: knocknoc_remote may log in to knocknoc from it (pg_hba.conf checked and reloaded, no restart).',
  ]);
  expect(await fs.readFile(cluster.hbaFile, 'utf8')).toMatch(/^hostssl {2}knocknoc {2}knocknoc_remote {2}127\.0\.0\.66\/32 {2}scram-sha-256$/m);
  const remote = url(printed);
  // The node connects, over TLS; without TLS the same node is refused.
  const tls = await withClient(remote, { sourceAddress: '127.0.0.66', ca }, async (c) => {
    // As the session's own role (not the app role it acts as) it may see its own row.
    await c.query('SET ROLE NONE');
    return (await c.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows[0]!.ssl;
  });
  expect(tls).toBe(true);
  await expect(withClient({ ...remote, sslmode: 'disable' }, { sourceAddress: '127.0.0.66' }, async () => 'in')).rejects.toMatchObject({ code: '28000' });

  // Again: nothing changes, no second restart, the same string.
  const started = await startedAt();
  const again = await exposedb({ action: 'init' });
  expect(again.err[0]).toMatch(/^Nothing to change: database knocknoc of cluster .* is already exposed\.$/);
  expect(again.out).toEqual([printed]);
  expect(await startedAt()).toBe(started);
});
