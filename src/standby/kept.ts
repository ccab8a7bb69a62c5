// What a rejoin keeps instead of deleting (nothing saved is deleted silently): the data directory a
// re-clone replaces, under a name of its own per rejoin (postgresql.before-rejoin-<time>), and,
// before pg_rewind, this node's WAL from the divergence point on (postgresql.rewind-wal-<time>): the
// transactions the new primary never got. Both lie beside the data directory; `standby status`
// lists them with their size and the command that removes them.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../system/log.js';
import { run } from '../system/run.js';
import { configFileOf, controlData, lsn, type LocalNode } from './node.js';
import { rewindOutcome } from './decide.js';

export interface KeptCopy {
  path: string;
  bytes: number;
  /** What it is, in the operator's words. */
  what: string;
  remove: string;
}

/** A name for a copy made now, never one that exists: `<dataDir>.<kind>-2026-12-07T14-12-00Z`. */
export async function keptName(dataDir: string, kind: 'before-rejoin' | 'rewind-wal'): Promise<string> {
  const stamp = new Date()
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/:/g, '-');
  for (let n = 0; ; n += 1) {
    const candidate = `${dataDir}.${kind}-${stamp}${n === 0 ? '' : `-${n}`}`;
    if (!(await fs.stat(candidate).catch(() => undefined))) return candidate;
  }
}

async function sizeOf(target: string): Promise<number> {
  const stat = await fs.lstat(target).catch(() => undefined);
  if (!stat) return 0;
  if (!stat.isDirectory()) return stat.size;
  let total = 0;
  for (const entry of await fs.readdir(target).catch(() => [] as string[])) total += await sizeOf(path.join(target, entry));
  return total;
}

/** The copies kept beside `dataDir` (oldest first). */
export async function keptCopies(dataDir: string): Promise<KeptCopy[]> {
  const dir = path.dirname(dataDir);
  const base = path.basename(dataDir);
  const names = (await fs.readdir(dir).catch(() => [] as string[]))
    .filter((n) => n.startsWith(`${base}.before-rejoin`) || n.startsWith(`${base}.rewind-wal-`))
    .sort();
  const copies: KeptCopy[] = [];
  for (const name of names) {
    const full = path.join(dir, name);
    copies.push({
      path: full,
      bytes: await sizeOf(full),
      what: name.startsWith(`${base}.rewind-wal-`)
        ? 'WAL this node wrote past the divergence (transactions the primary never got)'
        : 'the data directory a rejoin replaced (writes the primary never got)',
      remove: `rm -r ${full}`,
    });
  }
  return copies;
}

/** WAL segment files (timeline, logical segment number) from their names. */
function segmentOf(name: string, segmentBytes: number): { timeline: number; segno: bigint } | undefined {
  const m = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/.exec(name);
  if (!m) return undefined;
  const perId = 0x1_0000_0000n / BigInt(segmentBytes);
  return { timeline: parseInt(m[1]!, 16), segno: BigInt(`0x${m[2]}`) * perId + BigInt(`0x${m[3]}`) };
}

/**
 * Before pg_rewind: asks it (--dry-run) where the two diverged, and copies this node's WAL from the
 * segment holding that point on (its timelines from there, and the history files) into a folder
 * of its own. Returns the folder, or undefined when pg_rewind sees nothing to rewind.
 */
/**
 * pg_rewind --dry-run plans only on a cleanly shut down target (it finishes crash recovery itself
 * only when it rewinds for real), and single-user mode refuses a data directory with
 * standby.signal. So a crashed node (a lost primary, killed) finishes its crash recovery first here,
 * as pg_rewind would: `postgres --single`, which opens no listener, with standby.signal set aside
 * for that run only and put back whatever happens.
 */
async function finishCrashRecovery(node: LocalNode, log: Logger): Promise<void> {
  const { state } = await controlData(node, log);
  if (state === 'shut down' || state === 'shut down in recovery') return;
  const signal = path.join(node.cluster.dataDir, 'standby.signal');
  const aside = `${signal}.knocker-crash-recovery`;
  const hadSignal = await fs.rename(signal, aside).then(
    () => true,
    () => false,
  );
  try {
    const config = configFileOf(node);
    const args = ['--single', '-F', '-D', node.cluster.dataDir, ...(config ? ['-c', `config_file=${config}`] : []), 'template1'];
    await run(path.join(node.cluster.bin.dir, 'postgres'), args, { asUser: node.cluster.osUser, log, input: '', withoutPgEnv: true, timeoutMs: 3600_000 });
  } finally {
    if (hadSignal) await fs.rename(aside, signal);
  }
}

export async function keepWalPastDivergence(
  node: LocalNode,
  rewindArgs: string[],
  log: Logger,
): Promise<{ folder: string; diverged: string; files: number } | undefined> {
  await finishCrashRecovery(node, log);
  const dry = await run(path.join(node.cluster.bin.dir, 'pg_rewind'), [...rewindArgs.filter((a) => a !== '--progress'), '--dry-run'], {
    asUser: node.cluster.osUser,
    log,
    allowFailure: true,
    withoutPgEnv: true,
    timeoutMs: 600_000,
  });
  const outcome = rewindOutcome(`${dry.stdout}\n${dry.stderr}`);
  if (dry.exitCode !== 0) throw new Error(`pg_rewind --dry-run failed: ${`${dry.stdout}\n${dry.stderr}`.trim().split('\n').slice(-2).join(' / ')}`);
  if (!outcome.diverged || outcome.timeline === undefined) return undefined;
  const control = await run(path.join(node.cluster.bin.dir, 'pg_controldata'), ['-D', node.cluster.dataDir], {
    asUser: node.cluster.osUser,
    log,
    withoutPgEnv: true,
    env: { LC_ALL: 'C' },
  });
  const segmentBytes = Number(/^Bytes per WAL segment:\s+(\d+)/m.exec(control.stdout)?.[1] ?? 16 * 1024 * 1024);
  const from = lsn(outcome.diverged) / BigInt(segmentBytes);
  const walDir = path.join(node.cluster.dataDir, 'pg_wal');
  const folder = await keptName(node.cluster.dataDir, 'rewind-wal');
  await fs.mkdir(folder, { mode: 0o700 });
  let files = 0;
  for (const name of (await fs.readdir(walDir)).sort()) {
    const segment = segmentOf(name, segmentBytes);
    const wanted = segment ? segment.timeline >= outcome.timeline && segment.segno >= from : name.endsWith('.history');
    if (!wanted) continue;
    await fs.copyFile(path.join(walDir, name), path.join(folder, name));
    files += 1;
  }
  await fs.writeFile(
    path.join(folder, 'README.txt'),
    [
      `Kept by knocker standby rejoin on ${new Date().toISOString()}, before pg_rewind.`,
      `This node and the new primary diverged at WAL location ${outcome.diverged} on timeline ${outcome.timeline}.`,
      'These WAL files hold what this node wrote from there on: transactions the new primary never got.',
      `Read them with: pg_waldump --path=${folder} --start=${outcome.diverged} --timeline=${outcome.timeline}`,
      `Remove them once you no longer need them: rm -r ${folder}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  await fs.chown(folder, node.owner.uid, node.owner.gid);
  return { folder, diverged: outcome.diverged, files };
}
