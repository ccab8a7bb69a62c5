// `knocker server list|forget`: the registry of web nodes in the shared database (src/registry/).
import type { Command } from 'commander';
import { rootOf, type CommandContext } from './context.js';
import { jsonNeedsDryRun } from './options.js';

export function serverCommand(program: Command, ctx: CommandContext): void {
  const server = program
    .command('server')
    .description('the web nodes registered in the shared database: list them, retire one gone for good')
    .addHelpText(
      'after',
      [
        '',
        'Reads the database of DatabaseURL in knocknoc.conf. A server stopped or gone for good stays in',
        'the registry (knocker status is degraded, knocker upgrade refuses) until `forget` retires it.',
        '',
        'Output: stdout carries only the result a script would capture (the list, its JSON, the',
        '--dry-run plan); progress, notes, warnings, hints and what forget retired go to stderr.',
        '',
        'Exit codes: 0 done, 2 invalid input or no such server (nothing changed), 3 the database cannot be',
        'reached or the server is online (nothing changed), 4 failed and undone, 5 failed and not fully undone.',
      ].join('\n'),
    );

  server
    .command('list')
    .description('every registered server: its address, online / offline / stopped, version, last heartbeat')
    .option('--json', 'machine-readable output')
    .action(async (options: { json?: boolean }, command: Command) => {
      const { serverList } = await import('../registry/list.js');
      ctx.exit(await serverList(rootOf(command, ctx), { json: Boolean(options.json) }, ctx.io));
    });

  server
    .command('forget')
    .description("retire a server: delete it from the registry, and from this host's HAProxy when it is a node there")
    .argument('<name>', 'its ServerName, as `knocker server list` shows it')
    .option('--force', 'also retire a server that is online (it registers again at its next heartbeat while it runs)')
    .option('--dry-run', 'print what would be removed; change nothing')
    .option('--json', 'with --dry-run: machine-readable output')
    .addHelpText('after', ['', 'Logged in /var/log/knocknoc/knocker.log.', '', 'Example:', '  knocker server forget web-3'].join('\n'))
    .action(async (name: string, options: { force?: boolean; dryRun?: boolean; json?: boolean }, command: Command) => {
      jsonNeedsDryRun(options);
      const { serverForget } = await import('../registry/forget.js');
      ctx.exit(
        await serverForget(rootOf(command, ctx), name, { force: Boolean(options.force), dryRun: Boolean(options.dryRun), json: Boolean(options.json) }, ctx.io),
      );
    });
}
