// `knocker server forget NAME`: retires a server gone for good, as one plan on the one runner:
// its row out of the registry (undo: the row back, as stopped), then its node out of this host's
// HAProxy (haproxy's own steps: the configuration checked with haproxy -c, replaced, reloaded;
// their undo puts the node back). The row goes first because its undo is one INSERT, while
// HAProxy is what is more likely to fail (a configuration haproxy -c refuses, a reload that does
// not take) and a reload undone right after a reload is not reliable.
import { PreflightError, UsageError } from '../errors.js';
import { settingsProblems } from '../haproxy/config.js';
import { haproxyChecks, haproxySteps, inspectHaproxy, type HaproxyFacts } from '../haproxy/plan.js';
import { PreflightFailed, type Check } from '../shared/checks.js';
import { knockerCommand, shellWord } from '../shared/hint.js';
import type { Output } from '../shared/output.js';
import { printableLine } from '../shared/printable.js';
import { listServers } from '../server/registry.js';
import type { Logger } from '../system/log.js';
import type { Plan, Step } from '../system/plan.js';
import { PATHS, type Root } from '../system/root.js';
import { withRun, type RunFlags } from '../system/runner.js';
import { age } from '../system/units.js';
import { secondsSince, stateWord, withRegistry } from './index.js';
import { forgetRowStep } from './row.js';

export interface ForgetOptions extends RunFlags {
  force: boolean;
}

/**
 * The node out of HAProxy as one step of haproxy's own steps (write the checked configuration,
 * reload): applied in order, undone newest first, so an undo puts the node back.
 */
async function haproxyRemovalStep(name: string, facts: HaproxyFacts, log: Logger, preflight: Check[]): Promise<Step> {
  if (facts.existing.kind !== 'knocker') throw new Error('HAProxy is not set up by knocker here');
  const settings = { ...facts.existing.settings, nodes: facts.existing.settings.nodes.filter((n) => n.name !== name) };
  const problems = settingsProblems(settings);
  if (problems.length > 0) throw new UsageError(`HAProxy cannot run without ${name} as it is set up; nothing was changed`, problems);
  const checks = await haproxyChecks(settings, facts);
  preflight.push(...checks);
  if (checks.some((c) => !c.ok)) throw new PreflightFailed(checks);
  const { steps } = await haproxySteps(settings, facts, { log, startIfStopped: false });
  const applied: Step[] = [];
  return {
    kind: 'file',
    title: `HAProxy: remove node ${name} from ${facts.service.paths.conf} (checked with haproxy -c, then reloaded)`,
    details: steps.flatMap((s) => [`${s.changes ? '+' : '='} ${s.title}`, ...(s.changes ? s.details.map((d) => `  ${d}`) : [])]),
    changes: steps.some((s) => s.changes),
    async apply() {
      for (const step of steps.filter((s) => s.changes)) {
        applied.push(step);
        await step.apply();
      }
    },
    async undo() {
      for (const step of applied.splice(0).reverse()) await step.undo();
    },
  };
}

/**
 * Takes a server out of the registry (and out of this host's HAProxy when it is a node there).
 * An online server is refused without --force: while it runs, it registers again at its next heartbeat.
 */
export async function serverForget(root: Root, given: string, options: ForgetOptions, io: Output): Promise<number> {
  const spec = { command: `knocker server forget ${printableLine(given)}`, logFile: PATHS.opsLog };
  return withRun(root, spec, options, io, async (run) => {
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
        throw new UsageError(
          `no server "${name}" in the registry of ${target}; nothing was changed`,
          [],
          [
            servers.length > 0
              ? `the servers are: ${servers.map((s) => printableLine(s.name)).join(', ')} (${knockerCommand(root, 'server list')})`
              : 'the registry is empty',
          ],
        );
      }
      if (server?.online && !options.force) {
        throw new PreflightError(
          `"${name}" is online (at ${printableLine(server.listen)}, heard from ${age(secondsSince(server.lastSeen))} ago); nothing was changed`,
          [
            'stop it on its own host first (knocker service stop server there): a running server registers again at its next heartbeat',
            `to retire it anyway: ${knockerCommand(root, `server forget ${shellWord(name)} --force`)}`,
          ],
        );
      }
      const what = server
        ? `${printableLine(server.listen)}, ${stateWord(server)}, last seen ${server.lastSeen.toISOString()}, version ${printableLine(server.version)}`
        : 'not in the registry';
      const preflight: Check[] = [];
      const kept = { client, close: async () => {} };
      const steps = server ? [forgetRowStep(async () => kept, server, target, 'restored by knocker server forget')] : [];
      if (inHaproxy) steps.push(await haproxyRemovalStep(raw, haproxy, run.log, preflight));
      const warnings = server?.online ? [`"${name}" is online: while it runs it registers again at its next heartbeat`] : [];
      // Its allow-list entries: on this host when it is the primary's; otherwise the forget says where.
      const { nodeAllowListSteps } = await import('../exposedb/forget-node.js');
      const others = servers.filter((s) => s.name !== raw).map((s) => s.listen);
      const allowList = await nodeAllowListSteps(root, run.log, { name: raw, listen: server?.listen }, others);
      if (allowList.kind === 'local') steps.push(...allowList.steps);
      const disallowed = allowList.kind === 'local' ? allowList.removed : [];
      const elsewhere = allowList.kind === 'elsewhere' ? allowList.candidates : [];
      if (elsewhere.length > 0)
        warnings.push(
          `the allow-list is on the primary's host, not here (${allowList.kind === 'elsewhere' ? allowList.why : ''}): there, run knocker exposedb --remove ${elsewhere.join(' / ')}`,
        );
      const plan: Plan = { title: `Retire "${name}"`, steps, warnings };
      const details = {
        server: raw,
        registry: server ? `delete the row of "${name}" (${what})` : null,
        haproxy: inHaproxy ? `remove node ${name} from ${haproxy.service.paths.conf}` : null,
        allowList: disallowed,
      };
      let shown: boolean;
      try {
        shown = await run.showOrApply(plan, { preflight, details });
      } finally {
        if (allowList.kind === 'local') await allowList.close();
      }
      if (!shown) return 0;
      if (disallowed.length > 0) run.log.info(`server forget ${name}: ${disallowed.join(', ')} taken out of the allow-list`);
      if (inHaproxy) run.log.info(`server forget ${name}: removed from HAProxy (${haproxy.service.paths.conf})`);
      if (server)
        run.log.info(`server forget ${name}: deleted from the registry of ${target} (was ${what})${server.online ? ' with --force while online' : ''}`);
      // No result a script would capture: what was retired goes to stderr with the progress.
      io.err(
        server
          ? `Removed "${name}" from the registry of ${target} (it was ${stateWord(server)}, last seen ${age(secondsSince(server.lastSeen))} ago)${inHaproxy ? " and from this host's HAProxy" : ''}${disallowed.length > 0 ? `; ${disallowed.join(', ')} no longer allowed` : ''}.`
          : `Removed "${name}" from this host's HAProxy (it was not in the registry of ${target}).`,
      );
      io.err(`Logged in ${root.path(PATHS.opsLog)}.`);
      return 0;
    });
  });
}
