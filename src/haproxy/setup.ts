// `knocker haproxy setup`: the configuration for these web nodes (given, from the servers registry,
// or those in place), its listen addresses and TLS, written and HAProxy started or reloaded.
import { formatListen, type ListenAddress } from '../config/values.js';
import { UsageError } from '../errors.js';
import type { Output } from '../shared/output.js';
import { freePort } from '../system/host.js';
import type { Root } from '../system/root.js';
import { applyChange, listenOption, nodesOption } from './change.js';
import { addressOf, DEFAULT_HTTP_PORT, DEFAULT_HTTPS_PORT, DEFAULT_METRICS_PORT, haproxyWordProblem, isLoopbackHost, type HaproxyNode } from './config.js';
import { nodesFromRegistry } from './nodes.js';

export interface SetupOptions {
  nodes: string[];
  backup: string[];
  fromRegistry: boolean;
  conn?: string;
  bind?: string;
  /** An absolute path; false: back to plain HTTP. */
  cert?: string | false;
  httpBind?: string;
  /** false: no Prometheus exporter (--no-metrics). */
  metrics?: boolean;
  metricsBind?: string;
  dryRun: boolean;
  json: boolean;
}

export async function haproxySetup(root: Root, options: SetupOptions, io: Output): Promise<number> {
  const given = nodesOption(options.nodes, options.backup);
  const certProblem = typeof options.cert === 'string' ? haproxyWordProblem(options.cert) : undefined;
  if (certProblem) throw new UsageError(`--cert: ${certProblem}; nothing was changed`, [], ['move or link the PEM file to a path without them']);
  const bind = options.bind === undefined ? undefined : listenOption('--bind', options.bind);
  const httpBind = options.httpBind === undefined ? undefined : listenOption('--http-bind', options.httpBind);
  if (options.metrics === false && options.metricsBind !== undefined) throw new UsageError('--metrics-bind and --no-metrics ask for two things: give one');
  const metricsBind = options.metricsBind === undefined ? undefined : listenOption('--metrics-bind', options.metricsBind);
  let registry: HaproxyNode[] = [];
  const notes: string[] = [];
  if (metricsBind && !isLoopbackHost(metricsBind.host)) {
    notes.push(
      `warning: HAProxy's Prometheus exporter on ${formatListen(metricsBind)} has no authentication: whoever reaches it reads the nodes' names, states and counters (allow only your Prometheus server there)`,
    );
  }
  if (options.fromRegistry) {
    const found = await nodesFromRegistry(root, options.conn);
    // A node also given on the command line is taken as given there (its address, or as a backup).
    registry = found.nodes.filter((n) => !given.some((g) => g.name === n.name));
    notes.push(`From the servers registry: ${found.notes.join(', ')}`);
  } else if (options.conn !== undefined) {
    throw new UsageError('--conn goes with --from-registry');
  }
  return applyChange(
    root,
    {
      title: 'knocker haproxy setup',
      startIfStopped: true,
      notes,
      async settings(facts) {
        const existing = facts.existing.kind === 'knocker' ? facts.existing.settings : undefined;
        let nodes = [...registry, ...given];
        if (nodes.length === 0 && !options.fromRegistry) {
          if (!existing) throw new UsageError('which web nodes? Give them as NAME=HOST:PORT (or --from-registry); nothing was changed');
          nodes = existing.nodes;
        }
        const cert = options.cert === false ? undefined : (options.cert ?? existing?.tls?.cert);
        if (httpBind && !cert) throw new UsageError('--http-bind goes with --cert: without TLS there is nothing to redirect to');
        let listenOn: ListenAddress;
        if (bind) listenOn = bind;
        else if (existing && Boolean(existing.tls) === Boolean(cert)) listenOn = existing.bind;
        // TLS dropped: plain HTTP is served where the redirect was.
        else if (existing?.tls && !cert) listenOn = existing.tls.httpBind;
        else listenOn = addressOf(existing?.bind.host ?? '0.0.0.0', cert ? DEFAULT_HTTPS_PORT : DEFAULT_HTTP_PORT);
        // TLS added: the redirect takes over where plain HTTP was served.
        const redirectFrom = httpBind ?? existing?.tls?.httpBind ?? (existing && !existing.tls ? existing.bind : addressOf(listenOn.host, DEFAULT_HTTP_PORT));
        const metrics = options.metrics === false ? undefined : (metricsBind ?? existing?.metrics ?? (await defaultMetricsBind(root, listenOn)));
        return {
          bind: listenOn,
          ...(cert ? { tls: { cert, httpBind: redirectFrom } } : {}),
          nodes,
          ...(metrics ? { metrics } : {}),
        };
      },
    },
    options,
    io,
  );
}

/**
 * Where the Prometheus exporter listens unless told: 127.0.0.1:8405 on a real host; under a sandbox
 * root (several on one machine, CONTRACTS.md) a free port on the loopback address HAProxy binds, or
 * 127.0.0.1.
 */
async function defaultMetricsBind(root: Root, bind: ListenAddress): Promise<ListenAddress> {
  if (!root.isSandbox) return addressOf('127.0.0.1', DEFAULT_METRICS_PORT);
  const host = isLoopbackHost(bind.host) && bind.family === 4 ? bind.host : '127.0.0.1';
  return addressOf(host, await freePort(host));
}
