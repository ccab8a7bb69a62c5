// Every command a hint prints runs as printed, in the same context: under --root it keeps the
// root, and it parses as a knocker command line (real command, real options). Collected from what
// real runs print on a sandbox root: an install's "Next:" lines and its HAProxy TrustedForwarders
// warning, the hints of commands that fail on a root with nothing set up, and notes of exposedb.
import type { Command } from 'commander';
import { expect, test } from 'vitest';
import { buildProgram } from '../../src/cli.js';
import { freePort } from '../../src/system/host.js';
import { splitWords } from '../../src/upgrade/command.js';
import { knocker } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';

const newRoot = useRoots();

/** The knocker program with every action a no-op: parsing alone, which throws on a mistake. */
function parser(): Command {
  const program = buildProgram({ io: { out() {}, err() {} }, env: {}, terminal: false, exit() {}, interrupted: new AbortController().signal });
  const quiet = (command: Command): void => {
    command.exitOverride().configureOutput({ writeOut() {}, writeErr() {} });
    if (command.commands.length === 0) command.action(() => {});
    command.commands.forEach(quiet);
  };
  quiet(program);
  return program;
}

/** The knocker commands in lines of advice: hints, warnings, notes, "Next:" items, and `knocker …` in backquotes. */
export function hintedCommands(text: string): string[] {
  const found: string[] = [];
  for (const line of text.split('\n')) {
    const advice = /^\s*(hint:|warning:|note:|- )/.test(line) || line.includes('`knocker ') || /(with|run|it) knocker /.test(line);
    if (!advice) continue;
    for (const match of line.matchAll(
      /`(knocker [^`]+)`|(?<![\w/-])(knocker (?:install|service|server|exposedb|status|upgrade|haproxy|uninstall)\b[^`;()\n]*)/g,
    )) {
      const command = (match[1] ?? match[2]!)
        .replace(/[.,:]+$/, '')
        .replace(/ (first|again|here|there|for each node)$/, '')
        .trim();
      // "knocker status and knocker upgrade" in prose names programs, not a command to paste.
      if (/^knocker (status|upgrade) and /.test(command) || (/^knocker (status|upgrade)$/.test(command) && !line.includes('`'))) continue;
      found.push(command);
    }
  }
  return found;
}

async function expectRunnable(commands: string[], rootDir: string): Promise<void> {
  expect(commands.length).toBeGreaterThan(0);
  for (const command of commands) {
    expect(command, 'keeps the root').toContain(`--root ${rootDir}`);
    const words = splitWords(command);
    expect(words.ok, command).toBe(true);
    if (!words.ok) continue;
    await expect(parser().parseAsync(['node', ...words.words]), command).resolves.toBeDefined();
  }
}

test('an install on a root: its Next lines and its TrustedForwarders warning keep --root and parse', async () => {
  const root = await newRoot();
  const listen = `127.0.0.151:${await freePort('127.0.0.151')}`;
  const bind = `127.0.0.152:${await freePort('127.0.0.152')}`;
  // HAProxy reaches this node from loopback, which these TrustedForwarders do not trust.
  const result = await knocker(
    ['install', '--root', root.dir, '--listen', listen, '--trusted-forwarders', '10.0.0.1/32', '--database-option', '1', '--server-name', 'web-h'],
    {
      env: { KNOCKNOC_ROOT: undefined },
      input: '',
    },
  );
  expect(result.exitCode, result.stderr).toBe(0);
  const setup = await knocker(['haproxy', 'setup', '--root', root.dir, `web-h=${listen}`, '--bind', bind]);
  expect(setup.exitCode, setup.stderr).toBe(0);
  expect(setup.stderr).toContain('which its TrustedForwarders (10.0.0.1/32) do not include');
  const exposed = await knocker(['exposedb', '--list', '--root', root.dir]);
  const commands = [...hintedCommands(result.stderr), ...hintedCommands(setup.stderr), ...hintedCommands(exposed.stderr)];
  expect(commands).toEqual(
    expect.arrayContaining([
      `knocker exposedb --init --root ${root.dir}`,
      `knocker service status --root ${root.dir}`,
      `knocker install --trusted-forwarders 10.0.0.1/32,127.0.0.1/32 --root ${root.dir}`,
    ]),
  );
  await expectRunnable(commands, root.dir);
});

test('commands that fail on an empty root name commands for that root, never a flag they lack', async () => {
  const root = await newRoot();
  const runs = await Promise.all([
    knocker(['service', 'status', '--root', root.dir]),
    knocker(['status', '--once', '--root', root.dir]),
    knocker(['haproxy', 'add', 'web-1=127.0.0.1:8756', '--root', root.dir]),
    knocker(['exposedb', '--list', '--root', root.dir]),
    knocker(['server', 'list', '--root', root.dir]),
  ]);
  for (const run of runs) expect(run.exitCode).toBe(3);
  const text = runs.map((r) => `${r.stdout}\n${r.stderr}`).join('\n');
  expect(text).not.toContain('--config FILE');
  await expectRunnable(hintedCommands(text), root.dir);
});

test('the extraction finds commands in the forms knocker prints them', () => {
  expect(hintedCommands('hint: run `knocker install --root /r` first')).toEqual(['knocker install --root /r']);
  expect(hintedCommands('  - health check: curl x; the server: knocker service status --root /r (also stop, start, restart)')).toEqual([
    'knocker service status --root /r',
  ]);
  expect(hintedCommands('knocker install (unattended) on root /r')).toEqual([]);
});
