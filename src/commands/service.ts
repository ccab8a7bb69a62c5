// `knocker service`: start, stop, restart or show what the installer set up (src/service/).
import { Argument, type Command } from 'commander';
import type { ServiceAction, ServiceName } from '../service/index.js';
import { rootOf, type CommandContext } from './context.js';

export function serviceCommand(program: Command, ctx: CommandContext): void {
  program
    .command('service')
    .description('start, stop, restart or show what the installer set up: the Knocknoc server, its PostgreSQL, HAProxy')
    .addArgument(new Argument('<action>', 'start, stop, restart or status').choices(['start', 'stop', 'restart', 'status']))
    .addArgument(new Argument('[which]', 'server, postgres, haproxy or all').choices(['server', 'postgres', 'haproxy', 'all']).default('all'))
    .addHelpText(
      'after',
      [
        '',
        'Systemd units where PID 1 is systemd; otherwise, and always under --root, detached processes',
        'with pid files under the root. Starting the server waits until its /_status answers 200.',
        '',
        'Exit codes: 0 done (status: everything set up is running), 1 status: something set up is',
        'stopped or failing, 3 not set up here, 4 failed and undone, 5 failed and not fully undone.',
      ].join('\n'),
    )
    .action(async (action: ServiceAction, which: ServiceName | 'all', _options: unknown, command: Command) => {
      const service = await import('../service/index.js');
      ctx.exit(await service.serviceCommand(action, which, rootOf(command, ctx), ctx.io));
    });
}
