// Sandbox roots for tests: a temporary folder per "host", and a cleanup that stops whatever an
// install started in it (its private PostgreSQL cluster, daemons with pid files) before removing it.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach } from 'vitest';
import { clusterExists, clusterOwner, findPgBinaries, stopCluster } from '../../src/postgres/cluster.js';
import { PATHS, Root } from '../../src/system/root.js';
import { makeTempDir } from './temp.js';

export async function makeRoot(): Promise<Root> {
  return new Root(await makeTempDir('knocker-root-'));
}

async function killPidFiles(dir: string): Promise<void> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      await killPidFiles(file);
    } else if (entry.name.endsWith('.pid')) {
      const pid = Number((await fs.readFile(file, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 1) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  }
}

export async function destroyRoot(root: Root): Promise<void> {
  const dataDir = root.path(PATHS.pgData);
  if (await clusterExists(dataDir)) {
    const bin = await findPgBinaries();
    if (bin) await stopCluster({ bin, dataDir, osUser: await clusterOwner() }, undefined, 'immediate').catch(() => {});
  }
  await killPidFiles(root.path('/run'));
  await fs.rm(root.dir, { recursive: true, force: true });
}

export interface TreeEntry {
  mode: number;
  hash: string;
}

/** Every path under `dir` with its mode and a hash of its content, to prove nothing changed. */
export async function snapshotTree(dir: string, options: { live?: (relative: string) => boolean } = {}): Promise<Map<string, TreeEntry>> {
  const result = new Map<string, TreeEntry>();
  const walk = async (current: string) => {
    const entries = await fs.readdir(current, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const file = path.join(current, entry.name);
      // Files a running program (PostgreSQL's WAL, a server's log) changes by itself: not knocker's to keep still.
      if (options.live?.(path.relative(dir, file))) continue;
      const stat = await fs.lstat(file);
      const hash = entry.isFile()
        ? crypto
            .createHash('sha256')
            .update(await fs.readFile(file))
            .digest('hex')
        : entry.isDirectory()
          ? 'dir'
          : 'other';
      result.set(path.relative(dir, file), { mode: stat.mode, hash });
      if (entry.isDirectory()) await walk(file);
    }
  };
  await walk(dir);
  return result;
}

/** A `newRoot()` for a test file: every root it makes is destroyed after each test. */
export function useRoots(): () => Promise<Root> {
  const roots: Root[] = [];
  afterEach(async () => {
    await Promise.all(roots.splice(0).map(destroyRoot));
  });
  return async () => {
    const root = await makeRoot();
    roots.push(root);
    return root;
  };
}
