// A primary for exposedb tests: a sandbox root installed with database option 1 (a private
// cluster listening on the root's own loopback address), and ways to look at it from outside.
import { adoptedAddress } from '../../src/ha/node-state.js';
import fs from 'node:fs/promises';
import { expect } from 'vitest';
import { KnocknocConf } from '../../src/config/knocknoc-conf.js';
import { withAdminSession } from '../../src/postgres/admin.js';
import { clusterOwner, readClusterSettings } from '../../src/postgres/cluster.js';
import { parseDatabaseUrl, type DatabaseUrl } from '../../src/postgres/url.js';
import { freePort } from '../../src/system/host.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { knocker } from './knocker.js';
import { snapshotTree, type TreeEntry } from './roots.js';

export function url(text: string | undefined): DatabaseUrl {
  const parsed = parseDatabaseUrl(text ?? '');
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

/** Installs Knocknoc with a private cluster on `root`, listening on `address`. */
export async function installPrimary(root: Root, address: string): Promise<void> {
  const result = await knocker(['install', '--root', root.dir, '--listen', `${address}:${await freePort(address)}`]);
  expect(result.stdout, result.stderr).toBe('');
  expect(result.exitCode).toBe(0);
}

/** The root's DatabaseURL (the app role's connection string). */
export async function appUrl(root: Root): Promise<DatabaseUrl> {
  return url(KnocknocConf.parse(await fs.readFile(root.path(PATHS.conf), 'utf8')).get('DatabaseURL'));
}

/** SQL as the superuser of the root's private cluster. */
export async function rootAdmin<T = Record<string, unknown>>(root: Root, sql: string, values: unknown[] = []): Promise<T[]> {
  const settings = (await readClusterSettings(root.path(PATHS.pgData), await adoptedAddress(root)))!;
  const access = { socketDir: root.path(PATHS.pgSocketDir), port: settings.port, osUser: await clusterOwner() };
  return withAdminSession(access, undefined, async (session) => (await session.query<T>(sql, values)).rows);
}

/** The cluster's CA that `exposedb --init` made on a primary (the nodes verify the primary with it). */
export async function clusterCa(root: Root): Promise<string> {
  return fs.readFile(root.path(PATHS.clusterCaCert), 'utf8');
}

/** How another "host" connects to a primary with the printed string: from its loopback address, verifying with the cluster's CA. */
export async function asNode(primary: Root, sourceAddress: string): Promise<{ sourceAddress: string; ca: string }> {
  return { sourceAddress, ca: await clusterCa(primary) };
}

export function hbaFile(root: Root): string {
  return root.path(`${PATHS.pgData}/pg_hba.conf`);
}

/** What exposedb may change in a root: knocknoc's files, pg_hba.conf, postgresql.auto.conf. */
export async function exposedState(root: Root): Promise<{ opt: Map<string, TreeEntry>; hba: string; autoConf: string }> {
  return {
    opt: await snapshotTree(root.path('/opt')),
    hba: await fs.readFile(hbaFile(root), 'utf8'),
    autoConf: await fs.readFile(root.path(`${PATHS.pgData}/postgresql.auto.conf`), 'utf8'),
  };
}
