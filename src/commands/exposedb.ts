// `knocker exposedb`: share this primary's database with other web nodes (src/exposedb/). Its help
// is Knocknoc's own text for exposedb (src/exposedb/help.ts).
import { Option, type Command } from 'commander';
import { EXIT } from '../errors.js';
import { EXPOSEDB_HELP } from '../exposedb/help.js';
import type { ExposeAction } from '../exposedb/index.js';
import { rootOf, type CommandContext } from './context.js';
import { jsonNeedsDryRun, once } from './options.js';

interface ExposeOptions {
  init?: boolean;
  add?: string;
  remove?: string;
  list?: boolean;
  sync?: boolean;
  renewCert?: boolean;
  addStandby?: string;
  invite?: string;
  invites?: boolean;
  revoke?: string;
  ttl?: string;
  name?: string;
  addMonitor?: string;
  conn?: string;
  host?: string;
  dryRun?: boolean;
  json?: boolean;
}

/** The options that name what to do (commander's key, the action): exactly one is given, so each conflicts with every other. */
const ACTIONS = [
  ['init', 'init'],
  ['add', 'add'],
  ['remove', 'remove'],
  ['list', 'list'],
  ['sync', 'sync'],
  ['renewCert', 'renew-cert'],
  ['addStandby', 'add-standby'],
  ['invite', 'invite'],
  ['invites', 'invites'],
  ['revoke', 'revoke'],
  ['addMonitor', 'add-monitor'],
] as const satisfies ReadonlyArray<readonly [keyof ExposeOptions, ExposeAction]>;

const otherActions = (key: (typeof ACTIONS)[number][0]): string[] => ACTIONS.map(([k]) => k).filter((k) => k !== key);

export function exposedbCommand(program: Command, ctx: CommandContext): void {
  program
    .command('exposedb')
    .description("share this primary's database with other web nodes, behind an allow-list of their addresses")
    .addOption(new Option('--init').conflicts(otherActions('init')))
    .addOption(new Option('--add <CIDR>').argParser(once('--add')).conflicts(otherActions('add')))
    .addOption(new Option('--remove <CIDR>').argParser(once('--remove')).conflicts(otherActions('remove')))
    .addOption(new Option('--list').conflicts(otherActions('list')))
    .addOption(new Option('--sync').conflicts(otherActions('sync')))
    .addOption(new Option('--renew-cert').conflicts(otherActions('renewCert')))
    .addOption(new Option('--add-standby <ADDR>').argParser(once('--add-standby')).conflicts(otherActions('addStandby')))
    .addOption(new Option('--invite <ADDR/32>').argParser(once('--invite')).conflicts(otherActions('invite')))
    .addOption(new Option('--invites').conflicts([...otherActions('invites'), 'dryRun']))
    .addOption(new Option('--revoke <ID>').argParser(once('--revoke')).conflicts(otherActions('revoke')))
    .addOption(new Option('--ttl <DURATION>').argParser(once('--ttl')))
    .addOption(new Option('--name <NAME>').argParser(once('--name')))
    .addOption(new Option('--add-monitor <ADDR>').argParser(once('--add-monitor')).conflicts(otherActions('addMonitor')))
    .addOption(new Option('--conn <URI>').argParser(once('--conn')))
    .addOption(new Option('--host <ADDR>').argParser(once('--host')))
    .addOption(new Option('--dry-run').conflicts(['list']))
    .addOption(new Option('--json'))
    // Shown for -h/--help and after every misuse.
    .configureHelp({ formatHelp: () => EXPOSEDB_HELP })
    .showHelpAfterError(true)
    .action(async (options: ExposeOptions, command: Command) => {
      const action = ACTIONS.find(([key]) => options[key] !== undefined)?.[1];
      if (!action) {
        // Bare `knocker exposedb` shows the help, as Knocknoc's does; it is still not a run.
        if (Object.keys(options).length > 0)
          command.error(
            'error: choose what to do: --init, --add <CIDR>, --remove <CIDR>, --list, --sync, --renew-cert, --add-standby <ADDR>, --add-monitor <ADDR>, --invite <ADDR/32>, --invites or --revoke <ID>',
          );
        command.outputHelp({ error: true });
        ctx.exit(EXIT.usage);
        return;
      }
      if (options.host !== undefined && action !== 'init') command.error('error: --host goes with --init (it sets the host of the printed connection string)');
      if ((options.ttl !== undefined || options.name !== undefined) && action !== 'invite') command.error('error: --ttl and --name go with --invite');
      jsonNeedsDryRun(options);
      const { runExposeDb } = await import('../exposedb/index.js');
      const request = {
        action,
        cidr: options.add ?? options.remove,
        standby: options.addStandby,
        invite: options.invite,
        ttl: options.ttl,
        name: options.name,
        revoke: options.revoke,
        monitor: options.addMonitor,
        conn: options.conn,
        host: options.host,
        dryRun: Boolean(options.dryRun),
        json: Boolean(options.json),
      } as const;
      ctx.exit(await runExposeDb(request, { root: rootOf(command, ctx), io: ctx.io }));
    });
}
