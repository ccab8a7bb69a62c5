// An automatic pair made the way an operator makes one (issue 24): a knocker pair (failclosed.ts's
// makePair: install, exposedb --init/--add-standby, standby init), a monitor root (exposedb
// --add-monitor, `knocker ha monitor --bundle`), then `knocker ha adopt` on the primary and
// `ha adopt --bundle` on the standby. Plus what the interruption tests and bench/ha-failover.ts do to
// a host: signal its keeper and its postmaster with every child at once (a dead or a hung host).
import fs from 'node:fs/promises';
import { expect } from 'vitest';
import { monitorView, nodeFiles, nodeName, runningKeeper, stopKeeper } from '../../src/ha/adopt.js';
import { autoctl, monitorFiles, runningMonitor, stopMonitor } from '../../src/ha/monitor.js';
import { freePort } from '../../src/system/host.js';
import { isAlive } from '../../src/system/lock.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { makePair, run, type Pair } from './failclosed.js';
import { destroyRoot, makeRoot } from './roots.js';
import { waitFor } from './server.js';

export interface AdoptedPair extends Pair {
  monitor: string;
  rootM: Root;
  monPort: number;
  /** Stops both keepers and the monitor, then removes the roots. */
  destroyAll(): Promise<void>;
}

export const ha = (root: Root, ...args: string[]) => run(['ha', '--root', root.dir, ...args]);

/** Waits until the monitor shows `host`'s node in `wanted`, reported and assigned alike. */
export async function settled(root: Root, host: string, wanted: string | string[], timeoutMs = 120_000): Promise<void> {
  const states = Array.isArray(wanted) ? wanted : [wanted];
  await waitFor(
    `${host} ${states.join(' or ')} on the monitor`,
    async () => {
      const view = await monitorView(root, nodeFiles(root), nodeName(host)).catch(() => undefined);
      return view && view.current === view.assigned && states.includes(view.current) ? true : undefined;
    },
    timeoutMs,
  );
}

/** Waits until the monitor shows every node healthy and settled (reported = assigned): a switchover may start. */
export async function allHealthy(root: Root, timeoutMs = 120_000): Promise<void> {
  const files = nodeFiles(root);
  await waitFor(
    'every node healthy on the monitor',
    async () => {
      const shown = await autoctl(root, files, ['show', 'state', '--pgdata', files.data, '--json'], undefined, true).catch(() => undefined);
      if (shown?.exitCode !== 0) return undefined;
      const nodes = JSON.parse(shown.stdout) as Array<{ health: number; current_group_state: string; assigned_group_state: string }>;
      return nodes.length > 0 && nodes.every((n) => n.health === 1 && n.current_group_state === n.assigned_group_state) ? true : undefined;
    },
    timeoutMs,
  );
}

/** A knocker pair on A (primary) and B (standby) handed to pg_auto_failover with a monitor on `monitor`, settled. */
export async function adoptedPair(monitor: string, A: string, B: string, client: string): Promise<AdoptedPair> {
  const pair = await makePair(A, B, client);
  const rootM = await makeRoot();
  const monPort = await freePort(monitor);
  const destroyAll = async () => {
    for (const root of [pair.rootA, pair.rootB]) await stopKeeper(root, 20_000).catch(() => {});
    await stopMonitor(monitorFiles(rootM), 20_000).catch(() => {});
    await Promise.all([pair.destroy(), destroyRoot(rootM)]);
  };
  try {
    const made = await run(['exposedb', '--root', pair.rootA.dir, '--add-monitor', `${monitor}:${monPort}`]);
    expect(made.exitCode, made.stderr).toBe(0);
    const mon = await ha(rootM, 'monitor', '--bundle', made.stdout.trim());
    expect(mon.exitCode, mon.stderr).toBe(0);
    const onA = await ha(pair.rootA, 'adopt');
    expect(onA.exitCode, onA.stderr).toBe(0);
    const onB = await ha(pair.rootB, 'adopt', '--bundle', onA.stdout.trim());
    expect(onB.exitCode, onB.stderr).toBe(0);
    await settled(pair.rootA, A, 'primary');
    await settled(pair.rootB, B, 'secondary');
  } catch (error) {
    await destroyAll();
    throw error;
  }
  return { ...pair, monitor, rootM, monPort, destroyAll };
}

/** Every process whose parent is `pid` (a postmaster's children). */
export async function childrenOf(pid: number): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await fs.readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) found.push(Number(entry));
  }
  return found;
}

/** A host's processes: its pg_autoctl daemon (and its group) and the postmaster of `dataDir` with every child. */
export interface HostProcesses {
  daemon: number;
  pids: number[];
}

export async function hostProcesses(daemon: number, dataDir: string): Promise<HostProcesses> {
  const postmaster = Number((await fs.readFile(`${dataDir}/postmaster.pid`, 'utf8')).split('\n')[0]);
  return { daemon, pids: [daemon, postmaster, ...(await childrenOf(postmaster))] };
}

/** The data host of `root`: its keeper and its PostgreSQL. */
export async function dataHost(root: Root): Promise<HostProcesses> {
  const keeper = await runningKeeper(root);
  if (keeper === undefined) throw new Error(`no keeper runs in ${root.dir}`);
  return hostProcesses(keeper, root.path(PATHS.pgData));
}

/** The monitor host of `rootM`: its pg_autoctl and its PostgreSQL. */
export async function monitorHost(rootM: Root): Promise<HostProcesses> {
  const files = monitorFiles(rootM);
  const daemon = await runningMonitor(files);
  if (daemon === undefined) throw new Error('no monitor runs');
  return hostProcesses(daemon, files.data);
}

/** The same signal to every process of the host at once (the daemon's group first: its sub-processes). */
export function signalHost(host: HostProcesses, signal: NodeJS.Signals): void {
  try {
    process.kill(-host.daemon, signal);
  } catch {
    // its group may be the daemon alone
  }
  for (const pid of host.pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // gone with its group
    }
  }
}

/** kill -9 of the whole host, returning once every process of it is gone. */
export async function killHost(host: HostProcesses): Promise<void> {
  signalHost(host, 'SIGKILL');
  await waitFor('the host gone', () => (host.pids.every((pid) => !isAlive(pid)) ? true : undefined));
}

/** SIGSTOP of the whole host (a hung host), returning once every process of it is stopped (state T). */
export async function hangHost(host: HostProcesses): Promise<void> {
  signalHost(host, 'SIGSTOP');
  const stopped = async (pid: number) => {
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    // Stopped (T), or a backend that ended after its postmaster was stopped and waits to be reaped (Z, X).
    return stat === '' || ['T', 'Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
  };
  await waitFor('the host stopped', async () => ((await Promise.all(host.pids.map(stopped))).every(Boolean) ? true : undefined));
}

/**
 * The first write acknowledged after `t` (ms since the epoch), waiting for it. Give the moment the
 * faulty host was seen gone or stopped, not the moment it was signalled: an insert it acknowledged
 * just before would otherwise count as the new primary's.
 */
export async function firstAckAfter(ackedAt: number[], t0: number, timeoutMs = 120_000): Promise<number> {
  return waitFor('a write acknowledged after the fault', () => ackedAt.find((t) => t > t0), timeoutMs);
}

/** The longest time between two acknowledged writes from `t0` on (the last one before `t0` counts as the start). */
export function longestGapFrom(ackedAt: number[], t0: number): number {
  let gap = 0;
  for (let i = 1; i < ackedAt.length; i++) if (ackedAt[i]! > t0) gap = Math.max(gap, ackedAt[i]! - ackedAt[i - 1]!);
  return gap;
}
