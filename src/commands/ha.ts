// `knocker ha …` (README "Automatic failover (three hosts)"): a pair whose failover pg_auto_failover
// decides, with a monitor on the third host. The work is in src/ha/, loaded when one runs.
import path from 'node:path';
import type { Command } from 'commander';
import { rootOf, type CommandContext } from './context.js';
import { jsonNeedsDryRun, once } from './options.js';

export function haCommand(program: Command, ctx: CommandContext): void {
  const ha = program
    .command('ha')
    .description('automatic failover on three hosts, decided by pg_auto_failover: the monitor, then the primary and the standby handed over')
    .addHelpText(
      'after',
      [
        '',
        'On the primary: knocker exposedb --add-monitor ADDR prints a bundle file; copy it to the monitor host',
        '(the third host, which holds no database) and run knocker ha monitor --bundle FILE there.',
        'Then on the primary: knocker ha adopt prints a bundle file for the standby; copy it there and run',
        'knocker ha adopt --bundle FILE on the standby.',
        'See README, "Automatic failover (three hosts)".',
        '',
        'Exit codes: 0 done, 2 invalid input (nothing changed), 3 preflight failed (nothing changed),',
        '4 failed and undone, 5 failed and not fully undone.',
      ].join('\n'),
    );
  ha.command('monitor')
    .description(
      "on the monitor host: create and start the pg_auto_failover monitor (TLS verify-full with the cluster's CA, no trust in pg_hba.conf, autoctl_node's password as a SCRAM verifier); prints its URI without password",
    )
    .requiredOption('--bundle <file>', 'the file knocker exposedb --add-monitor made on the primary', once('--bundle'))
    .option('--dry-run', 'check and print the plan; change nothing')
    .option('--json', 'with --dry-run: machine-readable output')
    .action(async (options: { bundle: string; dryRun?: boolean; json?: boolean }, command: Command) => {
      jsonNeedsDryRun(options);
      const { haMonitor } = await import('../ha/monitor.js');
      ctx.exit(
        await haMonitor(rootOf(command, ctx), { bundle: path.resolve(options.bundle), dryRun: Boolean(options.dryRun), json: Boolean(options.json) }, ctx.io),
      );
    });
  ha.command('adopt')
    .description(
      "on a data host: hand this running PostgreSQL to pg_auto_failover in place (primary first, then the standby; no re-clone): pg_autoctl create postgres with TLS verify-full and a password-less monitor URI, knocker's pg_hba.conf block, the keeper started; on the primary prints the standby's bundle",
    )
    .option('--bundle <file>', 'on the standby: the file knocker ha adopt printed on the primary', once('--bundle'))
    .option('--dry-run', 'check and print the plan; change nothing')
    .option('--json', 'with --dry-run: machine-readable output')
    .action(async (options: { bundle?: string; dryRun?: boolean; json?: boolean }, command: Command) => {
      jsonNeedsDryRun(options);
      const { haAdopt } = await import('../ha/adopt.js');
      ctx.exit(
        await haAdopt(
          rootOf(command, ctx),
          { ...(options.bundle ? { bundle: path.resolve(options.bundle) } : {}), dryRun: Boolean(options.dryRun), json: Boolean(options.json) },
          ctx.io,
        ),
      );
    });
}
