// `knocker service`: start, stop, restart or show what the installer set up (src/service/).
import { Argument, InvalidArgumentError, type Command } from 'commander';
import type { ServiceAction, ServiceName } from '../service/index.js';
import { UsageError } from '../errors.js';
import { rootOf, type CommandContext } from './context.js';

export function serviceCommand(program: Command, ctx: CommandContext): void {
  program
    .command('service')
    .description('start, stop, restart or show what the installer set up: the Knocknoc server, its PostgreSQL, HAProxy')
    .addArgument(new Argument('<action>', 'start, stop, restart, status or logs').choices(['start', 'stop', 'restart', 'status', 'logs']))
    .addArgument(
      new Argument('[which]', 'server, postgres, haproxy or all (logs: one of them, default server)')
        .choices(['server', 'postgres', 'haproxy', 'all'])
        .default('all'),
    )
    .option('-f, --follow', 'logs: keep printing what is written (until Ctrl-C)')
    .option('-n, --lines <n>', 'logs: how many of the last lines to print (default 50)', lineCount)
    .addHelpText(
      'after',
      [
        '',
        'Systemd units where PID 1 is systemd; otherwise, and always under --root, detached processes',
        'with pid files under the root. Starting the server waits until its /_status answers 200.',
        'On a host of a replicated pair (knocker standby init, no install needed) postgres is the',
        "pair's cluster, standby or primary; starting it asks the other host first (it may start read-only).",
        'On a data host of an automatic pair, start, stop and restart of postgres (or all) are refused (exit 3):',
        "its keeper runs PostgreSQL there; start or stop the keeper's service (pgautofailover.service) instead.",
        '',
        "logs prints the last lines of a service's log (its journal under systemd, else its file) and",
        'with -f follows it until Ctrl-C. A server that did not stop cleanly (killed, or it died) is',
        '"crashed", with its last log lines.',
        '',
        'Output: stdout carries only the result a script would capture (status lines, log lines);',
        'start, stop and restart print their progress and notes on stderr and log to knocker.log.',
        '',
        'Exit codes: 0 done (status: everything set up is running), 1 status: something set up is',
        'stopped, crashed or failing, 2 invalid usage, 3 not set up here (status: nothing is) or refused, 4 failed',
        'and undone, 5 failed and not fully undone.',
      ].join('\n'),
    )
    .action(async (action: ServiceAction | 'logs', which: ServiceName | 'all', options: { follow?: boolean; lines?: number }, command: Command) => {
      const root = rootOf(command, ctx);
      if (action === 'logs') {
        if (which === 'all') which = 'server';
        const { serviceLogs } = await import('../service/logs.js');
        ctx.exit(await serviceLogs(root, which, { follow: Boolean(options.follow), lines: options.lines ?? 50, stop: ctx.interrupted }, ctx.io));
        return;
      }
      if (options.follow || options.lines !== undefined) throw new UsageError('--follow and --lines go with `knocker service logs`');
      const service = await import('../service/index.js');
      ctx.exit(await service.serviceCommand(action, which, root, ctx.io));
    });
}

function lineCount(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < 1 || n > 100_000) throw new InvalidArgumentError('give a number of lines from 1 to 100000');
  return n;
}
