// A sandbox cluster for the dashboard: real knocknoc-server nodes on loopback "hosts" sharing one
// database, a sandbox root that is the first node's host (its knocknoc.conf, so `knocker status`
// finds the database as it would on a real node), and knocker's HAProxy in front of them.
import fs from 'node:fs/promises';
import path from 'node:path';
import { PATHS, type Root } from '../../src/system/root.js';
import { setupHaproxy, type Haproxy } from './haproxy.js';
import { startServer, type ServerNode } from './server.js';

export interface StatusCluster {
  nodes: ServerNode[];
  root: Root;
  haproxy: Haproxy;
}

export async function startStatusCluster(options: {
  root: Root;
  hosts: string[];
  haproxyHost: string;
  databaseUrl: string;
  bin?: string;
}): Promise<StatusCluster> {
  const nodes = await Promise.all(
    options.hosts.map((host, i) =>
      startServer({ host, databaseUrl: options.databaseUrl, name: `web-${i + 1}`, trustedForwarders: '127.0.0.0/8', bin: options.bin }),
    ),
  );
  const { root } = options;
  await fs.mkdir(path.dirname(root.path(PATHS.conf)), { recursive: true });
  await fs.copyFile(nodes[0]!.confFile!, root.path(PATHS.conf));
  const haproxy = await setupHaproxy(root, options.haproxyHost, nodes);
  return { nodes, root, haproxy };
}

/** The line of a server in a frame of the servers table. */
export function rowOf(frame: string, name: string): string {
  return frame.split('\n').find((line) => new RegExp(`^[❯ ] [✔!✗] ${name} `).test(line)) ?? '';
}

/** The servers in the order the table lists them. */
export function rowOrder(frame: string): string[] {
  return frame
    .split('\n')
    .map((line) => /^[❯ ] [✔!✗] (\S+) /.exec(line)?.[1])
    .filter((name): name is string => name !== undefined);
}
