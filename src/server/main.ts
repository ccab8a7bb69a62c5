// knocknoc-server's door (bin/knocknoc-server): the only place of the server that sees its
// arguments and environment. It finds knocknoc.conf, loads this release (the package's version and
// migrations, from its own folder), starts the node and stops it gracefully on SIGTERM or SIGINT.
//
// Exit codes: 0 stopped cleanly; 1 a bug; 2 bad arguments or configuration; 3 cannot start (the
// listen address or the database).
import fs from 'node:fs/promises';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { formatError } from '../errors.js';
import { loadRelease, type Release } from '../schema/index.js';
import { writeFileAtomic } from '../system/files.js';
import { boundedStdout, LOG_MAX_BYTES } from '../system/log.js';
import { PATHS, Root } from '../system/root.js';
import { plural } from '../system/units.js';
import { loadServerConfig } from './config.js';
import { serverLog } from './log.js';
import { startNode, StartError, type RunningNode } from './node.js';

const USAGE = `Usage: knocknoc-server [--config FILE] [--root DIR] [--pid-file FILE]

The Knocknoc web node: serves /_status and /, migrates the shared database when it starts, and
registers itself in it.

Options:
  --config FILE    knocknoc.conf to read (env KNOCKNOC_CONFIG; default /opt/knocknoc/etc/knocknoc.conf)
  --root DIR       take the default configuration path under DIR (env KNOCKNOC_ROOT)
  --pid-file FILE  write this process's id there while it runs
  -V, --version    print the version
  -h, --help       show this help

Exit codes: 0 stopped cleanly, 1 internal error, 2 bad arguments or configuration,
3 cannot start (listen address or database).`;

type Env = Record<string, string | undefined>;

/** The size knocknoc.log is kept under; KNOCKNOC_LOG_MAX_BYTES (at least 64 kB) lets a test see a rotation. */
function maxLogBytes(env: Env): number {
  const given = Number(env.KNOCKNOC_LOG_MAX_BYTES);
  return Number.isInteger(given) && given >= 65_536 ? given : LOG_MAX_BYTES;
}

function fail(lines: string[]): void {
  for (const line of lines) process.stderr.write(`knocknoc-server: ${line}\n`);
}

async function removePidFile(file: string | undefined): Promise<void> {
  if (!file) return;
  const content = await fs.readFile(file, 'utf8').catch(() => '');
  if (content.trim() === String(process.pid)) await fs.rm(file, { force: true });
}

async function serve(argv: string[], env: Env): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv.slice(2),
      options: {
        config: { type: 'string' },
        root: { type: 'string' },
        'pid-file': { type: 'string' },
        version: { type: 'boolean', short: 'V' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    fail([`error: ${(error as Error).message}`, '(run with --help for usage)']);
    return 2;
  }
  let release: Release;
  try {
    release = loadRelease();
  } catch (error) {
    fail([`error: this installation is broken: ${(error as Error).message}`, 'hint: reinstall the knocker package']);
    return 1;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (args.version) {
    process.stdout.write(`${release.version}\n`);
    return 0;
  }

  const root = new Root(args.root ?? env.KNOCKNOC_ROOT ?? '/');
  const file = args.config ?? env.KNOCKNOC_CONFIG ?? root.path(PATHS.conf);
  const pidFile = args['pid-file'];
  const log = serverLog(boundedStdout(maxLogBytes(env)));
  // The pid file is first, so whoever started us can tell us apart even if we fail at once.
  if (pidFile) await writeFileAtomic(pidFile, `${process.pid}\n`, { mode: 0o644, backup: false });

  let node: RunningNode | undefined;
  let signalled: string | undefined;
  let wake: (() => void) | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) return;
    signalled = signal;
    if (node) wake?.();
    else {
      // Still starting: nothing is served yet, and a migration in progress rolls back with its
      // connection, so leaving at once is safe.
      log.info(`${signal} while starting: exiting`);
      log.flush();
      void removePidFile(pidFile).finally(() => process.exit(0));
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    const loaded = await loadServerConfig(file, os.hostname());
    for (const warning of loaded.warnings) log.warn(warning);
    log.flush();
    if (!loaded.ok) {
      fail([`error: the configuration is not usable (${plural(loaded.problems.length, 'problem')}):`, ...loaded.problems.map((p) => `  ${p}`)]);
      return 2;
    }
    log.addSecret(loaded.config.databaseUrl.password);
    log.info(`configuration ${file}; release ${release.version} in ${release.root} (schema ${release.schemaVersion})`);
    try {
      node = await startNode({ config: loaded.config, release, log });
    } catch (error) {
      if (!(error instanceof StartError)) throw error;
      log.flush();
      fail([`error: ${log.scrub(error.message)}`, ...error.hints.map((h) => `hint: ${h}`)]);
      return error.exitCode;
    }
    await new Promise<void>((resolve) => {
      wake = resolve;
      if (signalled) resolve();
    });
    await node.stop(signalled ?? 'stop');
    return 0;
  } finally {
    log.flush();
    await removePidFile(pidFile);
  }
}

export async function main(argv: string[], env: Env): Promise<number> {
  try {
    return await serve(argv, env);
  } catch (error) {
    fail(formatError(error));
    return 1;
  }
}
