// `knocker uninstall`: the install's reverse plan (src/uninstall/), shown first, then applied once
// confirmed: on a terminal it asks (twice with --purge-data); without one it needs --yes.
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { askConfirm } from '../shared/confirm.js';
import { rootOf, type CommandContext } from './context.js';
import { jsonNeedsDryRun } from './options.js';

export function uninstallCommand(program: Command, ctx: CommandContext): void {
  program
    .command('uninstall')
    .description('the reverse of install: stop and disable the services, take this node out of the registry and HAProxy, remove what knocker wrote')
    .option('--dry-run', 'print the plan; change nothing')
    .option('--json', 'with --dry-run: machine-readable output')
    .option('--purge-data', "also delete the database and its data (the private cluster, its certificates, the cluster's CA); asked twice on a terminal")
    .option('--yes', 'apply without asking (needed without a terminal)')
    .addHelpText(
      'after',
      [
        '',
        'Stops HAProxy, the server and its private PostgreSQL (knocker service stop), disables',
        "knocknoc.service, deletes this node's row in the servers registry of its database, and removes",
        "knocknoc.conf, the saved answers, HAProxy's configuration written by knocker, state, runtime",
        'files and logs, then the folders left empty. The database and its data are kept unless',
        '--purge-data; an external database (options 2 and 3) is never dropped. Under --root, an',
        "uninstall with --purge-data leaves the root empty. The uninstall's own log (knocker.log) is",
        'kept as the record of what it removed, unless --purge-data.',
        '',
        'On a host of a replicated pair (knocker standby): refused on the primary (exit 3) while its',
        'standby replicates from it (run knocker standby remove, or standby switchover, first). On the',
        'standby, PostgreSQL stops before anything is removed, its slot on the primary is dropped, and',
        "the pair's secrets here (passfile, CA copy, its key and certificate, bundle, state) go too.",
        '',
        'Output: stdout carries only the result a script would capture (here: the --dry-run plan); the',
        'plan to confirm, progress, notes, warnings and the outcome go to stderr.',
        '',
        'Exit codes: 0 done (or declined, or nothing to do), 2 invalid usage (--yes missing without a',
        'terminal), 3 another knocker run holds the lock, or this host is the primary of a pair with a',
        'standby (nothing changed), 4 failed and undone, 5 failed and not fully undone.',
      ].join('\n'),
    )
    .action(async (options: { dryRun?: boolean; json?: boolean; purgeData?: boolean; yes?: boolean }, command: Command) => {
      jsonNeedsDryRun(options);
      const root = rootOf(command, ctx);
      const { ask, readKey } = ctx;
      if (!options.dryRun && !options.yes && (!ctx.terminal || !ask || !readKey))
        throw new UsageError('without a terminal, knocker uninstall needs --yes (or --dry-run to see the plan); nothing was changed');
      const { runUninstall } = await import('../uninstall/index.js');
      ctx.exit(
        await runUninstall(
          root,
          {
            purgeData: Boolean(options.purgeData),
            dryRun: Boolean(options.dryRun),
            json: Boolean(options.json),
            async confirm() {
              if (options.yes || !ask || !readKey) return Boolean(options.yes);
              if (!(await askConfirm(readKey, 'Apply this uninstall?'))) return false;
              if (!options.purgeData) return true;
              const second = await ask('This deletes the database and its data for good. Type "purge" to go on: ');
              return second.trim() === 'purge';
            },
          },
          ctx.io,
        ),
      );
    });
}
