// knocker exposedb --add-monitor ADDR[:PORT]: the bundle for the monitor host of an automatic pair
// (pg_auto_failover, README "Automatic failover (three hosts)"): its certificate from the cluster's
// CA, autoctl_node's password, the data hosts it lets in. Its path is the result on stdout.
import { EXIT, PreflightError } from '../errors.js';
import { monitorBundleFile, monitorBundleStep } from '../ha/bundle.js';
import { readState } from '../standby/node.js';
import { readIfExists } from '../system/files.js';
import type { Plan } from '../system/plan.js';
import { PATHS } from '../system/root.js';
import { checkPeerAddress } from './add-standby.js';
import { requireExposed, storedNodesUrl, type ChangeContext } from './context.js';

/** The port a monitor listens on unless told: PostgreSQL's own. */
export const MONITOR_PORT = 5432;

export async function addMonitor(ctx: ChangeContext, typed: string): Promise<number> {
  const { root, io, log, cluster, run } = ctx;
  requireExposed(ctx);
  const monitor = checkPeerAddress('--add-monitor', "the monitor's host", typed, MONITOR_PORT);
  const nodesUrl = await storedNodesUrl(root);
  const self = cluster.address ?? (nodesUrl ? new URL(nodesUrl).hostname.replace(/^\[|\]$/g, '') : undefined);
  if (!self) throw new PreflightError('cannot tell the address the monitor sees this primary at', ['run knocker exposedb --init (with --host ADDR) first']);
  if (!ctx.facts.ssl || !(await readIfExists(root.path(PATHS.clusterCaKey)))) {
    throw new PreflightError("the monitor is verified with the cluster's CA, which this primary does not have yet (or PostgreSQL has ssl off)", [
      'run knocker exposedb --init first',
    ]);
  }
  if (monitor.host === self)
    throw new PreflightError(`${monitor.host} is this primary's own address`, ['the monitor runs on the third host, which holds no database']);
  const peer = (await readState(root))?.peer.host;
  if (peer === monitor.host)
    throw new PreflightError(`${monitor.host} is this pair's standby`, ['the monitor runs on the third host, which holds no database']);
  const dataHosts = [self, ...(peer ? [peer] : [])];
  const file = monitorBundleFile(root, monitor.host);
  const plan: Plan = {
    title: `A monitor for automatic failover at ${monitor.host}:${monitor.port}`,
    steps: [monitorBundleStep(root, file, { monitor, dataHosts }, log)],
    warnings: [],
  };
  const applied = await run.showOrApply(plan, { details: { monitor: `${monitor.host}:${monitor.port}`, dataHosts, bundle: file } });
  if (!applied) return EXIT.ok;
  io.err("Copy this file (mode 0600: it holds autoctl_node's password and the monitor's private key) to the monitor's host, then run there:");
  io.err('  knocker ha monitor --bundle FILE');
  io.out(file);
  return EXIT.ok;
}
