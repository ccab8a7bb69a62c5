// `knocker status`: the live dashboard on a terminal (src/status-app.tsx), else one snapshot as
// text or JSON (src/status/).
import path from 'node:path';
import { Option, type Command } from 'commander';
import { UsageError } from '../errors.js';
import { dashboardHelp, dashboardKeyWidth } from '../screens/keys.js';
import { rootOf, type CommandContext } from './context.js';
import { once, secondsOption } from './options.js';

export function statusCommand(program: Command, ctx: CommandContext): void {
  program
    .command('status')
    .description('the live cluster dashboard: every server sharing the database, its /_status, HAProxy and PostgreSQL')
    .option('--once', 'print one plain-text snapshot and exit (what it does without a terminal)')
    .option('--json', 'print one JSON snapshot and exit (fields: README, "knocker status --json"); the same as --format json')
    .addOption(
      new Option('--format <format>', "print one snapshot and exit: text (as --once), json (as --json) or prometheus (Prometheus' text format)").choices([
        'text',
        'json',
        'prometheus',
      ]),
    )
    .option(
      '--output <file>',
      "with --once, --json or --format: write the snapshot to FILE (atomically, mode 0644) instead of stdout, e.g. a .prom file in node_exporter's textfile directory",
      once('--output'),
    )
    .addOption(
      new Option('--interval <seconds>', 'refresh every SECONDS, 0.5 to 60 (keys + and - change it live)').default(2).argParser(secondsOption(0.5, 60)),
    )
    .option(
      '--admin',
      "let the screen drain, maint or ready the selected server through HAProxy, and switch over or promote this host's standby pair (each asks first, a move showing its plan); read-only without it",
    )
    .addHelpText(
      'after',
      [
        '',
        'Reads the shared database named by DatabaseURL in knocknoc.conf (its servers registry, role,',
        "replication and connections), asks every server for its /_status, and reads HAProxy's read-only",
        'socket when knocker set HAProxy up on this host. A source that fails keeps its last data, shown',
        'as stale with its age and error, and is retried at every refresh.',
        '',
        'Keys (the screen shows them with ?):',
        ...dashboardHelp(false).map(([keys, does]) => `  ${keys.padEnd(dashboardKeyWidth())} ${does}`),
        '  with --admin:',
        ...dashboardHelp(true).map(([keys, does]) => `  ${keys.padEnd(dashboardKeyWidth())} ${does}`),
        '',
        'Exit codes of --once, --json and --format: 0 every server healthy, 1 degraded (a server offline,',
        'failing /_status, out of step or out of rotation; two hosts of DatabaseURL accepting writes, or',
        'none), 3 the database could not be reached.',
      ].join('\n'),
    )
    .action(
      async (
        options: { once?: boolean; json?: boolean; format?: 'text' | 'json' | 'prometheus'; output?: string; interval: number; admin?: boolean },
        command: Command,
      ) => {
        const root = rootOf(command, ctx);
        const intervalMs = options.interval * 1000;
        if (options.json && options.format && options.format !== 'json')
          throw new UsageError(`--json and --format ${options.format} ask for two formats: give one`);
        const format = options.format ?? (options.json ? 'json' : 'text');
        const snapshot = Boolean(options.once || options.json || options.format);
        const live = !snapshot && ctx.terminal;
        if (options.admin && snapshot) throw new UsageError('--admin is for the live screen: it cannot go with --once, --json or --format');
        if (options.output !== undefined && !snapshot) throw new UsageError('--output goes with --once, --json or --format: the live screen writes no file');
        const status = await import('../status/index.js');
        if (!live) {
          ctx.exit(
            await status.printStatus(root, { intervalMs, format, ...(options.output !== undefined ? { output: path.resolve(options.output) } : {}) }, ctx.io),
          );
          return;
        }
        // The history (a round trip to the database, up to its bound) loads beside the rest of the start.
        const [monitor, earlier, { runDashboard }, { followNodeLog }, actions] = await Promise.all([
          status.openMonitor(root, { intervalMs }),
          status.recentHistory(root),
          import('../status-app.js'),
          import('../status/log.js'),
          options.admin ? import('../status/actions.js') : undefined,
        ]);
        ctx.exit(
          await runDashboard({
            monitor,
            staleAfterMs: () => status.staleAfterMs(monitor),
            earlier,
            followLog: (onLines, stop) => followNodeLog(root, 200, onLines, stop),
            ...(actions
              ? {
                  rotate: (name, action, onStatus) => actions.rotateServer(root, name, action, onStatus),
                  standby: { plan: (action) => actions.standbyPlan(root, action), apply: (action, onLine) => actions.standbyApply(root, action, onLine) },
                }
              : {}),
          }),
        );
      },
    );
}
