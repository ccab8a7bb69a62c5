// `knocker install`: the installer's flags and help, and the choice between its screen and its
// unattended run (src/installer/, src/app.tsx).
import os from 'node:os';
import { Option, type Command } from 'commander';
import { EXIT, UsageError } from '../errors.js';
import { ENV, FIELDS, type Field } from '../installer/answers.js';
import { rootOf, type CommandContext } from './context.js';

interface InstallOptions {
  answers?: string;
  nonInteractive?: boolean;
  listen?: string;
  trustedForwarders?: string;
  databaseOption?: string;
  databaseUrl?: string;
  databaseCa?: string;
  serverName?: string;
  dryRun?: boolean;
  json?: boolean;
  printAnswers?: boolean;
  explain?: boolean;
  yes?: boolean;
  join?: string;
}

export function installCommand(program: Command, ctx: CommandContext): void {
  program
    .command('install')
    .description('install or reconfigure Knocknoc on this host (interactive on a terminal, else unattended)')
    .option('--answers <file>', 'answers file (YAML or JSON): pre-fills the questions, or drives an unattended run')
    .option('--non-interactive', 'never prompt; every missing answer is reported at once (exit 2)')
    .option('--listen <ip:port>', 'address and port to listen on (default 127.0.0.1:8756)')
    .option('--trusted-forwarders <cidrs>', 'proxies trusted to set X-Forwarded-For, comma separated (default 127.0.0.1/32)')
    .addOption(
      new Option('--database-option <n>', 'database: 1 local PostgreSQL, 2 new external PostgreSQL, 3 existing Knocknoc database').choices(['1', '2', '3']),
    )
    .option('--database-url <url>', 'connection string for options 2 and 3 (prefer KNOCKNOC_DATABASE_URL or database.urlFile: argv is visible to other users)')
    .option(
      '--database-ca <file>',
      'options 2 and 3: the CA certificate that verifies the database server (from knocker exposedb --init on the primary); copied to /opt/knocknoc/etc/',
    )
    .option('--server-name <name>', "this server's name in the cluster (default: the host name)")
    .option(
      '--join <token>',
      'join the cluster with a token from knocker exposedb --invite on the primary (database option 3, its CA and allow-list entry); "-" reads it from stdin (or KNOCKER_JOIN_TOKEN)',
    )
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
        'KNOCKNOC_DATABASE_OPTION, KNOCKNOC_DATABASE_URL, KNOCKNOC_DATABASE_CA, KNOCKNOC_SERVER_NAME) >',
        'answers file > existing knocknoc.conf > default. With --join (or KNOCKER_JOIN_TOKEN, or `join:` in',
        'the answers file) the invitation gives the database answers: option 3, the connection string, the CA.',
        '',
        'Output: stdout carries only the result a script would capture (--print-answers, --explain, the',
        '--dry-run plan, their JSON); an unattended run prints its checks, progress and next steps on stderr.',
        '',
        'Exit codes: 0 done, 2 invalid input (nothing changed), 3 preflight failed (nothing changed),',
        '4 applying failed and was rolled back, 5 rollback incomplete (what remains is printed).',
      ].join('\n'),
    )
    .action(async (options: InstallOptions, command: Command) => {
      ctx.exit(await install(options, command, ctx));
    });
}

async function readJoinFromStdin(ctx: CommandContext): Promise<string> {
  if (!ctx.readStdin) throw new UsageError('--join -: there is no stdin to read the token from');
  const text = await ctx.readStdin(4096);
  const line = text.split('\n').find((l) => l.trim() !== '');
  if (line === undefined) throw new UsageError('--join -: stdin held no token; nothing was changed');
  return line.trim();
}

async function install(options: InstallOptions, command: Command, ctx: CommandContext): Promise<number> {
  const { io } = ctx;
  const flags: Partial<Record<Field, string>> = {
    listen: options.listen,
    trustedForwarders: options.trustedForwarders,
    databaseOption: options.databaseOption,
    databaseUrl: options.databaseUrl,
    databaseCa: options.databaseCa,
    serverName: options.serverName,
  };
  const env: Partial<Record<Field, string>> = {};
  for (const field of FIELDS) env[field] = ctx.env[ENV[field]];
  if (options.json && !options.dryRun && !options.printAnswers && !options.explain) {
    throw new UsageError('--json goes with --dry-run, --print-answers or --explain');
  }
  const readOnly = Boolean(options.dryRun || options.printAnswers || options.explain);
  // The token: the flag ("-": stdin, out of shell history and argv), else the environment.
  const joinToken = options.join === '-' ? await readJoinFromStdin(ctx) : (options.join ?? (ctx.env.KNOCKER_JOIN_TOKEN || undefined));
  const interactive = ctx.terminal && !options.nonInteractive && !readOnly;
  // The TUI's modules load while the answers are resolved: the first screen comes sooner.
  const app = interactive ? import('../app.js') : undefined;
  const { openInstaller } = await import('../installer/index.js');
  const root = rootOf(command, ctx);
  const session = await openInstaller(
    { root, flags, env, answersFile: options.answers, hostname: os.hostname(), ...(joinToken !== undefined ? { joinToken } : {}) },
    { dryRun: readOnly },
  );
  if (session.joinPreview) {
    for (const line of session.joinPreview) io.err(line);
    return EXIT.ok;
  }
  if (app) {
    const { runInteractiveInstall } = await app;
    return runInteractiveInstall(session, { yes: Boolean(options.yes) });
  }
  const unattended = await import('../installer/unattended.js');
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
  try {
    return await unattended.runUnattended(session, io);
  } catch (error) {
    const { spentInvitationHint } = await import('../installer/index.js');
    spentInvitationHint(error, session);
    throw error;
  }
}
