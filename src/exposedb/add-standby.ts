// knocker exposedb --add-standby ADDR[:PORT]: what replication needs on this primary (the steps
// come from src/standby/primary.ts), and the bundle file for the standby's host, whose path is the
// result on stdout.
import { EXIT, UsageError } from '../errors.js';
import { parseIp } from '../config/values.js';
import { quoted } from '../shared/printable.js';
import type { Plan } from '../system/plan.js';
import { requireExposed, storedNodesUrl, type ChangeContext } from './context.js';

/** ADDR or ADDR:PORT ([v6]:PORT) of another host; the port defaults to `defaultPort`. */
export function checkPeerAddress(option: string, what: string, text: string, defaultPort: number): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text.trim()) ?? /^([^:]+)(?::(\d+))?$/.exec(text.trim()) ?? [text, text.trim(), undefined];
  const ip = parseIp(m[1] ?? '');
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (!ip.ok || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`${option}: ${quoted(text)} is not ADDRESS or ADDRESS:PORT of ${what}; nothing was changed`);
  }
  return { host: ip.value.toString(), port };
}

export async function addStandby(ctx: ChangeContext, typed: string): Promise<number> {
  const { root, io, log, cluster, link, names, facts, run } = ctx;
  requireExposed(ctx);
  const standby = checkPeerAddress('--add-standby', "the standby's host", typed, ctx.url.port);
  const nodesUrl = await storedNodesUrl(root);
  const { planAddStandby } = await import('../standby/primary.js');
  const prepared = await planAddStandby({ root, log, cluster, link, hbaFile: facts.hbaFile, database: names.database, tls: facts.ssl, standby, nodesUrl });
  const plan: Plan = { title: `Replication to a standby at ${standby.host}:${standby.port}`, steps: prepared.steps, warnings: prepared.warnings };
  let applied: boolean;
  try {
    const notes = [`${run.flags.dryRun ? 'Would prepare' : 'Preparing'} ${cluster.label} to feed a standby at ${standby.host}:${standby.port}:`];
    applied = await run.showOrApply(plan, { notes, details: { standby: `${standby.host}:${standby.port}`, bundle: prepared.bundle } });
  } finally {
    await prepared.close();
  }
  if (!applied) return EXIT.ok;
  io.err(`Copy this file (mode 0600: it holds the replication password and the standby's private key) to the standby's host, then run there:`);
  io.err(`  knocker standby init --bundle FILE`);
  io.out(prepared.bundle);
  return EXIT.ok;
}
