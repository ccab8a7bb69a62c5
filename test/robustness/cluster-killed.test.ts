// A private cluster whose postmaster was killed and not yet reaped (a zombie: its parent has not
// waited for it; init may take seconds to) is stopped, and starts again at once: pg_ctl status and
// PostgreSQL's own lock-file check both take that zombie for a running server. The zombie is made
// deterministic here: the postmaster's parent is a `sleep` that never reaps it.
import { execa } from 'execa';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { clusterRunning, stopCluster } from '../../src/postgres/cluster.js';
import { isZombie } from '../../src/system/lock.js';
import { commandLine } from '../../src/system/run.js';
import { waitFor } from '../../src/system/wait.js';
import { startTestCluster, type TestCluster } from '../helpers/pg.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Waits (event by event, no fixed window) until `check` holds. */
async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  await waitFor(what, async () => ((await check()) ? true : undefined), { timeoutMs: 60_000, everyMs: 20 });
}

async function lockPid(file: string): Promise<number> {
  return Number((await fs.readFile(file, 'utf8').catch(() => '')).split('\n')[0]);
}

test('a killed postmaster not yet reaped: the cluster is stopped, and starts again at once', async () => {
  const cluster: TestCluster = await startTestCluster({ host: '127.0.0.193' });
  cleanups.push(() => cluster.destroy());
  await cluster.stop();
  // postgres started in the background by a shell that then becomes `sleep`: its parent never reaps it.
  const [program, ...args] = commandLine(
    'sh',
    ['-c', '"$1" >>"$2" 2>&1 & exec sleep 600', 'sh', path.join(cluster.bin.dir, 'postgres'), cluster.logFile],
    cluster.osUser,
  ) as [string, ...string[]];
  // The data folder goes by PGDATA, not argv: a process naming it counts as at work in it.
  const parent = execa(program, args, { reject: false, stdio: 'ignore', env: { PGDATA: cluster.dataDir } });
  cleanups.push(async () => {
    parent.kill('SIGKILL');
    await parent;
  });
  const pidFile = path.join(cluster.dataDir, 'postmaster.pid');
  await until(async () => /^ready/m.test(await fs.readFile(pidFile, 'utf8').catch(() => '')), 'the postmaster ready');
  const pid = await lockPid(pidFile);
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
  const sleeper = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  cleanups.push(async () => {
    try {
      process.kill(sleeper, 'SIGKILL');
    } catch {
      // gone already
    }
  });
  expect(await clusterRunning(cluster)).toBe(true);

  process.kill(pid, 'SIGKILL');
  await until(() => isZombie(pid), 'the killed postmaster a zombie');
  // pg_ctl status alone still calls it running; knocker does not.
  const [pgCtl, ...statusArgs] = commandLine(path.join(cluster.bin.dir, 'pg_ctl'), ['status', '-D', cluster.dataDir], cluster.osUser) as [string, ...string[]];
  const status = await execa(pgCtl, statusArgs, { reject: false });
  expect(status.exitCode).toBe(0);
  expect(await clusterRunning(cluster)).toBe(false);
  // Stopping a stopped cluster is a no-op, not "server does not shut down".
  await stopCluster(cluster);

  await cluster.start();
  expect(isZombie(pid), 'the old postmaster is still unreaped: the start had to clear its lock files').toBe(true);
  const now = await lockPid(pidFile);
  expect(now).not.toBe(pid);
  expect(await clusterRunning(cluster)).toBe(true);
  expect(await cluster.admin<{ one: number }>('SELECT 1 AS one')).toEqual([{ one: 1 }]);
  const socketLock = path.join(cluster.socketDir, `.s.PGSQL.${cluster.port}.lock`);
  expect(await lockPid(socketLock)).toBe(now);
});
