// The host's own PostgreSQL (no --root): found through Debian's postgresql-common
// (pg_lsclusters) or the RHEL layout (/var/lib/pgsql), started through the distribution's tools
// (pg_ctlcluster redirects to systemctl where systemd runs), created when a package left none.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../system/log.js';
import { run, which } from '../system/run.js';
import { lookupUser } from '../system/users.js';
import type { ClusterAccess } from './admin.js';
import { findPgBinaries, shellSafe } from './cluster.js';

export interface SystemCluster {
  layout: 'debian' | 'rhel';
  /** "15/main" on Debian, the data folder on RHEL. */
  label: string;
  version: string;
  /** Debian cluster name. */
  name: string;
  port: number;
  socketDir: string;
  dataDir: string;
  hbaFile: string;
  osUser: string;
  running: boolean;
}

export function accessOf(cluster: SystemCluster, database?: string): ClusterAccess {
  return { socketDir: cluster.socketDir, port: cluster.port, osUser: cluster.osUser, database };
}

interface LsCluster {
  version: number | string;
  cluster: string;
  port: string | number;
  socketdir?: string;
  pgdata?: string;
  owneruid?: number;
  running?: number;
  config?: { hba_file?: string; unix_socket_directories?: string; data_directory?: string };
}

async function debianClusters(log?: Logger): Promise<SystemCluster[] | undefined> {
  if (!(await which('pg_lsclusters'))) return undefined;
  const result = await run('pg_lsclusters', ['--json'], { log, allowFailure: true });
  if (result.exitCode !== 0) return undefined;
  const list = JSON.parse(result.stdout || '[]') as LsCluster[];
  const clusters: SystemCluster[] = [];
  for (const c of list) {
    const owner = c.owneruid === undefined ? undefined : await lookupUser(String(c.owneruid));
    const version = String(c.version);
    clusters.push({
      layout: 'debian',
      label: `${version}/${c.cluster}`,
      version,
      name: c.cluster,
      port: Number(c.port),
      socketDir: c.socketdir ?? c.config?.unix_socket_directories?.split(',')[0]?.trim() ?? '/var/run/postgresql',
      dataDir: c.pgdata ?? c.config?.data_directory ?? '',
      hbaFile: c.config?.hba_file ?? path.join('/etc/postgresql', version, c.cluster, 'pg_hba.conf'),
      osUser: owner?.name ?? 'postgres',
      running: c.running === 1,
    });
  }
  return clusters;
}

/** Distribution (/var/lib/pgsql/data) and PGDG (/var/lib/pgsql/NN/data) data folders. */
async function rhelDataDirs(): Promise<string[]> {
  const dirs = ['/var/lib/pgsql/data'];
  const entries = await fs.readdir('/var/lib/pgsql').catch(() => [] as string[]);
  for (const e of entries) if (/^\d+$/.test(e)) dirs.push(`/var/lib/pgsql/${e}/data`);
  return dirs;
}

async function rhelClusters(log?: Logger): Promise<SystemCluster[]> {
  const clusters: SystemCluster[] = [];
  const bin = await findPgBinaries();
  for (const dataDir of await rhelDataDirs()) {
    const version = (await fs.readFile(path.join(dataDir, 'PG_VERSION'), 'utf8').catch(() => '')).trim();
    if (!version || !bin) continue;
    const status = await run(path.join(bin.dir, 'pg_ctl'), ['status', '-D', dataDir], { asUser: 'postgres', log, allowFailure: true });
    const conf = await fs.readFile(path.join(dataDir, 'postgresql.conf'), 'utf8').catch(() => '');
    const port = Number(/^\s*port\s*=\s*(\d+)/m.exec(conf)?.[1] ?? 5432);
    clusters.push({
      layout: 'rhel',
      label: dataDir,
      version,
      name: path.basename(path.dirname(dataDir)),
      port,
      socketDir: '/var/run/postgresql',
      dataDir,
      hbaFile: path.join(dataDir, 'pg_hba.conf'),
      osUser: 'postgres',
      running: status.exitCode === 0,
    });
  }
  return clusters;
}

/** Every PostgreSQL cluster of the host, Debian's first. */
export async function findSystemClusters(log?: Logger): Promise<SystemCluster[]> {
  return (await debianClusters(log)) ?? (await rhelClusters(log));
}

/** The cluster option 1 uses: the one on port 5432, else the newest. */
export function pickCluster(clusters: SystemCluster[]): SystemCluster | undefined {
  return clusters.find((c) => c.port === 5432) ?? [...clusters].sort((a, b) => Number(b.version) - Number(a.version))[0];
}

/** Starts a host cluster through the distribution's tools. */
export async function startSystemCluster(cluster: SystemCluster, log?: Logger): Promise<void> {
  if (cluster.layout === 'debian') {
    await run('pg_ctlcluster', [cluster.version, cluster.name, 'start'], { log, timeoutMs: 120_000 });
    return;
  }
  if (await which('systemctl')) {
    const unit = cluster.dataDir === '/var/lib/pgsql/data' ? 'postgresql' : `postgresql-${cluster.version}`;
    const result = await run('systemctl', ['start', unit], { log, allowFailure: true, timeoutMs: 120_000 });
    if (result.exitCode === 0) return;
  }
  const bin = await findPgBinaries();
  if (!bin) throw new Error('PostgreSQL binaries not found');
  shellSafe(cluster.dataDir);
  await run(path.join(bin.dir, 'pg_ctl'), ['start', '-w', '-D', cluster.dataDir, '-l', path.join(cluster.dataDir, 'startup.log')], {
    asUser: cluster.osUser,
    log,
    timeoutMs: 120_000,
  });
}

export async function stopSystemCluster(cluster: SystemCluster, log?: Logger): Promise<void> {
  if (cluster.layout === 'debian') {
    await run('pg_ctlcluster', [cluster.version, cluster.name, 'stop'], { log, timeoutMs: 120_000 });
    return;
  }
  const bin = await findPgBinaries();
  if (!bin) return;
  await run(path.join(bin.dir, 'pg_ctl'), ['stop', '-w', '-m', 'fast', '-D', cluster.dataDir], { asUser: cluster.osUser, log, timeoutMs: 120_000 });
}

/** Restarts a host cluster (needed after listen_addresses changes). */
export async function restartSystemCluster(cluster: SystemCluster, log?: Logger): Promise<void> {
  if (cluster.layout === 'debian') {
    await run('pg_ctlcluster', [cluster.version, cluster.name, 'restart'], { log, timeoutMs: 120_000 });
    return;
  }
  await stopSystemCluster(cluster, log);
  await startSystemCluster(cluster, log);
}

/** Creates the distribution's default cluster when the package left none. */
export async function createSystemCluster(layout: 'debian' | 'rhel', version: string, log?: Logger): Promise<void> {
  if (layout === 'debian') {
    await run('pg_createcluster', [version, 'main'], { log, timeoutMs: 180_000 });
    return;
  }
  if (await which('postgresql-setup')) {
    await run('postgresql-setup', ['--initdb'], { log, timeoutMs: 180_000 });
    return;
  }
  const setup = `/usr/pgsql-${version}/bin/postgresql-${version}-setup`;
  await run(setup, ['initdb'], { log, timeoutMs: 180_000 });
}

/** The folder of a Debian cluster's configuration files (postgresql.conf, pg_hba.conf, conf.d). */
export function debianConfDir(cluster: Pick<SystemCluster, 'version' | 'name'>): string {
  return path.join(process.env.PG_CLUSTER_CONF_ROOT || '/etc/postgresql', cluster.version, cluster.name);
}

/** pg_ctlcluster VERSION NAME start|stop (it hands over to systemctl postgresql@V-N where systemd runs). */
export async function ctlDebianCluster(
  cluster: Pick<SystemCluster, 'version' | 'name'>,
  action: 'start' | 'stop',
  log?: Logger,
  mode?: 'fast' | 'immediate',
): Promise<void> {
  const args = [cluster.version, cluster.name, action, ...(action === 'stop' && mode ? ['-m', mode] : [])];
  // No libpq variables (they would reach the walreceiver: trap 7), but Debian's own.
  const conf = process.env.PG_CLUSTER_CONF_ROOT;
  await run('pg_ctlcluster', args, { log, timeoutMs: 120_000, withoutPgEnv: true, env: conf ? { PG_CLUSTER_CONF_ROOT: conf } : {} });
}
