// The only door: parses arguments, reads the environment, decides once whether the run is
// interactive, builds the services, then renders the TUI or runs the plain path. Every error ends
// here and becomes an exit code (CONTRACTS.md).
import os from 'node:os';
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

  return program;
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
