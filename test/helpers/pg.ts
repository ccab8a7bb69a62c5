// Real PostgreSQL clusters for tests: each in its own temporary folder, on a loopback address and a
// free port, started with pg_ctl and stopped (and removed) by the test. A data folder initialised
// once per machine is copied for speed (initdb ≈ 0.6 s, a copy ≈ 0.1 s).
import { execa } from 'execa';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { selfSignedArgs } from './certs.js';
import { withAdminSession } from '../../src/postgres/admin.js';
import {
  clusterOwner,
  findPgBinaries,
  initCluster,
  restartCluster,
  startCluster,
  stopCluster,
  writeClusterSettings,
  type PrivateCluster,
} from '../../src/postgres/cluster.js';
import { generatePassword, scramVerifier } from '../../src/postgres/scram.js';
import { buildDatabaseUrl } from '../../src/postgres/url.js';
import { freePort } from '../../src/system/host.js';
import { isRoot, lookupUser } from '../../src/system/users.js';
import { makeTempDir } from './temp.js';

export interface TestCluster extends PrivateCluster {
  /** Runs SQL as the cluster's superuser (over the Unix socket). */
  admin<T = Record<string, unknown>>(sql: string, values?: unknown[], database?: string): Promise<T[]>;
  /** Creates a login role with a password and a database it owns; returns its connection string. */
  createDatabase(options?: { role?: string; database?: string; password?: string }): Promise<string>;
  url(user: string, password: string, database: string): string;
  start(): Promise<void>;
  stop(): Promise<void>;
  restart(): Promise<void>;
  /** Stops the cluster and removes its folder. */
  destroy(): Promise<void>;
}

const FAST_SETTINGS = ['fsync = off', 'synchronous_commit = off', 'full_page_writes = off', 'shared_buffers = 16MB', 'max_connections = 100'];

async function templateDir(): Promise<string> {
  const bin = await findPgBinaries();
  if (!bin) throw new Error('PostgreSQL server binaries are needed for the tests (apt-get install postgresql)');
  const owner = await clusterOwner();
  const dir = path.join(os.tmpdir(), `knocker-test-pg${bin.version}-template-${owner}`);
  try {
    await fs.access(path.join(dir, 'PG_VERSION'));
    return dir;
  } catch {
    // build it below
  }
  const building = await makeTempDir('knocker-template-');
  const data = path.join(building, 'data');
  await initCluster(
    { bin, dataDir: data, socketDir: path.join(building, 's'), logFile: path.join(building, 'log'), host: '127.0.0.1', port: 5432, osUser: owner },
    undefined,
    ['--no-sync'],
  );
  try {
    await fs.rename(data, dir);
  } catch (error) {
    // Another worker finished first; use theirs.
    if (!['ENOTEMPTY', 'EEXIST'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
  }
  await fs.rm(building, { recursive: true, force: true });
  return dir;
}

/** Starts a fresh cluster listening on `host` (a loopback address: one "host" of the test). */
export async function startTestCluster(
  options: { host?: string; port?: number; settings?: string[]; ssl?: boolean } = {},
): Promise<TestCluster & { caFile?: string }> {
  const host = options.host ?? '127.0.0.1';
  const bin = (await findPgBinaries())!;
  const osUser = await clusterOwner();
  const base = await makeTempDir('knocker-pg-');
  const dataDir = path.join(base, 'data');
  const template = await templateDir();
  await execa('cp', ['-a', template, dataDir]);
  const cluster: PrivateCluster = {
    bin,
    dataDir,
    socketDir: path.join(base, 'sock'),
    logFile: path.join(base, 'postgresql.log'),
    host,
    port: options.port ?? (await freePort(host)),
    osUser,
  };
  await fs.mkdir(cluster.socketDir, { mode: 0o755 });
  if (isRoot()) {
    const user = (await lookupUser(osUser))!;
    await fs.chown(cluster.socketDir, user.uid, user.gid);
  }
  await writeClusterSettings(cluster);
  await fs.appendFile(path.join(dataDir, 'postgresql.conf'), `\n${[...FAST_SETTINGS, ...(options.settings ?? [])].join('\n')}\n`);
  let caFile: string | undefined;
  if (options.ssl) {
    // A self-signed certificate for localhost and 127.0.0.1; it is also its own CA file.
    caFile = path.join(base, 'ca.crt');
    const [openssl, ...args] = selfSignedArgs({
      cn: 'localhost',
      san: `DNS:localhost,IP:${host}`,
      days: 2,
      keyOut: path.join(dataDir, 'server.key'),
      certOut: path.join(dataDir, 'server.crt'),
    });
    await execa(openssl!, args);
    await fs.copyFile(path.join(dataDir, 'server.crt'), caFile);
    await fs.chmod(path.join(dataDir, 'server.key'), 0o600);
    if (isRoot()) {
      const user = (await lookupUser(osUser))!;
      for (const f of ['server.key', 'server.crt']) await fs.chown(path.join(dataDir, f), user.uid, user.gid);
    }
    await fs.appendFile(path.join(dataDir, 'postgresql.conf'), "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
    // Password logins over TLS only, as a DBaaS would.
    await fs.writeFile(
      path.join(dataDir, 'pg_hba.conf'),
      `local all all peer\nhostssl all all ${host}/32 scram-sha-256\nhost all all ${host}/32 scram-sha-256\n`,
    );
  }
  await fs.writeFile(cluster.logFile, '');
  if (isRoot()) {
    const user = (await lookupUser(osUser))!;
    await fs.chown(cluster.logFile, user.uid, user.gid);
  }
  await startCluster(cluster);
  const access = (database?: string) => ({ socketDir: cluster.socketDir, port: cluster.port, osUser, database });
  const test: TestCluster & { caFile?: string } = {
    ...cluster,
    caFile,
    admin: async <T>(sql: string, values?: unknown[], database?: string) =>
      withAdminSession(access(database), undefined, async (session) => (await session.query<T>(sql, values)).rows),
    url: (user, password, database) => buildDatabaseUrl({ host, port: cluster.port, user, password, database }),
    async createDatabase(opts = {}) {
      const role = opts.role ?? 'app';
      const database = opts.database ?? role;
      const password = opts.password ?? generatePassword();
      await withAdminSession(access(), undefined, async (session) => {
        const create = await session.query<{ s: string }>(`SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text) AS s`, [
          role,
          scramVerifier(password),
        ]);
        await session.query(create.rows[0]!.s);
        const db = await session.query<{ s: string }>(`SELECT format('CREATE DATABASE %I OWNER %I', $1::text, $2::text) AS s`, [database, role]);
        await session.query(db.rows[0]!.s);
      });
      return test.url(role, password, database);
    },
    start: () => startCluster(cluster),
    stop: () => stopCluster(cluster, undefined, 'fast'),
    restart: () => restartCluster(cluster),
    async destroy() {
      await stopCluster(cluster, undefined, 'immediate').catch(() => {});
      await fs.rm(base, { recursive: true, force: true });
    },
  };
  return test;
}

/**
 * A cluster in Debian's layout (pg_createcluster, owned by postgres) under `base`, its settings
 * under `etc` (PG_CLUSTER_CONF_ROOT), not started: folders `data-NAME`, `sock-NAME`, log `NAME.log`.
 * `snakeoil`: TLS on with a self-signed certificate in conf.d, as Debian's ssl-cert package makes it.
 */
export async function createDebianCluster(options: {
  base: string;
  etc: string;
  version: string;
  name: string;
  port: number;
  snakeoil?: boolean;
}): Promise<void> {
  const { base, etc, version, name, port } = options;
  const env = { PG_CLUSTER_CONF_ROOT: etc };
  const where = ['-d', path.join(base, `data-${name}`), '-s', path.join(base, `sock-${name}`), '-l', path.join(base, `${name}.log`)];
  await execa('pg_createcluster', ['-u', 'postgres', ...where, '-p', String(port), version, name, '--', '--no-sync'], { env });
  await fs.chmod(etc, 0o755);
  if (!options.snakeoil) return;
  const key = path.join(base, `snakeoil-${name}.key`);
  const crt = path.join(base, `snakeoil-${name}.pem`);
  const [openssl, ...args] = selfSignedArgs({ cn: 'localhost', days: 2, keyOut: key, certOut: crt });
  await execa(openssl!, args);
  await execa('chown', ['postgres:postgres', key, crt]);
  await fs.chmod(key, 0o600);
  await fs.writeFile(path.join(etc, version, name, 'conf.d', 'tls.conf'), `ssl = on\nssl_cert_file = '${crt}'\nssl_key_file = '${key}'\n`);
}
