// `knocker standby …` (CONTRACTS.md): a replicated standby of the shared-primary database, and the
// moves between the two hosts: switchover (planned), promote (the primary lost), rejoin, remove.
// The work is in src/standby/, loaded when one runs.
import path from 'node:path';
import type { Command } from 'commander';
import { rootOf, type CommandContext } from './context.js';
import { jsonNeedsDryRun, once, secondsOption } from './options.js';

const standbyModule = () => import('../standby/index.js');

interface PlanFlags {
  dryRun?: boolean;
  json?: boolean;
}
const flags = (o: PlanFlags) => ({ dryRun: Boolean(o.dryRun), json: Boolean(o.json) });

type StandbyModule = Awaited<ReturnType<typeof standbyModule>>;
type Run<O> = (work: StandbyModule, root: ReturnType<typeof rootOf>, plan: { dryRun: boolean; json: boolean }, options: O) => Promise<number>;

/**
 * A sub-command that changes a host: its own options, then --dry-run and --json (a plan, printed
 * or as JSON), the rule that --json needs --dry-run, the work module loaded when it runs, the exit.
 */
function planCommand<O extends PlanFlags>(sub: Command, ctx: CommandContext, run: Run<O>): void {
  sub
    .option('--dry-run', 'check and print the plan; change nothing')
    .option('--json', 'with --dry-run: machine-readable output')
    .action(async (options: O, command: Command) => {
      jsonNeedsDryRun(options);
      ctx.exit(await run(await standbyModule(), rootOf(command, ctx), flags(options), options));
    });
}

export function standbyCommand(program: Command, ctx: CommandContext): void {
  const standby = program
    .command('standby')
    .description('a replicated standby of the shared-primary database: init, status, switchover, promote, rejoin, remove, pre-start')
    .addHelpText(
      'after',
      [
        '',
        'The primary first: knocker exposedb --add-standby ADDR prints a bundle file; copy it to the standby',
        'host and run knocker standby init --bundle FILE there. Each command runs on one host; the other host',
        'is reached as the replication role (TLS verified by the cluster\'s CA). See README, "Standby".',
        '',
        'On a data host of an automatic pair (/var/lib/knocknoc/ha/node.json), status and switchover ask',
        "pg_auto_failover through the keeper's config; init, promote, rejoin, remove and pre-start refuse (exit 3):",
        'its keeper owns the roles there. See README, "Automatic failover (three hosts)".',
        '',
        'Exit codes: 0 done (status: healthy), 1 status: degraded, 2 invalid input (nothing changed), 3',
        "preflight failed (nothing changed; status: this host's PostgreSQL is not running), 4 failed and undone,",
        '5 failed and not fully undone.',
      ].join('\n'),
    );

  planCommand<PlanFlags & { bundle: string; maxRate?: string }>(
    standby
      .command('init')
      .description(
        "on the standby host: clone the primary (pg_basebackup -X stream, a slot) and start it as a hot standby; this host's own web node, if any, gets the pair's multi-host string",
      )
      .requiredOption('--bundle <file>', 'the file knocker exposedb --add-standby made on the primary', once('--bundle'))
      .option('--max-rate <rate>', "limit the clone's transfer rate (pg_basebackup --max-rate, e.g. 20M)", once('--max-rate')),
    ctx,
    (work, root, plan, options) => work.standbyInit(root, { ...plan, bundle: path.resolve(options.bundle), maxRate: options.maxRate }, ctx.io),
  );

  standby
    .command('status')
    .description(
      'role, timeline, lag in bytes and time, slots and the WAL they hold, the peer, whether the standby could take over; on an automatic pair, the formation as pg_auto_failover tells it',
    )
    .option('--json', 'machine-readable output')
    .action(async (options: { json?: boolean }, command: Command) => {
      const { standbyStatus } = await standbyModule();
      ctx.exit(await standbyStatus(rootOf(command, ctx), { json: Boolean(options.json) }, ctx.io));
    });

  planCommand<PlanFlags & { catchUpTimeout: number }>(
    standby
      .command('switchover')
      .description(
        'on the primary, both up: stop writes here, wait until the standby has replayed all of it, promote it, follow it; on an automatic pair (either data host), pg_autoctl perform switchover',
      )
      .option(
        '--catch-up-timeout <seconds>',
        "how long the standby may take to replay this node's last WAL; if it does not, this node starts again as the primary",
        secondsOption(1, 3600),
        60,
      ),
    ctx,
    (work, root, plan, options) => work.standbySwitchover(root, { ...plan, catchUpTimeoutMs: options.catchUpTimeout * 1000 }, ctx.io),
  );

  planCommand<PlanFlags & { force?: boolean; promoteTimeout: number }>(
    standby
      .command('promote')
      .description('on the standby, the primary lost: make this node the primary; refused while the old primary takes writes')
      .option('--force', 'promote although the old primary answers as writable (it is fenced first: read-only, its sessions ended)')
      .option(
        '--promote-timeout <seconds>',
        'how long pg_promote waits for the promotion to finish; if it does not, the run ends (exit 5) and this node may still finish it later',
        secondsOption(1, 3600),
        60,
      ),
    ctx,
    (work, root, plan, options) => work.standbyPromote(root, { ...plan, force: Boolean(options.force), promoteTimeoutSeconds: options.promoteTimeout }, ctx.io),
  );

  planCommand<PlanFlags>(
    standby.command('rejoin').description('on the old primary: come back as a standby of the new primary (pg_rewind, or a fresh clone when it cannot work)'),
    ctx,
    (work, root, plan) => work.standbyRejoin(root, plan, ctx.io),
  );

  planCommand<PlanFlags>(
    standby
      .command('remove')
      .description(
        "on the primary: drop the standby's slot, replication lines and role (its WAL no longer held); on the standby: stop it and remove its copy; on both, the pair's secrets",
      ),
    ctx,
    (work, root, plan) => work.standbyRemove(root, plan, ctx.io),
  );

  standby
    .command('pre-start')
    .description(
      "before this node's PostgreSQL starts (systemd runs it, at boot too): the other host the primary, or no answer in 10 s, makes this node start read-only as its standby",
    )
    .addHelpText(
      'after',
      [
        '',
        'Prints primary, standby, fenced or not-paired; the reason on stderr. On a Debian host, exposedb --add-standby',
        'and standby init install it as an ExecStartPre drop-in of postgresql@VERSION-NAME.service; standby remove',
        'and uninstall remove it. Exit 0: start; any other exit keeps PostgreSQL stopped.',
      ].join('\n'),
    )
    .action(async (_options: object, command: Command) => {
      const { standbyPreStart } = await standbyModule();
      ctx.exit(await standbyPreStart(rootOf(command, ctx), ctx.io));
    });
}
