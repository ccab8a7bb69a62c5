// What setup, add and remove share: one change of the configuration, inspected, checked and planned
// (checked with `haproxy -c`, replaced atomically with a backup, then a reload that keeps DRAIN and
// MAINT), then shown (--dry-run) or applied by the house's runner. stdout gets the configuration
// now in place, as `knocker haproxy list` prints it; progress, notes and hints go to stderr.
import { formatListen, parseListen, type ListenAddress } from '../config/values.js';
import { UsageError } from '../errors.js';
import { PreflightFailed, type Check } from '../shared/checks.js';
import type { Output } from '../shared/output.js';
import type { Logger } from '../system/log.js';
import type { Plan } from '../system/plan.js';
import { PATHS, type Root } from '../system/root.js';
import { withRun } from '../system/runner.js';
import { parseNodes, settingsProblems, type HaproxyNode, type HaproxySettings } from './config.js';
import { forwarderWarnings, localNode } from './nodes.js';
import { describeSettings, haproxyChecks, haproxySteps, inspectHaproxy, type HaproxyFacts } from './plan.js';

export interface ChangeOptions {
  dryRun: boolean;
  json: boolean;
}

export interface Change {
  title: string;
  /** setup starts a stopped HAProxy; add and remove only change its configuration. */
  startIfStopped: boolean;
  /** The settings wanted, from what is in place now. */
  settings(facts: HaproxyFacts): Promise<HaproxySettings> | HaproxySettings;
  /** What the operator is told first (where the nodes came from). */
  notes?: string[];
}

export interface PlannedChange {
  plan: Plan;
  checks: Check[];
  settings: HaproxySettings;
  /** Whether HAProxy was running when the change was planned. */
  running: boolean;
}

export function listenOption(flag: string, text: string): ListenAddress {
  const parsed = parseListen(text);
  if (!parsed.ok) throw new UsageError(`${flag}: ${parsed.error}; nothing was changed`);
  return parsed.value;
}

/** Nodes given as NAME=HOST:PORT (active) and with --backup; a usage error naming every bad one. */
export function nodesOption(active: string[], backup: string[]): HaproxyNode[] {
  const a = parseNodes(active, false);
  const b = parseNodes(backup, true);
  const problems = [...a.problems, ...b.problems.map((p) => `--backup ${p}`)];
  if (problems.length > 0) throw new UsageError(`invalid node${problems.length === 1 ? '' : 's'} (write them NAME=HOST:PORT); nothing was changed`, problems);
  return [...a.nodes, ...b.nodes];
}

/** Inspects, checks and plans one change of the configuration. Changes nothing. */
export async function planHaproxyChange(root: Root, change: Change, log: Logger): Promise<PlannedChange> {
  const facts = await inspectHaproxy(root);
  const settings = await change.settings(facts);
  const problems = settingsProblems(settings);
  if (problems.length > 0) throw new UsageError(`these nodes cannot be set up as they are; nothing was changed`, problems);
  const checks = await haproxyChecks(settings, facts);
  if (checks.some((c) => !c.ok)) throw new PreflightFailed(checks);
  const local = await localNode(root);
  const warnings = await forwarderWarnings(
    settings.nodes,
    local && { listen: local.listenText, trustedForwarders: local.trustedForwarders, confFile: local.file, root },
  );
  if (facts.existing.kind === 'foreign')
    warnings.push(`${facts.service.paths.conf} was not written by knocker: it is replaced, and kept as ${facts.service.paths.conf}.bak`);
  const { steps } = await haproxySteps(settings, facts, { log, startIfStopped: change.startIfStopped });
  return { plan: { title: change.title, steps, warnings }, checks, settings, running: facts.run.running };
}

/** One change of the configuration, as one run of the house's runner: shown (--dry-run) or applied. */
export async function applyChange(root: Root, change: Change, options: ChangeOptions, io: Output): Promise<number> {
  return withRun(root, { command: change.title, logFile: PATHS.opsLog }, options, io, async (run) => {
    const { plan, checks, settings, running } = await planHaproxyChange(root, change, run.log);
    await run.showOrApply(plan, {
      preflight: checks,
      notes: change.notes,
      details: { settings },
      unchanged: running ? 'Nothing to change: HAProxy already runs this configuration.' : 'Nothing to change in the configuration.',
    });
    if (options.dryRun) return 0;
    const sandbox = root.isSandbox ? ` --root ${root.dir}` : '';
    if (!running && !change.startIfStopped) io.err(`HAProxy is stopped; it uses this configuration when it starts (knocker service start haproxy${sandbox}).`);
    for (const line of describeSettings(settings)) io.out(line);
    if (settings.metrics) io.err(`Prometheus metrics (HAProxy's own exporter, no authentication): http://${formatListen(settings.metrics)}/metrics`);
    io.err(`Health of the nodes: knocker haproxy status${sandbox}`);
    return 0;
  });
}
