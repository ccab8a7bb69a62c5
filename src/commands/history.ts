// `knocker history [--json] [--limit N] [--since WHEN]`: the cluster's events as the shared database
// holds them (src/history/); changes nothing.
import { InvalidArgumentError, type Command } from 'commander';
import { parseSince } from '../history/event.js';
import { rootOf, type CommandContext } from './context.js';

function limitOption(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < 1 || n > 10_000) throw new InvalidArgumentError('give a number of events from 1 to 10000');
  return n;
}

function sinceOption(value: string): Date {
  const since = parseSince(value);
  if (!since) throw new InvalidArgumentError('give a duration (90s, 30m, 2h, 7d) or a date (2026-12-07, 2026-12-07T15:00:00Z)');
  return since;
}

export function historyCommand(program: Command, ctx: CommandContext): void {
  program
    .command('history')
    .description("the cluster's history: every change a knocker command applied on any host, when, where, and how it ended")
    .option('--json', 'machine-readable output')
    .option('-n, --limit <n>', 'the newest N events (1 to 10000)', limitOption, 50)
    .option('--since <when>', 'only events since WHEN: a duration back from now (90s, 30m, 2h, 7d) or a date/time', sinceOption)
    .addHelpText(
      'after',
      [
        '',
        'Reads the history table of the shared database named by DatabaseURL in knocknoc.conf: switchover,',
        'promote, rejoin, upgrade steps, drain / maint / ready, forget, install and uninstall, recorded by',
        'the host that ran them, so every host shows the same list. Events this host could not write to the',
        'database (unreachable, read-only) wait in /var/lib/knocknoc/history-spool.jsonl and are shown too,',
        'marked (spooled); the next knocker command that reaches the database writes them there.',
        '',
        'Output: stdout carries the list (oldest first) or its JSON; notes go to stderr.',
        '',
        'Exit codes: 0 done, 2 invalid usage, 3 the database cannot be reached.',
        '',
        'Example:',
        '  knocker history --since 1d',
      ].join('\n'),
    )
    .action(async (options: { json?: boolean; limit: number; since?: Date }, command: Command) => {
      const { printHistory } = await import('../history/index.js');
      ctx.exit(
        await printHistory(
          rootOf(command, ctx),
          { json: Boolean(options.json), limit: options.limit, ...(options.since ? { since: options.since } : {}) },
          ctx.io,
        ),
      );
    });
}
