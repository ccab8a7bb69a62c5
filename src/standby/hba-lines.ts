// The replication lines of pg_hba.conf for the peer host: physical replication (pg_basebackup, the
// walreceiver) and a normal connection to database postgres (pg_rewind, and knocker's own checks,
// promote and CHECKPOINT across the pair), SCRAM only, TLS only when the cluster has TLS.
import net from 'node:net';
import { APP_ROLE } from '../installer/database.js';
import { remoteRoleName } from '../postgres/allow-list.js';
import { hbaName } from '../postgres/hba.js';
import { REPLICATION_ROLE } from './paths.js';

function cidrOf(host: string): string {
  return net.isIPv6(host) ? `${host}/128` : `${host}/32`;
}

/**
 * `sandbox`: on one machine every 127.0.0.x "host" is loopback, and libpq has no source-address
 * option, so pg_basebackup, the walreceiver and pg_rewind arrive from 127.0.0.1 whatever address
 * they go to. A sandbox root with loopback peers therefore also allows 127.0.0.1 (and says why).
 */
export function hbaLinesFor(peers: string[], tls: boolean, sandbox: boolean, nodes?: PairNodes): string[] {
  const type = (tls ? 'hostssl' : 'host').padEnd(7);
  const role = hbaName(REPLICATION_ROLE);
  const sources = [...peers];
  const loopback = sandbox && peers.some((p) => p.startsWith('127.'));
  if (loopback && !sources.includes('127.0.0.1')) sources.push('127.0.0.1');
  return [
    `# The standby's replication (knocker standby): ${role} from the peer host only.`,
    ...(loopback ? ['# 127.0.0.1: libpq tools connect from it on a one-machine sandbox (no source-address option).'] : []),
    ...sources.flatMap((host) => [
      `${type}  replication  ${role}  ${cidrOf(host)}  scram-sha-256`,
      `${type}  postgres  ${role}  ${cidrOf(host)}  scram-sha-256`,
    ]),
    `host     replication  ${role}  0.0.0.0/0  reject`,
    `host     replication  ${role}  ::/0  reject`,
    `host     all  ${role}  0.0.0.0/0  reject`,
    `host     all  ${role}  ::/0  reject`,
    ...(nodes ? nodeLinesFor(nodes, type) : []),
  ];
}

/** The web nodes on the pair's own hosts: whichever host is the primary, the nodes of both reach it. */
export interface PairNodes {
  /** Both hosts of the pair (this one and the peer). */
  hosts: string[];
  database: string;
  /** The app role (a node installed with the database here) and the other nodes' role (one installed with option 3). */
  roles: string[];
}

/** The pair's web nodes: a node installed with the database on its host (the app role) or with option 3 (the other nodes' role). */
export function pairNodes(hosts: string[], database: string): PairNodes {
  return { hosts, database, roles: [APP_ROLE, remoteRoleName(database)] };
}

function nodeLinesFor(nodes: PairNodes, type: string): string[] {
  const database = hbaName(nodes.database);
  return [
    `# The web nodes on the pair's two hosts (knocker standby): ${nodes.roles.map(hbaName).join(', ')} from these hosts only.`,
    ...[...new Set(nodes.hosts)].flatMap((host) => nodes.roles.map((r) => `${type}  ${database}  ${hbaName(r)}  ${cidrOf(host)}  scram-sha-256`)),
  ];
}
