// A PostgreSQL cluster of our own in a folder (database option 1 under --root, and the test
// harness): initdb, start, stop and status through the real PostgreSQL binaries, run as the
// cluster's OS owner (initdb and pg_ctl refuse root).
import fs from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../system/files.js';
import { isAlive, isZombie } from '../system/lock.js';
import type { Logger } from '../system/log.js';
import { run, which } from '../system/run.js';
import { isRoot, lookupUser } from '../system/users.js';
import { waitFor, waitForOrUndefined } from '../system/wait.js';

export interface PgBinaries {
  /** Folder with initdb, pg_ctl, postgres. */
  dir: string;
  /** Major version, e.g. "15". */
  version: string;
}

async function versionOf(dir: string): Promise<string | undefined> {
  try {
    const result = await run(path.join(dir, 'pg_ctl'), ['--version'], { allowFailure: true });
    return /(\d+)(?:\.\d+)?/.exec(result.stdout)?.[1];
  } catch {
    return undefined;
  }
}

/** Finds the newest PostgreSQL server binaries: Debian, PGDG and distro layouts, then PATH. */
export async function findPgBinaries(): Promise<PgBinaries | undefined> {
  const candidates: string[] = [];
  const list = (dir: string) => fs.readdir(dir).catch(() => [] as string[]);
  for (const version of await list('/usr/lib/postgresql')) candidates.push(`/usr/lib/postgresql/${version}/bin`);
  for (const entry of await list('/usr')) if (/^pgsql-\d+$/.test(entry)) candidates.push(`/usr/${entry}/bin`);
  const onPath = await which('initdb');
  if (onPath) candidates.push(path.dirname(await fs.realpath(onPath)));
  candidates.push('/usr/bin');
  let best: PgBinaries | undefined;
  for (const dir of candidates) {
    try {
      await fs.access(path.join(dir, 'initdb'));
      await fs.access(path.join(dir, 'pg_ctl'));
    } catch {
      continue;
    }
    const version = await versionOf(dir);
    if (version && (!best || Number(version) > Number(best.version))) best = { dir, version };
  }
  return best;
}

export interface PrivateCluster {
  bin: PgBinaries;
  dataDir: string;
  socketDir: string;
  logFile: string;
  /** The one address it listens on (this host's address). */
  host: string;
  port: number;
  /** OS user that owns and runs it: `postgres` when we are root, else ourselves. */
  osUser: string;
}

/** Longest Unix socket path Linux accepts is 107 bytes; PostgreSQL appends "/.s.PGSQL.NNNNN". */
export const MAX_SOCKET_DIR_LENGTH = 107 - '/.s.PGSQL.65535'.length;

export const SETTINGS_MARKER = '# knocker: settings of this private cluster';

/** The OS user that will own a private cluster created by this process. */
export async function clusterOwner(): Promise<string> {
  if (isRoot()) return 'postgres';
  const { userInfo } = await import('node:os');
  return userInfo().username;
}

async function chownTo(target: string, osUser: string): Promise<void> {
  if (!isRoot()) return;
  const user = await lookupUser(osUser);
  if (!user) throw new Error(`there is no OS user "${osUser}"; install PostgreSQL's package (it creates it) or create the user`);
  await fs.chown(target, user.uid, user.gid);
}

/**
 * initdb with peer authentication on the socket and SCRAM on `host` only; listens on `host`.
 * With `creating`, that file says "knocker is making this cluster" from before the data folder
 * exists until the cluster is complete: a run killed in between leaves it, and the next run knows
 * the half-made cluster for its own (discardHalfMadeCluster) instead of refusing it as foreign.
 */
export async function initCluster(cluster: PrivateCluster, log?: Logger, extraInitdbArgs: string[] = [], creating?: string): Promise<void> {
  if (cluster.socketDir.length > MAX_SOCKET_DIR_LENGTH) {
    throw new Error(`the socket folder ${cluster.socketDir} is too long for a Unix socket (max ${MAX_SOCKET_DIR_LENGTH} characters); use a shorter --root`);
  }
  await fs.mkdir(path.dirname(cluster.dataDir), { recursive: true, mode: 0o755 });
  if (creating) {
    await writeFileAtomic(
      creating,
      `knocker (pid ${process.pid}) is creating the PostgreSQL cluster in ${cluster.dataDir}; while this file is here, that cluster is not complete\n`,
      {
        mode: 0o644,
        backup: false,
      },
    );
  }
  await fs.mkdir(cluster.dataDir, { mode: 0o700 });
  await chownTo(cluster.dataDir, cluster.osUser);
  await fs.mkdir(cluster.socketDir, { recursive: true, mode: 0o755 });
  await chownTo(cluster.socketDir, cluster.osUser);
  await fs.mkdir(path.dirname(cluster.logFile), { recursive: true, mode: 0o755 });
  const handle = await fs.open(cluster.logFile, 'a', 0o640);
  await handle.close();
  await chownTo(cluster.logFile, cluster.osUser);
  await run(
    path.join(cluster.bin.dir, 'initdb'),
    ['-D', cluster.dataDir, '--auth-local=peer', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-instructions', ...extraInitdbArgs],
    { asUser: cluster.osUser, log, timeoutMs: 120_000 },
  );
  await writeClusterSettings(cluster);
  if (creating) await fs.rm(creating, { force: true });
}

/** The processes at work in a data folder: an initdb on it, a server or bootstrap backend in it. */
async function processesIn(dataDir: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await fs.readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const [cwd, cmdline] = await Promise.all([
      fs.readlink(`/proc/${entry}/cwd`).catch(() => ''),
      fs.readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => ''),
    ]);
    if (cwd === dataDir || cwd.startsWith(`${dataDir}/`) || cmdline.split('\0').includes(dataDir)) found.push(Number(entry));
  }
  return found;
}

/**
 * Takes away a cluster that a run cut off (killed) left half-made: its initdb may still be at work
 * (it outlives the run), so what works in the folder is ended first, then the folder goes.
 */
export async function discardHalfMadeCluster(dataDir: string, log?: Logger): Promise<void> {
  await waitFor(
    `the processes at work in ${dataDir} to end`,
    async (p) => {
      const pids = await processesIn(dataDir);
      if (pids.length === 0) return true;
      log?.warn(`ending what a cut-off run left at work in ${dataDir}: pid ${pids.join(', ')}`);
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      p.seen(`pid ${pids.join(', ')}`);
      return undefined;
    },
    { timeoutMs: 30_000, everyMs: 50 },
  );
  await fs.rm(dataDir, { recursive: true, force: true });
}

/**
 * Lets a `pg_ctl start` of a cut-off run finish (it outlives the run, and its server may not have
 * written postmaster.pid yet), then says whether the cluster runs and is ready.
 */
export async function settleStart(cluster: Pick<PrivateCluster, 'bin' | 'dataDir' | 'osUser'>, timeoutMs = 90_000): Promise<boolean> {
  const starting = async () => {
    for (const pid of await processesIn(cluster.dataDir)) {
      const argv = (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
      if (argv.some((a) => a.endsWith('pg_ctl')) && argv.includes('start')) return true;
    }
    return false;
  };
  // A pg_ctl still starting after the timeout: whether the cluster runs is answered all the same.
  await waitForOrUndefined(`pg_ctl start in ${cluster.dataDir} to finish`, async () => ((await starting()) ? undefined : true), { timeoutMs, everyMs: 50 });
  return (await clusterRunning(cluster)) && (await waitUntilReady(cluster.dataDir));
}

/**
 * Waits until a running postmaster has finished starting (postmaster.pid says "ready"), as a
 * cluster a cut-off run was starting may still be doing; false when it is not running after all.
 */
export async function waitUntilReady(dataDir: string, timeoutMs = 60_000): Promise<boolean> {
  return waitFor(
    `the PostgreSQL cluster in ${dataDir} to be ready`,
    async (p) => {
      const lines = (await fs.readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n');
      const pid = Number(lines[0]);
      if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return false;
      // Line 8 is the postmaster's status: starting, stopping, ready or standby.
      if (/^(ready|standby)\b/.test((lines[7] ?? '').trim())) return true;
      p.seen((lines[7] ?? '').trim() || 'starting');
      return undefined;
    },
    { timeoutMs, everyMs: 50 },
  );
}

/** Writes listen address, port and socket folder into postgresql.conf, and a local-only pg_hba.conf. */
export async function writeClusterSettings(cluster: PrivateCluster): Promise<void> {
  const confFile = path.join(cluster.dataDir, 'postgresql.conf');
  const conf = await fs.readFile(confFile, 'utf8');
  const base = conf.includes(SETTINGS_MARKER) ? conf.slice(0, conf.indexOf(SETTINGS_MARKER)) : conf;
  const settings = [
    SETTINGS_MARKER,
    `listen_addresses = '${cluster.host}'`,
    `port = ${cluster.port}`,
    `unix_socket_directories = '${cluster.socketDir.replace(/'/g, "''")}'`,
    '',
  ].join('\n');
  await fs.writeFile(confFile, `${base.trimEnd()}\n\n${settings}`);
  const hba = [
    '# TYPE  DATABASE  USER  ADDRESS  METHOD',
    '# Written by knocker: this private cluster only accepts its own host.',
    'local   all       all            peer',
    `host    all       all   ${cluster.host.includes(':') ? `${cluster.host}/128` : `${cluster.host}/32`}  scram-sha-256`,
    '',
  ].join('\n');
  await fs.writeFile(path.join(cluster.dataDir, 'pg_hba.conf'), hba);
}

/**
 * Reads back the port and listen address knocker wrote into a private cluster's postgresql.conf.
 * `self`: this host's address when knocker keeps it outside PGDATA (an automatic pair's node.json:
 * `ha adopt` takes the listen line out, since pg_rewind copies the peer's file over this one).
 */
export async function readClusterSettings(dataDir: string, self?: string): Promise<{ port: number; host: string } | undefined> {
  const conf = await fs.readFile(path.join(dataDir, 'postgresql.conf'), 'utf8').catch(() => undefined);
  if (!conf?.includes(SETTINGS_MARKER)) return undefined;
  const block = conf.slice(conf.indexOf(SETTINGS_MARKER));
  const port = /^port = (\d+)/m.exec(block)?.[1];
  const host = self ?? /^listen_addresses = '([^']*)'/m.exec(block)?.[1];
  return port && host ? { port: Number(port), host } : undefined;
}

export async function clusterExists(dataDir: string): Promise<boolean> {
  return fs
    .access(path.join(dataDir, 'PG_VERSION'))
    .then(() => true)
    .catch(() => false);
}

/** The PID a postmaster's lock file (postmaster.pid, .s.PGSQL.PORT.lock) names; undefined without one. */
async function lockFilePid(file: string): Promise<number | undefined> {
  const first = (await fs.readFile(file, 'utf8').catch(() => '')).split('\n')[0];
  const pid = Number(first);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * Whether the cluster's postmaster is running: pg_ctl status says so, and the process its
 * postmaster.pid names is alive. A postmaster that was killed stays a zombie until its parent
 * (init, once pg_ctl has gone) reaps it, which may take a while (seconds here); pg_ctl status,
 * which only asks kill(pid, 0), counts that zombie as a running server, but it is not one.
 */
export async function clusterRunning(cluster: Pick<PrivateCluster, 'bin' | 'dataDir' | 'osUser'>): Promise<boolean> {
  if (!(await clusterExists(cluster.dataDir))) return false;
  const result = await run(path.join(cluster.bin.dir, 'pg_ctl'), ['status', '-D', cluster.dataDir], { asUser: cluster.osUser, allowFailure: true });
  if (result.exitCode !== 0) return false;
  const pid = await lockFilePid(path.join(cluster.dataDir, 'postmaster.pid'));
  return pid === undefined || isAlive(pid);
}

/**
 * Clears what a killed postmaster left before a start: PostgreSQL refuses to start while the PID
 * in postmaster.pid (or in its socket's lock file, .s.PGSQL.PORT.lock) answers kill(pid, 0), and a
 * killed postmaster not yet reaped (a zombie) does. Its own processes (backends, checkpointer, …)
 * end on their own once it is gone and are waited for (they still hold its shared memory); then
 * the lock files that name that zombie are removed, as PostgreSQL removes ones whose PID is gone.
 * A live postmaster's lock files are never touched.
 */
async function clearKilledPostmaster(cluster: Pick<PrivateCluster, 'dataDir' | 'socketDir'>, log?: Logger, timeoutMs = 60_000): Promise<void> {
  const pidFile = path.join(cluster.dataDir, 'postmaster.pid');
  const pid = await lockFilePid(pidFile);
  if (pid === undefined || isAlive(pid)) return;
  await waitFor(
    `the processes of a PostgreSQL server that was killed (pid ${pid}) to end in ${cluster.dataDir}`,
    async (p) => {
      const pids = await processesIn(cluster.dataDir);
      if (pids.length === 0) return true;
      p.seen(`pid ${pids.join(', ')} still at work`);
      return undefined;
    },
    { timeoutMs, everyMs: 50 },
  );
  if (!isZombie(pid)) return; // reaped meanwhile: PostgreSQL sees it gone and takes its lock files over
  const sockets = (await fs.readdir(cluster.socketDir).catch(() => [] as string[]))
    .filter((f) => /^\.s\.PGSQL\.\d+\.lock$/.test(f))
    .map((f) => path.join(cluster.socketDir, f));
  for (const file of [pidFile, ...sockets]) {
    // Read again: only a lock file naming the same dead postmaster goes.
    if ((await lockFilePid(file)) !== pid) continue;
    log?.warn(`removing the lock file of a PostgreSQL server that was killed (pid ${pid}, not yet reaped): ${file}`);
    await fs.rm(file, { force: true });
  }
}

/**
 * pg_ctl start and restart run `exec postgres -D "DIR" … >> "LOG"` through /bin/sh: a path that
 * the shell would read as more than a path never reaches it (a second line of defence behind the
 * root's check, for every caller).
 */
export function shellSafe(...paths: string[]): void {
  for (const p of paths) {
    if (/[$`"\\\n\r]/.test(p))
      throw new Error(`${JSON.stringify(p)} cannot be given to pg_ctl: it hands its paths to /bin/sh, which would read $, \`, " or \\ in them`);
  }
}

export async function startCluster(cluster: PrivateCluster, log?: Logger): Promise<void> {
  shellSafe(cluster.dataDir, cluster.logFile);
  await fs.mkdir(cluster.socketDir, { recursive: true, mode: 0o755 });
  await chownTo(cluster.socketDir, cluster.osUser);
  await clearKilledPostmaster(cluster, log);
  await run(path.join(cluster.bin.dir, 'pg_ctl'), ['start', '-w', '-t', '60', '-s', '-D', cluster.dataDir, '-l', cluster.logFile], {
    asUser: cluster.osUser,
    log,
    timeoutMs: 90_000,
    withoutPgEnv: true,
  });
}

export async function stopCluster(
  cluster: Pick<PrivateCluster, 'bin' | 'dataDir' | 'osUser'>,
  log?: Logger,
  mode: 'smart' | 'fast' | 'immediate' = 'fast',
): Promise<void> {
  if (!(await clusterRunning(cluster))) return;
  await run(path.join(cluster.bin.dir, 'pg_ctl'), ['stop', '-w', '-t', '60', '-s', '-m', mode, '-D', cluster.dataDir], {
    asUser: cluster.osUser,
    log,
    timeoutMs: 90_000,
    withoutPgEnv: true,
  });
}

export async function restartCluster(cluster: PrivateCluster, log?: Logger): Promise<void> {
  shellSafe(cluster.dataDir, cluster.logFile);
  await run(path.join(cluster.bin.dir, 'pg_ctl'), ['restart', '-w', '-t', '60', '-s', '-m', 'fast', '-D', cluster.dataDir, '-l', cluster.logFile], {
    asUser: cluster.osUser,
    log,
    timeoutMs: 90_000,
    withoutPgEnv: true,
  });
}
