// `knocker upgrade` without its screen (--non-interactive, no terminal) and --dry-run: one run of the
// house's runner under the upgrade's lock. --dry-run prints the plan (text, or the one JSON shape
// with the upgrade's servers under `details`); a real run prints its checks and progress on stderr,
// and on stdout only its result: each server's release before and after, and its state in HAProxy.
import { checkLine } from '../shared/checks.js';
import type { Output } from '../shared/output.js';
import { seconds } from '../system/units.js';
import type { Root } from '../system/root.js';
import { withRun } from '../system/runner.js';
import { describeServer } from '../haproxy/rotation.js';
import { runUpgrade, UPGRADE_RUN } from './apply.js';
import { readCluster, rowsByName } from './cluster.js';
import type { UpgradeOptions, UpgradeSession } from './prepare.js';
import { prepareUpgrade } from './prepare.js';

export interface PlainOptions extends UpgradeOptions {
  dryRun: boolean;
  json: boolean;
}

/** What a dry run says of the upgrade beyond its plan. */
function upgradeDetails(session: UpgradeSession): Record<string, unknown> {
  const { journal } = session;
  return {
    resumed: session.resumed,
    first: journal.first,
    target: journal.target ?? journal.toVersion ?? null,
    servers: journal.servers.map((s) => ({
      name: s.name,
      address: `${s.host}:${s.port}`,
      role: s.backup ? 'backup' : 'active',
      fromVersion: s.fromVersion,
      phase: s.phase,
    })),
  };
}

export async function runUpgradePlain(root: Root, options: PlainOptions, io: Output): Promise<number> {
  return withRun(root, UPGRADE_RUN, options, io, async (run) => {
    const session = await prepareUpgrade(root, options);
    if (options.dryRun) {
      await run.showOrApply(session.preview, { preflight: session.checks, details: upgradeDetails(session) });
      return 0;
    }
    io.err(session.resumed ? 'Where the upgrade stands:' : 'Preflight:');
    for (const c of session.checks) io.err(checkLine(c));
    let stop = false;
    const onSigint = () => {
      if (stop) process.exit(130);
      stop = true;
      io.err(
        'Stopping once the server being upgraded is done (its command is never cut short), then putting rotation back (Ctrl-C again to leave at once; knocker upgrade --resume or --rollback then).',
      );
    };
    process.on('SIGINT', onSigint);
    try {
      const outcome = await runUpgrade(
        session,
        run.log,
        {
          stopRequested: () => stop,
          onEvent: (event) => {
            if (event.type === 'output') io.err(`        ${event.server}| ${event.line}`);
            else if (event.type === 'note') io.err(`        ${event.server}: ${event.text}`);
          },
        },
        (plan) => run.showOrApply(plan),
      );
      const servers = outcome.journal.servers;
      io.err(
        `Done: ${servers.length} server${servers.length === 1 ? '' : 's'} on ${outcome.journal.target ?? 'the new version'} in ${seconds(outcome.ms)} ` +
          `(${seconds(outcome.commandMs)} of it in the upgrade commands), every one back in rotation.`,
      );
      const facts = await readCluster(root).catch(() => undefined);
      const rows = facts ? rowsByName(facts) : new Map();
      for (const server of servers) {
        const row = rows.get(server.name);
        io.out(
          `${server.name}: ${server.fromVersion} → ${row?.probe?.body?.version ?? '?'}, HAProxy ${row?.haproxy ? describeServer(row.haproxy) : 'unknown'}`,
        );
      }
      return 0;
    } finally {
      process.off('SIGINT', onSigint);
    }
  });
}
