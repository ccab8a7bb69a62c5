// The bundle for the monitor host of an automatic pair (pg_auto_failover): `exposedb --add-monitor`
// makes it on the primary, `ha monitor --bundle` reads it on the monitor's host. It holds the
// monitor's server certificate from the cluster's CA (leaf + CA, SAN = the monitor's address), its
// private key, the CA, the data hosts allowed to reach the monitor, and autoctl_node's password.
// It is input from outside when read: checked field by field (as the standby's bundle is) before
// anything is written from it.
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import { generatePassword } from '../postgres/scram.js';
import { endpointProblems, readHostBundle, writeBundleWithCertificate } from '../standby/bundle.js';
import type { Endpoint } from '../standby/node.js';
import type { Logger } from '../system/log.js';
import type { Step } from '../system/plan.js';
import { PATHS, type Root } from '../system/root.js';

export interface MonitorBundle {
  version: 1;
  kind: 'pg_auto_failover monitor';
  monitor: Endpoint;
  /** The database hosts' addresses: the only ones let in to the monitor (hostssl, scram-sha-256). */
  dataHosts: string[];
  /** autoctl_node's password (the keepers' passfiles hold it too). */
  password: string;
  ca: string;
  certificate: string;
  key: string;
}

const KIND = 'pg_auto_failover monitor';
const KEYS = ['version', 'kind', 'monitor', 'dataHosts', 'password', 'ca', 'certificate', 'key'];
const CONTROL = /[\u0000-\u001f\u007f]/;

export function monitorBundleFile(root: Root, address: string): string {
  return root.path(`/opt/knocknoc/etc/monitor-${address.replace(/[^A-Za-z0-9.]/g, '_')}.json`);
}

/** What is wrong with a parsed monitor bundle, field by field (empty: nothing). */
export function monitorBundleProblems(bundle: unknown): string[] {
  if (typeof bundle !== 'object' || bundle === null || Array.isArray(bundle)) return ['not a JSON object'];
  const b = bundle as Record<string, unknown>;
  if (b.version !== 1) return [`version ${JSON.stringify(b.version)}: this knocker reads monitor bundles of version 1 only`];
  const problems: string[] = [];
  for (const key of Object.keys(b)) if (!KEYS.includes(key)) problems.push(`${key}: unknown field`);
  if (b.kind !== KIND) problems.push(`kind: not ${JSON.stringify(KIND)}: ${JSON.stringify(b.kind)}`);
  problems.push(...endpointProblems('monitor', b.monitor));
  if (!Array.isArray(b.dataHosts) || b.dataHosts.length === 0 || b.dataHosts.length > 8) problems.push('dataHosts: not a list of 1 to 8 IP addresses');
  else
    for (const [i, h] of b.dataHosts.entries())
      if (typeof h !== 'string' || !net.isIP(h)) problems.push(`dataHosts[${i}]: not an IP address: ${JSON.stringify(h)}`);
  if (typeof b.password !== 'string' || b.password.length < 22 || b.password.length > 1024 || CONTROL.test(b.password) || /[:\\]/.test(b.password))
    problems.push('password: not a password knocker made (22 to 1024 characters, no control characters, no : or \\)');
  for (const field of ['ca', 'certificate', 'key']) if (typeof b[field] !== 'string') problems.push(`${field}: missing`);
  return problems;
}

/** Reads and checks the bundle: refused when others can read it, invalid (exit 2), or for another host (exit 3). */
export function readMonitorBundle(file: string): Promise<MonitorBundle> {
  return readHostBundle<MonitorBundle>(file, {
    noun: 'monitor bundle of knocker exposedb --add-monitor',
    holds: "autoctl_node's password and the monitor's private key",
    hints: {
      make: 'make it on the primary with knocker exposedb --add-monitor ADDR, and copy it to this host',
      remake: 'make a new one on the primary (knocker exposedb --add-monitor ADDR again)',
    },
    problems: monitorBundleProblems,
    hostOf: (bundle) => bundle.monitor.host,
    elsewhere: (host) => `run knocker ha monitor on ${host}, or on the primary make a bundle for this host: knocker exposedb --add-monitor ADDR`,
  });
}

/** On the primary: the step that issues the monitor's certificate and writes its bundle (0600). */
export function monitorBundleStep(root: Root, file: string, parts: { monitor: Endpoint; dataHosts: string[] }, log: Logger): Step {
  return {
    kind: 'file',
    title: `Create ${file} (mode 0600): for the monitor's host, with autoctl_node's password and a certificate for ${parts.monitor.host} from the cluster's CA`,
    details: [
      `openssl: a server certificate for ${parts.monitor.host}, signed by ${root.path(PATHS.clusterCaCert)}`,
      `data hosts let in: ${parts.dataHosts.join(', ')}`,
    ],
    changes: true,
    async apply() {
      const password = generatePassword();
      log.addSecret(password);
      const ca = await fs.readFile(root.path(PATHS.clusterCaCert), 'utf8');
      await writeBundleWithCertificate(root, file, parts.monitor.host, { version: 1, kind: KIND, ...parts, password, ca }, log);
    },
    async undo() {
      await fs.rm(file, { force: true });
    },
  };
}

/**
 * The standby's part of an automatic pair, made by `ha adopt` on the primary once it is adopted
 * and read by `ha adopt --bundle` on the standby: the monitor's address, autoctl_node's and
 * pgautofailover_replicator's passwords, the cluster's CA. Not the monitor's key: the standby has
 * its own certificate already (knocker standby init).
 */
export interface DataHostBundle {
  version: 1;
  kind: 'pg_auto_failover data host';
  monitor: Endpoint;
  /** The host this bundle is for (the standby) and the primary that made it. */
  node: Endpoint;
  primary: Endpoint;
  monitorPassword: string;
  replicationPassword: string;
  ca: string;
}

const DATA_KIND = 'pg_auto_failover data host';
const DATA_KEYS = ['version', 'kind', 'monitor', 'node', 'primary', 'monitorPassword', 'replicationPassword', 'ca'];

export function dataHostBundleFile(root: Root, address: string): string {
  return root.path(`/opt/knocknoc/etc/ha-node-${address.replace(/[^A-Za-z0-9.]/g, '_')}.json`);
}

const passwordProblem = (field: string, value: unknown): string[] =>
  typeof value !== 'string' || value.length < 22 || value.length > 1024 || CONTROL.test(value) || /[:\\]/.test(value)
    ? [`${field}: not a password knocker made (22 to 1024 characters, no control characters, no : or \\)`]
    : [];

/** What is wrong with a parsed data-host bundle, field by field (empty: nothing). */
export function dataHostBundleProblems(bundle: unknown): string[] {
  if (typeof bundle !== 'object' || bundle === null || Array.isArray(bundle)) return ['not a JSON object'];
  const b = bundle as Record<string, unknown>;
  if (b.version !== 1) return [`version ${JSON.stringify(b.version)}: this knocker reads data-host bundles of version 1 only`];
  const problems: string[] = [];
  for (const key of Object.keys(b)) if (!DATA_KEYS.includes(key)) problems.push(`${key}: unknown field`);
  if (b.kind !== DATA_KIND) problems.push(`kind: not ${JSON.stringify(DATA_KIND)}: ${JSON.stringify(b.kind)}`);
  problems.push(...endpointProblems('monitor', b.monitor), ...endpointProblems('node', b.node), ...endpointProblems('primary', b.primary));
  problems.push(...passwordProblem('monitorPassword', b.monitorPassword), ...passwordProblem('replicationPassword', b.replicationPassword));
  try {
    const ca = new X509Certificate(String(b.ca));
    if (!ca.ca) problems.push('ca: not a CA certificate');
  } catch {
    problems.push('ca: not a PEM certificate');
  }
  return problems;
}

export function readDataHostBundle(file: string): Promise<DataHostBundle> {
  return readHostBundle<DataHostBundle>(file, {
    noun: 'data-host bundle of knocker ha adopt',
    holds: "autoctl_node's and pgautofailover_replicator's passwords",
    hints: {
      make: 'run knocker ha adopt on the primary: it prints this file; copy it to this host',
      remake: "change the two roles' passwords (knocker ha adopt on the primary writes them once)",
    },
    problems: dataHostBundleProblems,
    hostOf: (bundle) => bundle.node.host,
    elsewhere: (host) => `run knocker ha adopt --bundle FILE on ${host}`,
    pem: false,
  });
}
