// The only door: parses arguments, reads the environment, decides once whether the run is
// interactive, and hands each command (src/commands/, one file each) what it needs. Every error
// ends here and becomes an exit code (CONTRACTS.md).
import { Command, CommanderError } from 'commander';
import { exposedbCommand } from './commands/exposedb.js';
import { haCommand } from './commands/ha.js';
import { haproxyCommand } from './commands/haproxy.js';
import { historyCommand } from './commands/history.js';
import { installCommand } from './commands/install.js';
import { serverCommand } from './commands/server.js';
import { serviceCommand } from './commands/service.js';
import { standbyCommand } from './commands/standby.js';
import { statusCommand } from './commands/status.js';
import { uninstallCommand } from './commands/uninstall.js';
import { upgradeCommand } from './commands/upgrade.js';
import type { CommandContext } from './commands/context.js';
import { EXIT, exitCodeOf, formatError } from './errors.js';
import type { Output } from './shared/output.js';
import { jsonFailure, wantsJson } from './shared/json-failure.js';
import { printable } from './shared/printable.js';
import { packageVersion } from './system/package.js';

// A reader that went away (`knocker install --help | head -1`) is not an error of the run: what
// is left to print is dropped, and the run goes on to its end (an install is never cut short).
// This is the program's one rule for a closed output pipe (src/entry.ts adds none).
// A command that runs until stopped (`service logs -f`) ends when its reader has gone, as on Ctrl-C.
const closed = new Set<NodeJS.WriteStream>();
const whenReaderGone = new Set<() => void>();
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error;
    closed.add(stream);
    if (stream === process.stdout) for (const end of whenReaderGone) end();
  });
}

/** Whether anything was printed on stdout: a failed --json run that printed nothing prints its error as JSON. */
let printedOut = false;

/** Writes text that may hold outside strings (names from the database, HAProxy's words): control characters are shown, not obeyed. */
function write(stream: NodeJS.WriteStream, text: string): void {
  if (stream === process.stdout) printedOut = true;
  if (!closed.has(stream)) stream.write(printable(text));
}

const io: Output = {
  out: (line) => write(process.stdout, `${line}\n`),
  err: (line) => write(process.stderr, `${line}\n`),
};

export function buildProgram(ctx: CommandContext): Command {
  const program = new Command('knocker')
    .description('Install and operate self-hosted Knocknoc servers')
    .version(packageVersion(), '-V, --version')
    .option('--root <dir>', 'work on a sandbox root folder instead of the real system (env KNOCKNOC_ROOT)')
    .option('--no-color', 'draw no colour (as NO_COLOR=1 does); health is always a word and a symbol too')
    .showHelpAfterError('(run with --help for usage)')
    // Every command's help shows --root too: it works under every one of them.
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .configureOutput({ writeOut: (s) => write(process.stdout, s), writeErr: (s) => write(process.stderr, s) })
    // no-color.org: NO_COLOR set and not empty turns colour off, as --no-color does.
    .hook('preAction', async () => {
      if (program.opts<{ color: boolean }>().color === false || (ctx.env.NO_COLOR ?? '') !== '') (await import('./screens/theme.js')).turnColourOff();
    });
  for (const add of [
    installCommand,
    serviceCommand,
    serverCommand,
    exposedbCommand,
    statusCommand,
    upgradeCommand,
    haproxyCommand,
    standbyCommand,
    historyCommand,
    haCommand,
    uninstallCommand,
  ])
    add(program, ctx);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  let exitCode: number = EXIT.ok;
  let interruption: AbortSignal | undefined;
  const ctx: CommandContext = {
    io,
    env: process.env,
    terminal: Boolean(process.stdin.isTTY && process.stdout.isTTY),
    exit: (code) => {
      exitCode = code;
    },
    async readStdin(maxBytes) {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of process.stdin) {
        chunks.push(chunk as Buffer);
        size += (chunk as Buffer).length;
        if (size > maxBytes) break;
      }
      return Buffer.concat(chunks).subarray(0, maxBytes).toString('utf8');
    },
    async ask(question) {
      const readline = await import('node:readline/promises');
      const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
      try {
        return await rl.question(question);
      } finally {
        rl.close();
      }
    },
    // One key, unechoed: the terminal in raw mode for that key only (Ctrl-C arrives as a key, \x03).
    async readKey(prompt) {
      const stdin = process.stdin;
      write(process.stderr, prompt);
      stdin.setRawMode(true);
      stdin.resume();
      try {
        const chunk = await new Promise<Buffer>((resolve) => stdin.once('data', resolve));
        return chunk.toString('utf8');
      } finally {
        stdin.setRawMode(false);
        stdin.pause();
        write(process.stderr, '\n');
      }
    },
    // Only a command that asks for it takes Ctrl-C over: the others keep their own handling. It
    // ends also when stdout's reader has gone (`… | head -1`).
    get interrupted() {
      if (!interruption) {
        const controller = new AbortController();
        interruption = controller.signal;
        for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => controller.abort());
        whenReaderGone.add(() => controller.abort());
        if (closed.has(process.stdout)) controller.abort();
      }
      return interruption;
    },
  };
  try {
    await buildProgram(ctx).parseAsync(argv);
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version exit 0; help shown because of a mistake (no command) is misuse.
      if (error.exitCode === 0) return EXIT.ok;
      if (wantsJson(argv) && !printedOut) io.out(jsonFailure(error, EXIT.usage, argv));
      return EXIT.usage;
    }
    for (const line of formatError(error)) io.err(line);
    const code = exitCodeOf(error);
    if (wantsJson(argv) && !printedOut) io.out(jsonFailure(error, code, argv));
    return code;
  }
}
