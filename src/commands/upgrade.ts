// `knocker upgrade`: the rolling upgrade (src/upgrade/), on its screen (src/upgrade-app.tsx) or as
// plain progress lines.
import { Option, type Command } from 'commander';
import { UsageError } from '../errors.js';
import { rootOf, type CommandContext } from './context.js';
import { jsonNeedsDryRun, secondsOption } from './options.js';

interface UpgradeFlags {
  upgradeCommand?: string;
  first?: string;
  toVersion?: string;
  resume?: boolean;
  rollback?: boolean;
  dryRun?: boolean;
  json?: boolean;
  nonInteractive?: boolean;
  yes?: boolean;
  drainTimeout: number;
  timeout: number;
  commandTimeout: number;
}

/** knocker upgrade's defaults (the module takes every value from here). */
const DEFAULT_UPGRADE = { drainTimeoutSeconds: 15, timeoutSeconds: 120, commandTimeoutSeconds: 1800 };

export function upgradeCommand(program: Command, ctx: CommandContext): void {
  program
    .command('upgrade')
    .description('rolling upgrade of every web node through HAProxy, one server at a time, with no failed request')
    .option(
      '--upgrade-command <command>',
      'the command that upgrades one server; {name}, {host} and {port} are filled in (run without a shell; env KNOCKNOC_UPGRADE_COMMAND keeps a token out of argv)',
    )
    .option('--first <name>', "the server upgraded first, alone in rotation (default: this host's node, else the first active node by name)")
    .option('--to-version <version>', 'the release every server must reach (default: the one the first server comes back on)')
    .option('--resume', 'go on with an upgrade that stopped or was cut off, from its journal')
    .option(
      '--rollback',
      'put rotation back for an unfinished upgrade and close it (upgraded servers stay upgraded; one out of step with the database stays in maintenance)',
    )
    .option('--dry-run', 'check the cluster and print the steps; change nothing')
    .option('--json', 'with --dry-run: machine-readable output')
    .option('--non-interactive', 'plain progress lines instead of the screen (what it does without a terminal)')
    .option('--yes', 'the screen: start without asking')
    .addOption(
      new Option('--drain-timeout <seconds>', 'how long to wait for the sessions of drained servers to end before maintenance')
        .default(DEFAULT_UPGRADE.drainTimeoutSeconds)
        .argParser(secondsOption(0, 3600)),
    )
    .addOption(
      new Option('--timeout <seconds>', "how long a server may take to answer on the new version, and to pass HAProxy's check")
        .default(DEFAULT_UPGRADE.timeoutSeconds)
        .argParser(secondsOption(1, 3600)),
    )
    .addOption(
      new Option('--command-timeout <seconds>', 'how long one upgrade command may run')
        .default(DEFAULT_UPGRADE.commandTimeoutSeconds)
        .argParser(secondsOption(1, 86_400)),
    )
    .addHelpText(
      'after',
      [
        '',
        'Run it on the host of knocker\'s HAProxy. Steps (the seed\'s "Upgrading servers in an HA deployment"):',
        '  1. check: every server in the registry of the shared database is online, answers /_status 200',
        '     in step, and is UP in HAProxy (and HAProxy has no other node); anything else stops here',
        '  2. drain every server but the first, wait for their sessions to end (--drain-timeout), put them',
        "     in maintenance, and confirm from HAProxy's counters that they get no traffic",
        "  3. turn the first server's health checks off (HAProxy holds its requests through the retries),",
        '     run the upgrade command for it, wait until it answers on the new version in step with the',
        '     migrated database, and turn its checks on again',
        '  4. for each other server: the upgrade command, /_status on the same version, then back into',
        "     rotation once HAProxy's check passes",
        'Progress is journalled in /var/lib/knocknoc/upgrade.json. A failed step puts rotation back and stops;',
        'so does Ctrl-C, once the server being upgraded is done (an upgrade command is never cut short).',
        '--resume goes on from there; --rollback puts rotation back and closes it. A run cut off outright',
        '(a crash, a lost session) is resumed or rolled back the same way.',
        '',
        'Example: knocker upgrade --upgrade-command "ssh root@{host} apt-get install -y knocknoc"',
        '',
        'Exit codes: 0 every server upgraded and in rotation, 2 invalid input, 3 a check failed or another',
        'upgrade is open (nothing was changed), 4 a step failed and rotation was put back, 5 rotation could',
        'not be fully put back.',
      ].join('\n'),
    )
    .action(async (options: UpgradeFlags, command: Command) => {
      const root = rootOf(command, ctx);
      const upgrade = await import('../upgrade/index.js');
      if (options.rollback) {
        const others = (['upgradeCommand', 'first', 'toVersion', 'resume', 'dryRun', 'json', 'yes'] as const).filter((k) => options[k] !== undefined);
        if (others.length > 0) throw new UsageError('--rollback goes alone (with --root)');
        ctx.exit(await upgrade.rollbackUpgrade(root, ctx.io));
        return;
      }
      jsonNeedsDryRun(options);
      const settings = {
        command: options.upgradeCommand ?? ctx.env.KNOCKNOC_UPGRADE_COMMAND,
        first: options.first,
        toVersion: options.toVersion,
        resume: Boolean(options.resume),
        drainTimeoutSeconds: options.drainTimeout,
        timeoutSeconds: options.timeout,
        commandTimeoutSeconds: options.commandTimeout,
      };
      if (options.resume && options.first !== undefined) throw new UsageError('--first cannot change on --resume: the journal says which server went first');
      const interactive = ctx.terminal && !options.nonInteractive && !options.dryRun;
      if (!interactive) {
        ctx.exit(await upgrade.runUpgradePlain(root, { ...settings, dryRun: Boolean(options.dryRun), json: Boolean(options.json) }, ctx.io));
        return;
      }
      const [{ runUpgradeScreen }, session] = await Promise.all([import('../upgrade-app.js'), upgrade.prepareUpgrade(root, settings)]);
      ctx.exit(await runUpgradeScreen(session, { yes: Boolean(options.yes) }));
    });
}
