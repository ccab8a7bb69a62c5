// Where the web nodes come from besides the command line (the servers registry in the shared
// database), and what HAProxy in front of them means for this host's own node: its
// TrustedForwarders must include the address HAProxy connects from, or every client would be
// logged as HAProxy.
import dgram from 'node:dgram';
import os from 'node:os';
import ipaddr from 'ipaddr.js';
import { parseListen, parseServerName, parseTrustedForwarders } from '../config/values.js';
import { quoted } from '../shared/printable.js';
import { knockerCommand } from '../shared/hint.js';
import { PreflightError, UsageError } from '../errors.js';
import { connect, describeConnectError, sourceAddressFor } from '../postgres/connect.js';
import { describeTarget, parseDatabaseUrl, type DatabaseUrl } from '../postgres/url.js';
import { TrustedForwarders } from '../server/client-address.js';
import { loadServerConfig, type ServerConfig } from '../server/config.js';
import { listServers } from '../server/registry.js';
import { PATHS, type Root } from '../system/root.js';
import { nodeAddress, reachableAddress, type HaproxyNode } from './config.js';

/** This host's own Knocknoc node, from its knocknoc.conf (undefined when there is none, or it does not load). */
export async function localNode(root: Root): Promise<ServerConfig | undefined> {
  const result = await loadServerConfig(root.path(PATHS.conf), os.hostname());
  return result.ok ? result.config : undefined;
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

/** An address of this host: loopback, or one of its interfaces. */
function isLocalAddress(host: string): boolean {
  if (!ipaddr.isValid(host)) return false;
  if (ipaddr.process(host).range() === 'loopback') return true;
  return Object.values(os.networkInterfaces()).some((list) => list?.some((i) => ipaddr.process(i.address).toString() === ipaddr.process(host).toString()));
}

/**
 * The web nodes registered in the shared database (table `servers`). A node registered with a
 * wildcard Listen (0.0.0.0:8756) has no address HAProxy could use, unless it is this host's own.
 */
export async function nodesFromRegistry(root: Root, conn: string | undefined): Promise<{ nodes: HaproxyNode[]; notes: string[] }> {
  const local = await localNode(root);
  let target: DatabaseUrl;
  if (conn !== undefined) {
    const parsed = parseDatabaseUrl(conn);
    if (!parsed.ok) throw new UsageError(`--conn: ${parsed.error}`);
    target = parsed.value;
  } else if (local) {
    target = local.databaseUrl;
  } else {
    throw new UsageError(
      `--from-registry reads the shared database: give its connection string with --conn URI, or run it on a node (none in ${root.path(PATHS.conf)})`,
    );
  }
  let client;
  try {
    client = await connect(target, { sourceAddress: local ? sourceAddressFor(local.listen.host, target.host) : undefined, connectTimeoutMs: 8_000 });
  } catch (error) {
    const problem = describeConnectError(error, target);
    throw new PreflightError(`cannot read the servers registry: ${problem.message}`, problem.hints);
  }
  try {
    const servers = await listServers(client).catch((error: Error) => {
      throw new PreflightError(`cannot read the servers registry of ${describeTarget(target)}: ${error.message}`, [
        'is it a Knocknoc database? (knocknoc-server creates the table when it first starts)',
      ]);
    });
    const nodes: HaproxyNode[] = [];
    const notes: string[] = [];
    const unusable: string[] = [];
    for (const server of servers) {
      // What the registry holds is data written by any node with the database's password.
      const name = parseServerName(server.name);
      if (!name.ok || name.value !== server.name) {
        unusable.push(
          `${quoted(server.name)}: HAProxy cannot take this name (${name.ok ? 'spaces around it' : name.error.replace(/^"[^"]*" is not a valid server name: /, '')}); rename that node (ServerName in its knocknoc.conf), or leave --from-registry out and name the nodes`,
        );
        continue;
      }
      const listen = parseListen(server.listen);
      if (!listen.ok) {
        unusable.push(`${server.name}: its Listen ${quoted(server.listen)} is not an address`);
        continue;
      }
      let host = listen.value.host;
      if (isWildcard(host)) {
        if (local?.serverName !== server.name) {
          unusable.push(`${server.name} listens on ${server.listen}, which says nothing of its address: give it as ${server.name}=HOST:${listen.value.port}`);
          continue;
        }
        host = reachableAddress(listen.value);
      }
      nodes.push({ name: server.name, host, port: listen.value.port, backup: false });
      notes.push(
        `${server.name} (${nodeAddress({ host, port: listen.value.port })}, ${server.state === 'stopped' ? 'stopped' : server.online ? 'online' : 'offline'}, ${server.version})`,
      );
    }
    if (unusable.length > 0) throw new UsageError('some registered servers have no usable address; nothing was changed', unusable);
    if (nodes.length === 0) throw new UsageError('the servers registry is empty: no web node has started on this database yet');
    return { nodes, notes };
  } finally {
    await client.end().catch(() => {});
  }
}

/** The local address this host's connections to `host` leave from (the kernel's routing choice). */
export function sourceAddressTo(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    socket.once('error', () => {
      socket.close();
      resolve(undefined);
    });
    // A UDP "connection" sends nothing: it only asks the kernel for the route.
    socket.connect(port, host, () => {
      const address = socket.address().address;
      socket.close();
      resolve(address);
    });
  });
}

export interface LocalNodeSettings {
  listen: string;
  trustedForwarders: string[];
  /** Where they are set, for the advice. */
  confFile: string;
  /** The root the advice's command runs in. */
  root: Root;
}

/**
 * Warnings for this host's own node among `nodes`: HAProxy connects to it from an address its
 * TrustedForwarders do not trust, so it would take HAProxy for the client.
 */
export async function forwarderWarnings(nodes: HaproxyNode[], local: LocalNodeSettings | undefined): Promise<string[]> {
  if (!local) return [];
  const listen = parseListen(local.listen);
  const trusted = parseTrustedForwarders(local.trustedForwarders);
  if (!listen.ok || !trusted.ok) return [];
  const forwarders = new TrustedForwarders(trusted.value);
  const warnings: string[] = [];
  for (const node of nodes) {
    const same = node.port === listen.value.port && (node.host === listen.value.host || (isWildcard(listen.value.host) && isLocalAddress(node.host)));
    if (!same) continue;
    const source = await sourceAddressTo(node.host, node.port);
    if (!source || forwarders.includes(ipaddr.process(source))) continue;
    const cidr = `${source}/${source.includes(':') ? 128 : 32}`;
    warnings.push(
      `${node.name} (${nodeAddress(node)}) is this host's Knocknoc node, and HAProxy reaches it from ${source}, which its TrustedForwarders (${trusted.value.join(', ')}) do not include: ` +
        `it would see HAProxy as the client of every request. Add ${cidr} to TrustedForwarders in ${local.confFile} (${knockerCommand(local.root, `install --trusted-forwarders ${[...trusted.value, cidr].join(',')}`)}).`,
    );
  }
  return warnings;
}
