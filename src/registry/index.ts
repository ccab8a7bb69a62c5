// `knocker server list|forget`: the registry of web nodes in the shared database, as an operator
// manages it. A server stopped or gone for good stays listed (status degraded, the upgrade
// refusing) until it is retired (forget.ts): its row goes, and so does its node in this host's
// HAProxy. Here: what both actions share, the connection to the registry and a server's state word.
import os from 'node:os';
import type pg from 'pg';
import { PreflightError } from '../errors.js';
import { knockerCommand } from '../shared/hint.js';
import { connect, describeConnectError, sourceAddressFor } from '../postgres/connect.js';
import { describeTarget } from '../postgres/url.js';
import { loadServerConfig } from '../server/config.js';
import type { RegisteredServer } from '../server/registry.js';
import { PATHS, type Root } from '../system/root.js';

/** Runs `work` on a connection to the database of this root's knocknoc.conf, from this node's address. */
export async function withRegistry<T>(root: Root, work: (client: pg.Client, target: string) => Promise<T>): Promise<T> {
  const file = root.path(PATHS.conf);
  const loaded = await loadServerConfig(file, os.hostname(), `run \`${knockerCommand(root, 'install')}\` to write it`);
  if (!loaded.ok) {
    throw new PreflightError(`cannot tell which database holds the registry: ${loaded.problems[0] ?? `${file} does not load`}`, [
      `the registry is in the database of DatabaseURL in ${file}: run this on a web node (or point --root at one)`,
    ]);
  }
  const { config } = loaded;
  const target = describeTarget(config.databaseUrl);
  let client: pg.Client;
  try {
    client = await connect(config.databaseUrl, {
      sourceAddress: sourceAddressFor(config.listen.host, config.databaseUrl.host),
      connectTimeoutMs: 8_000,
      applicationName: 'knocker server',
    });
  } catch (error) {
    const problem = describeConnectError(error, config.databaseUrl);
    throw new PreflightError(`cannot reach the database: ${problem.message}`, problem.hints);
  }
  try {
    return await work(client, target);
  } finally {
    await client.end().catch(() => {});
  }
}

/** One word for a registered server: online, offline (running but silent) or stopped. */
export function stateWord(server: RegisteredServer): 'online' | 'offline' | 'stopped' {
  return server.state === 'stopped' ? 'stopped' : server.online ? 'online' : 'offline';
}

export function secondsSince(date: Date): number {
  return (Date.now() - date.getTime()) / 1000;
}
