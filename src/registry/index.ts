// `knocker server list|forget`: the registry of web nodes in the shared database, as an operator
// manages it. A server stopped or gone for good stays listed (status degraded, the upgrade
// refusing) until it is retired here: its row goes, and so does its node in this host's HAProxy.
import os from 'node:os';
import type pg from 'pg';
import { PreflightError, UsageError } from '../errors.js';
import { haproxyRemove, type ChangeOptions } from '../haproxy/index.js';
import { inspectHaproxy } from '../haproxy/plan.js';
import { knockerCommand, shellWord } from '../shared/hint.js';
import { printableLine } from '../shared/printable.js';
import type { Output } from '../shared/output.js';
import { connect, describeConnectError, sourceAddressFor } from '../postgres/connect.js';
import { describeTarget } from '../postgres/url.js';
import { loadServerConfig } from '../server/config.js';
import { forgetServer, listServers, type RegisteredServer } from '../server/registry.js';
import { fileLogger } from '../system/log.js';
import { PATHS, type Root } from '../system/root.js';
import { age } from '../system/units.js';

/** Runs `work` on a connection to the database of this root's knocknoc.conf, from this node's address. */
async function withRegistry<T>(root: Root, work: (client: pg.Client, target: string) => Promise<T>): Promise<T> {
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

function secondsSince(date: Date): number {
  return (Date.now() - date.getTime()) / 1000;
}

export async function serverList(root: Root, options: { json: boolean }, io: Output): Promise<number> {
  const servers = await withRegistry(root, (client) => listServers(client));
  if (options.json) {
    io.out(
      JSON.stringify(
        servers.map((s) => ({ name: s.name, listen: s.listen, state: stateWord(s), version: s.version, schemaVersion: s.schemaVersion, lastSeen: s.lastSeen.toISOString(), startedAt: s.startedAt.toISOString() })),
        null,
        2,
      ),
    );
    return 0;
  }
  if (servers.length === 0) {
    io.out('No server is registered in this database yet.');
    return 0;
  }
  // Any holder of the nodes' role can write a row: each cell is shown on one line, escaped.
  const rows = [['NAME', 'LISTEN', 'STATE', 'VERSION', 'LAST SEEN'], ...servers.map((s) => [printableLine(s.name), printableLine(s.listen), stateWord(s), printableLine(s.version), `${age(secondsSince(s.lastSeen))} ago`])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows) io.out(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
  const gone = servers.filter((s) => stateWord(s) !== 'online');
  if (gone.length > 0) io.out(`A server gone for good is retired with: ${knockerCommand(root, `server forget ${shellWord(printableLine(gone[0]!.name))}`)}`);
  return 0;
}

export interface ForgetOptions extends ChangeOptions {
  force: boolean;
}

/**
 * Takes a server out of the registry (and out of this host's HAProxy when it is a node there).
 * An online server is refused without --force: while it runs, it registers again at its next heartbeat.
 */
export async function serverForget(root: Root, given: string, options: ForgetOptions, io: Output): Promise<number> {
  const haproxy = await inspectHaproxy(root);
  // A name as `server list` shows it (escaped) names the row too; messages and the log show it on one line.
  const inHaproxy = haproxy.existing.kind === 'knocker' && haproxy.existing.settings.nodes.some((n) => n.name === given);
  return withRegistry(root, async (client, target) => {
    const servers = await listServers(client).catch((error: Error) => {
      throw new PreflightError(`cannot read the servers registry of ${target}: ${error.message}`);
    });
    const server = servers.find((s) => s.name === given) ?? servers.find((s) => printableLine(s.name) === given);
    const raw = server?.name ?? given;
    const name = printableLine(raw);
    if (!server && !inHaproxy) {
      throw new UsageError(`no server "${name}" in the registry of ${target}; nothing was changed`, [], [
        servers.length > 0 ? `the servers are: ${servers.map((s) => printableLine(s.name)).join(', ')} (${knockerCommand(root, 'server list')})` : 'the registry is empty',
      ]);
    }
    if (server && server.online && !options.force) {
      throw new PreflightError(`"${name}" is online (at ${printableLine(server.listen)}, heard from ${age(secondsSince(server.lastSeen))} ago); nothing was changed`, [
        'stop it on its own host first (knocker service stop server there): a running server registers again at its next heartbeat',
        `to retire it anyway: ${knockerCommand(root, `server forget ${shellWord(name)} --force`)}`,
      ]);
    }
    const what = server ? `${printableLine(server.listen)}, ${stateWord(server)}, last seen ${server.lastSeen.toISOString()}, version ${printableLine(server.version)}` : 'not in the registry';
    if (options.dryRun) {
      const plan = {
        dryRun: true,
        root: root.dir,
        server: raw,
        registry: server ? `delete the row of "${name}" (${what})` : null,
        haproxy: inHaproxy ? `remove node ${name} from ${haproxy.service.paths.conf}` : null,
      };
      if (options.json) io.out(JSON.stringify(plan, null, 2));
      else {
        io.out(`Plan: retire "${name}"`);
        if (plan.haproxy) io.out(`  - HAProxy: ${plan.haproxy} (checked with haproxy -c, then reloaded)`);
        if (plan.registry) io.out(`  - registry of ${target}: ${plan.registry}`);
        io.out('Dry run: nothing was changed.');
      }
      return 0;
    }
    const log = fileLogger(root.path(PATHS.opsLog));
    // HAProxy first: a configuration that cannot be changed leaves the registry as it was.
    if (inHaproxy) {
      io.out(`Taking ${name} out of this host's HAProxy:`);
      const code = await haproxyRemove(root, [raw], { dryRun: false, json: false }, io);
      if (code !== 0) return code;
      log.info(`server forget ${name}: removed from HAProxy (${haproxy.service.paths.conf})`);
    }
    if (server) {
      await forgetServer(client, raw);
      log.info(`server forget ${name}: deleted from the registry of ${target} (was ${what})${server.online ? ' with --force while online' : ''}`);
      io.out(`Removed "${name}" from the registry of ${target} (it was ${stateWord(server)}, last seen ${age(secondsSince(server.lastSeen))} ago).`);
      if (server.online) io.out(`warning: "${name}" was online: while it runs it registers again at its next heartbeat`);
    }
    io.out(`Logged in ${root.path(PATHS.opsLog)}.`);
    return 0;
  });
}
