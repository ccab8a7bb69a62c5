// The only door: parses arguments, reads the environment, decides once whether the run is
// interactive, builds the services, then renders the TUI or runs the plain path. Every error ends
// here and becomes an exit code (CONTRACTS.md).
import os from 'node:os';
import path from 'node:path';
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { EXIT, exitCodeOf, formatError, UsageError } from './errors.js';
import { EXPOSEDB_HELP } from './exposedb/help.js';
import { ENV, FIELDS, type Field } from './installer/answers.js';
import type { Output } from './installer/unattended.js';
import type { ServiceAction, ServiceName } from './service/index.js';
import { packageVersion } from './system/package.js';
import { Root } from './system/root.js';

const io: Output = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

function rootFrom(options: { root?: string }): Root {
  return new Root(options.root ?? process.env.KNOCKNOC_ROOT ?? '/');
}

function isTerminal(): boolean {
  return Boolean(process.stdin.isTTY && process.stdout.isTTY);
}

interface InstallOptions {
  answers?: string;
  nonInteractive?: boolean;
  listen?: string;
  trustedForwarders?: string;
  databaseOption?: string;
  databaseUrl?: string;
  serverName?: string;
  dryRun?: boolean;
  json?: boolean;
  printAnswers?: boolean;
  explain?: boolean;
  yes?: boolean;
}

async function install(options: InstallOptions, root: Root): Promise<number> {
  const flags: Partial<Record<Field, string>> = {
    listen: options.listen,
    trustedForwarders: options.trustedForwarders,
    databaseOption: options.databaseOption,
    databaseUrl: options.databaseUrl,
    serverName: options.serverName,
  };
  const env: Partial<Record<Field, string>> = {};
  for (const field of FIELDS) env[field] = process.env[ENV[field]];
  if (options.json && !options.dryRun && !options.printAnswers && !options.explain) {
    throw new UsageError('--json goes with --dry-run, --print-answers or --explain');
  }
  const readOnly = Boolean(options.dryRun || options.printAnswers || options.explain);
  const interactive = isTerminal() && !options.nonInteractive && !readOnly;
  // The TUI's modules load while the answers are resolved: the first screen comes sooner.
  const app = interactive ? import('./app.js') : undefined;
  const { openInstaller } = await import('./installer/index.js');
  const session = await openInstaller({ root, flags, env, answersFile: options.answers, hostname: os.hostname() }, { dryRun: readOnly });
  if (app) {
    const { runInteractiveInstall } = await app;
    return runInteractiveInstall(session, { yes: Boolean(options.yes) });
  }
  const unattended = await import('./installer/unattended.js');
  if (options.printAnswers) {
    unattended.printAnswers(session, { json: Boolean(options.json), explain: Boolean(options.explain) }, io);
    return EXIT.ok;
  }
  if (options.dryRun) {
    if (options.explain && !options.json) {
      unattended.explainAnswers(session, false, io);
      io.out('');
    }
    return unattended.dryRun(session, Boolean(options.json), io);
  }
  if (options.explain) {
    unattended.explainAnswers(session, Boolean(options.json), io);
    return EXIT.ok;
  }
  return unattended.runUnattended(session, io);
}

/** `knocker haproxy …` (CONTRACTS.md); the work is in src/haproxy/, loaded when one runs. */
function addHaproxyCommands(program: Command): void {
  const haproxy = program
    .command('haproxy')
    .description('a local HAProxy in front of the web nodes, health-checked on /_status')
    .addHelpText(
      'after',
      [
        '',
        'Nodes are written NAME=HOST:PORT (NAME is also the persistence cookie). setup, add and remove',
        'rewrite /etc/haproxy/haproxy.cfg: checked with haproxy -c before it replaces the old one (kept as',
        '.bak), then HAProxy is reloaded without dropping connections, keeping DRAIN and MAINT. A change',
        'that fails is undone and the old configuration keeps serving.',
        '',
        'Exit codes: 0 done (status: every node UP), 1 status: a node is not UP, 2 invalid input (nothing',
        'changed), 3 preflight failed or HAProxy not set up or not answering, 4 failed and undone, 5 failed',
        'and not fully undone.',
      ].join('\n'),
    );
  const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];
  const rootOf = (command: Command) => rootFrom(command.optsWithGlobals());
  const haproxyModule = () => import('./haproxy/index.js');

  haproxy
    .command('setup')
    .description('write the configuration for these web nodes and start (or reload) HAProxy')
    .argument('[nodes...]', 'web nodes, NAME=HOST:PORT (default: the nodes of the configuration in place)')
    .option('--backup <node>', 'a hot/cold standby NAME=HOST:PORT: serves only while every active node is down (repeatable)', collect)
    .option('--from-registry', 'every server registered in the shared database (its servers table)')
    .option('--conn <uri>', 'with --from-registry: the database connection string (default: DatabaseURL in knocknoc.conf)')
    .option('--bind <ip:port>', 'where HAProxy listens (default: the address in place, else 0.0.0.0:80, or 0.0.0.0:443 with --cert)')
    .option('--cert <pem>', 'serve HTTPS with this PEM file (certificate chain and private key); plain HTTP redirects to it')
    .option('--no-cert', 'serve plain HTTP again (drops the certificate in place)')
    .option('--http-bind <ip:port>', 'with --cert: where plain HTTP is redirected to HTTPS (default: the --bind address, port 80)')
    .option('--dry-run', 'check and print the plan (the configuration diff, the reload); change nothing')
    .option('--json', 'with --dry-run: machine-readable output')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  knocker haproxy setup web-1=192.0.2.11:8756 web-2=192.0.2.12:8756 --bind 0.0.0.0:80',
        '  knocker haproxy setup --from-registry --backup web-3=192.0.2.13:8756',
        '  knocker haproxy setup web-1=192.0.2.11:8756 --cert /etc/haproxy/knocknoc.pem',
      ].join('\n'),
    )
    .action(async (nodes: string[], options: { backup?: string[]; fromRegistry?: boolean; conn?: string; bind?: string; cert?: string | false; httpBind?: string; dryRun?: boolean; json?: boolean }, command: Command) => {
      if (options.json && !options.dryRun) throw new UsageError('--json goes with --dry-run');
      const { haproxySetup } = await haproxyModule();
      process.exitCode = await haproxySetup(
        rootOf(command),
        {
          nodes,
          backup: options.backup ?? [],
          fromRegistry: Boolean(options.fromRegistry),
          conn: options.conn,
          bind: options.bind,
          cert: typeof options.cert === 'string' ? path.resolve(options.cert) : options.cert,
          httpBind: options.httpBind,
          dryRun: Boolean(options.dryRun),
          json: Boolean(options.json),
        },
        io,
      );
    });

  haproxy
    .command('add')
    .description('add web nodes to the configuration and reload HAProxy')
    .argument('[nodes...]', 'web nodes, NAME=HOST:PORT')
    .option('--backup <node>', 'a hot/cold standby NAME=HOST:PORT (repeatable)', collect)
    .option('--dry-run', 'print the plan; change nothing')
    .option('--json', 'with --dry-run: machine-readable output')
    .action(async (nodes: string[], options: { backup?: string[]; dryRun?: boolean; json?: boolean }, command: Command) => {
      if (options.json && !options.dryRun) throw new UsageError('--json goes with --dry-run');
      const { haproxyAdd } = await haproxyModule();
      process.exitCode = await haproxyAdd(rootOf(command), nodes, options.backup ?? [], { dryRun: Boolean(options.dryRun), json: Boolean(options.json) }, io);
    });

  haproxy
    .command('remove')
    .description('remove web nodes from the configuration and reload HAProxy')
    .argument('<names...>', 'node names')
    .option('--dry-run', 'print the plan; change nothing')
    .option('--json', 'with --dry-run: machine-readable output')
    .action(async (names: string[], options: { dryRun?: boolean; json?: boolean }, command: Command) => {
      if (options.json && !options.dryRun) throw new UsageError('--json goes with --dry-run');
      const { haproxyRemove } = await haproxyModule();
      process.exitCode = await haproxyRemove(rootOf(command), names, { dryRun: Boolean(options.dryRun), json: Boolean(options.json) }, io);
    });

  haproxy
    .command('list')
    .description('the web nodes and listen addresses of the configuration')
    .option('--json', 'machine-readable output')
    .action(async (options: { json?: boolean }, command: Command) => {
      const { haproxyList } = await haproxyModule();
      process.exitCode = await haproxyList(rootOf(command), { json: Boolean(options.json) }, io);
    });

  const rotation: Array<['drain' | 'maint' | 'ready', string]> = [
    ['drain', 'take a node out of load balancing: no new sessions, clients holding its cookie still reach it'],
    ['maint', 'put a node in maintenance: no traffic at all, health checks paused (kept across reloads)'],
    ['ready', 'bring a node back into rotation, only after it passes a health check'],
  ];
  for (const [action, description] of rotation) {
    const sub = haproxy.command(action).description(description).argument('<name>', 'node name');
    if (action === 'ready') sub.option('--timeout <seconds>', 'how long to wait for a passing check; it stays out of rotation if none passes', '30');
    sub.action(async (name: string, options: { timeout?: string }, command: Command) => {
      const timeoutSeconds = Number(options.timeout ?? 30);
      if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new UsageError(`--timeout: "${options.timeout}" is not a number of seconds`);
      const { haproxyRotation } = await haproxyModule();
      process.exitCode = await haproxyRotation(rootOf(command), action, name, { timeoutSeconds }, io);
    });
  }

  haproxy
    .command('status')
    .description("the nodes as HAProxy sees them (show stat on its read-only socket): UP, DOWN, DRAIN, MAINT, last check, sessions")
    .option('--json', 'machine-readable output')
    .action(async (options: { json?: boolean }, command: Command) => {
      const { haproxyStatus } = await haproxyModule();
      process.exitCode = await haproxyStatus(rootOf(command), { json: Boolean(options.json) }, io);
    });

}

export function buildProgram(): Command {
  const program = new Command('knocker')
    .description('Install and operate self-hosted Knocknoc servers')
    .version(packageVersion(), '-V, --version')
    .option('--root <dir>', 'work on a sandbox root folder instead of the real system (env KNOCKNOC_ROOT)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command('install')
    .description('install or reconfigure Knocknoc on this host (interactive on a terminal, else unattended)')
    .option('--answers <file>', 'answers file (YAML or JSON): pre-fills the questions, or drives an unattended run')
    .option('--non-interactive', 'never prompt; every missing answer is reported at once (exit 2)')
    .option('--listen <ip:port>', 'address and port to listen on (default 127.0.0.1:8756)')
    .option('--trusted-forwarders <cidrs>', 'proxies trusted to set X-Forwarded-For, comma separated (default 127.0.0.1/32)')
    .addOption(new Option('--database-option <n>', 'database: 1 local PostgreSQL, 2 new external PostgreSQL, 3 existing Knocknoc database').choices(['1', '2', '3']))
    .option('--database-url <url>', 'connection string for options 2 and 3 (prefer KNOCKNOC_DATABASE_URL or database.urlFile: argv is visible to other users)')
    .option('--server-name <name>', 'this server\'s name in the cluster (default: the host name)')
    .option('--dry-run', 'check and print the plan (file diffs, SQL, commands, services); change nothing')
    .option('--json', 'with --dry-run, --print-answers or --explain: machine-readable output')
    .option('--print-answers', 'print the resolved answers as an answers file, password redacted; change nothing')
    .option('--explain', 'show where each value came from (flag, environment, answers file, knocknoc.conf, default); change nothing')
    .option('--yes', 'interactive: apply without the final confirmation')
    .addHelpText(
      'after',
      [
        '',
        'Precedence of a value: flag > environment (KNOCKNOC_LISTEN, KNOCKNOC_TRUSTED_FORWARDERS,',
        'KNOCKNOC_DATABASE_OPTION, KNOCKNOC_DATABASE_URL, KNOCKNOC_SERVER_NAME) > answers file >',
        'existing knocknoc.conf > default.',
        '',
        'Exit codes: 0 done, 2 invalid input (nothing changed), 3 preflight failed (nothing changed),',
        '4 applying failed and was rolled back, 5 rollback incomplete (what remains is printed).',
      ].join('\n'),
    )
    .action(async (options: InstallOptions, command: Command) => {
      process.exitCode = await install(options, rootFrom(command.optsWithGlobals()));
    });

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
      const { serviceCommand } = await import('./service/index.js');
      process.exitCode = await serviceCommand(action, which, rootFrom(command.optsWithGlobals()), io);
    });

  program
    .command('exposedb')
    .description('share this primary\'s database with other web nodes, behind an allow-list of their addresses')
    .addOption(new Option('--init').conflicts(['add', 'remove', 'list']))
    .addOption(new Option('--add <CIDR>').argParser(once('--add')).conflicts(['remove', 'list']))
    .addOption(new Option('--remove <CIDR>').argParser(once('--remove')).conflicts(['list']))
    .option('--list')
    .addOption(new Option('--conn <URI>').argParser(once('--conn')))
    .addOption(new Option('--host <ADDR>').argParser(once('--host')))
    // The help is Knocknoc's own text for exposedb, shown for -h/--help and after every misuse.
    .configureHelp({ formatHelp: () => EXPOSEDB_HELP })
    .showHelpAfterError(true)
    .action(async (options: ExposeOptions, command: Command) => {
      const action = options.init ? 'init' : options.add !== undefined ? 'add' : options.remove !== undefined ? 'remove' : options.list ? 'list' : undefined;
      if (!action) {
        // Bare `knocker exposedb` shows the help, as Knocknoc's does; it is still not a run.
        if (Object.keys(options).length > 0) command.error('error: choose what to do: --init, --add <CIDR>, --remove <CIDR> or --list');
        command.outputHelp({ error: true });
        process.exitCode = EXIT.usage;
        return;
      }
      if (options.host !== undefined && action !== 'init') command.error('error: --host goes with --init (it sets the host of the printed connection string)');
      const { runExposeDb } = await import('./exposedb/index.js');
      const request = { action, cidr: options.add ?? options.remove, conn: options.conn, host: options.host } as const;
      process.exitCode = await runExposeDb(request, { root: rootFrom(command.optsWithGlobals()), io });
    });

  program
    .command('status')
    .description('the live cluster dashboard: every server sharing the database, its /_status, HAProxy and PostgreSQL')
    .option('--once', 'print one plain-text snapshot and exit (what it does without a terminal)')
    .option('--json', 'print one JSON snapshot and exit (fields: README, "knocker status --json")')
    .addOption(new Option('--interval <seconds>', 'refresh every SECONDS, 0.5 to 60 (keys + and - change it live)').default(2).argParser(secondsOption(0.5, 60)))
    .option('--admin', 'let the screen drain, maint or ready the selected server through HAProxy (each asks first); read-only without it')
    .addHelpText(
      'after',
      [
        '',
        'Reads the shared database named by DatabaseURL in knocknoc.conf (its servers registry, role,',
        'replication and connections), asks every server for its /_status, and reads HAProxy\'s read-only',
        'socket when knocker set HAProxy up on this host. A source that fails keeps its last data, shown',
        'as stale with its age and error, and is retried at every refresh.',
        '',
        'Keys: ↑/↓ PgUp/PgDn select · / filter (! in front inverts) · p pause · +/- interval · r refresh · ? help · q quit',
        '      with --admin: d drain · m maint · R ready (back in rotation once a check passes)',
        '',
        'Exit codes of --once and --json: 0 every server healthy, 1 degraded (a server offline, failing',
        '/_status, out of step or out of rotation), 3 the database could not be reached.',
      ].join('\n'),
    )
    .action(async (options: { once?: boolean; json?: boolean; interval: number; admin?: boolean }, command: Command) => {
      const root = rootFrom(command.optsWithGlobals());
      const intervalMs = options.interval * 1000;
      const live = !options.once && !options.json && isTerminal();
      if (options.admin && (options.once || options.json)) throw new UsageError('--admin is for the live screen: it cannot go with --once or --json');
      const status = await import('./status/index.js');
      if (!live) {
        process.exitCode = await status.printStatus(root, { intervalMs, json: Boolean(options.json) }, io);
        return;
      }
      const monitor = await status.openMonitor(root, { intervalMs });
      const [{ runDashboard }, actions] = await Promise.all([import('./status-app.js'), options.admin ? import('./status/actions.js') : undefined]);
      process.exitCode = await runDashboard({
        monitor,
        staleAfterMs: () => status.staleAfterMs(monitor),
        ...(actions ? { rotate: (name, action, onStatus) => actions.rotateServer(root, name, action, onStatus) } : {}),
      });
    });

  program
    .command('upgrade')
    .description('rolling upgrade of every web node through HAProxy, one server at a time, with no failed request')
    .option('--upgrade-command <command>', 'the command that upgrades one server; {name}, {host} and {port} are filled in (run without a shell; env KNOCKNOC_UPGRADE_COMMAND keeps a token out of argv)')
    .option('--first <name>', 'the server upgraded first, alone in rotation (default: this host\'s node, else the first active node by name)')
    .option('--to-version <version>', 'the release every server must reach (default: the one the first server comes back on)')
    .option('--resume', 'go on with an upgrade that stopped or was cut off, from its journal')
    .option('--rollback', 'put rotation back for an unfinished upgrade and close it (upgraded servers stay upgraded; one out of step with the database stays in maintenance)')
    .option('--dry-run', 'check the cluster and print the steps; change nothing')
    .option('--json', 'with --dry-run: machine-readable output')
    .option('--non-interactive', 'plain progress lines instead of the screen (what it does without a terminal)')
    .option('--yes', 'the screen: start without asking')
    .addOption(new Option('--drain-timeout <seconds>', 'how long to wait for the sessions of drained servers to end before maintenance').default(DEFAULT_UPGRADE.drainTimeoutSeconds).argParser(secondsOption(0, 3600)))
    .addOption(new Option('--timeout <seconds>', 'how long a server may take to answer on the new version, and to pass HAProxy\'s check').default(DEFAULT_UPGRADE.timeoutSeconds).argParser(secondsOption(1, 3600)))
    .addOption(new Option('--command-timeout <seconds>', 'how long one upgrade command may run').default(DEFAULT_UPGRADE.commandTimeoutSeconds).argParser(secondsOption(1, 86_400)))
    .addHelpText(
      'after',
      [
        '',
        'Run it on the host of knocker\'s HAProxy. Steps (the seed\'s "Upgrading servers in an HA deployment"):',
        '  1. check: every server in the registry of the shared database is online, answers /_status 200',
        '     in step, and is UP in HAProxy (and HAProxy has no other node); anything else stops here',
        '  2. drain every server but the first, wait for their sessions to end (--drain-timeout), put them',
        '     in maintenance, and confirm from HAProxy\'s counters that they get no traffic',
        '  3. turn the first server\'s health checks off (HAProxy holds its requests through the retries),',
        '     run the upgrade command for it, wait until it answers on the new version in step with the',
        '     migrated database, and turn its checks on again',
        '  4. for each other server: the upgrade command, /_status on the same version, then back into',
        '     rotation once HAProxy\'s check passes',
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
      const root = rootFrom(command.optsWithGlobals());
      const upgrade = await import('./upgrade/index.js');
      if (options.rollback) {
        const others = (['upgradeCommand', 'first', 'toVersion', 'resume', 'dryRun', 'json', 'yes'] as const).filter((k) => options[k] !== undefined);
        if (others.length > 0) throw new UsageError('--rollback goes alone (with --root)');
        process.exitCode = await upgrade.rollbackUpgrade(root, io);
        return;
      }
      if (options.json && !options.dryRun) throw new UsageError('--json goes with --dry-run');
      const settings = {
        command: options.upgradeCommand ?? process.env.KNOCKNOC_UPGRADE_COMMAND,
        first: options.first,
        toVersion: options.toVersion,
        resume: Boolean(options.resume),
        drainTimeoutSeconds: options.drainTimeout,
        timeoutSeconds: options.timeout,
        commandTimeoutSeconds: options.commandTimeout,
      };
      if (options.resume && options.first !== undefined) throw new UsageError('--first cannot change on --resume: the journal says which server went first');
      const interactive = isTerminal() && !options.nonInteractive && !options.dryRun;
      if (!interactive) {
        process.exitCode = await upgrade.runUpgradePlain(root, { ...settings, dryRun: Boolean(options.dryRun), json: Boolean(options.json) }, io);
        return;
      }
      const [{ runUpgradeScreen }, session] = await Promise.all([import('./upgrade-app.js'), upgrade.prepareUpgrade(root, settings)]);
      process.exitCode = await runUpgradeScreen(session, { yes: Boolean(options.yes) });
    });

  addHaproxyCommands(program);
  return program;
}

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

function secondsOption(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+(\.\d+)?$/.test(value.trim()) || n < min || n > max) throw new InvalidArgumentError(`give a number of seconds from ${min} to ${max}`);
    return n;
  };
}

interface ExposeOptions {
  init?: boolean;
  add?: string;
  remove?: string;
  list?: boolean;
  conn?: string;
  host?: string;
}


/** An option that may be given once: a repeat is a mistake, not "the last one wins". */
function once(flag: string) {
  return (value: string, previous: unknown): string => {
    if (previous !== undefined) throw new InvalidArgumentError(`${flag} may be given only once`);
    return value;
  };
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version exit 0; help shown because of a mistake (no command) is misuse.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    for (const line of formatError(error)) io.err(line);
    return exitCodeOf(error);
  }
}
