// Every command's --help, byte for byte, against a stored copy (test/fixtures/help/): a change to
// help text is deliberate. Regenerate after one with `UPDATE_HELP=1 npx vitest run test/cli/help.test.ts`
// and read the diff. A command without a stored copy fails, so a new command brings its help along.
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { expect, test } from 'vitest';
import { buildProgram } from '../../src/cli.js';
import { cleanEnv, KNOCKER, REPO } from '../helpers/knocker.js';
import { SERVER_BIN } from '../helpers/server.js';

const FIXTURES = path.join(REPO, 'test', 'fixtures', 'help');
const update = process.env.UPDATE_HELP === '1';

/** Every command path of the program: [], ['install'], ['haproxy', 'setup'], … */
function commandPaths(command: Command, prefix: string[] = []): string[][] {
  return [prefix, ...command.commands.filter((c) => c.name() !== 'help').flatMap((c) => commandPaths(c, [...prefix, c.name()]))];
}

function fixtureName(words: string[]): string {
  return `${['knocker', ...words].join('-')}.txt`;
}

function compare(file: string, actual: string): void {
  const stored = path.join(FIXTURES, file);
  if (update) fs.writeFileSync(stored, actual);
  expect(actual, `${file} changed: if on purpose, UPDATE_HELP=1`).toBe(fs.readFileSync(stored, 'utf8'));
}

/** The program's output exactly as a terminal would get it (execa would strip the last newline). */
async function run(bin: string, args: string[]) {
  const result = await execa(process.execPath, [bin, ...args], { env: cleanEnv(), extendEnv: false, reject: false, stripFinalNewline: false });
  return { exitCode: result.exitCode, stdout: String(result.stdout), stderr: String(result.stderr) };
}

const program = buildProgram({ io: { out() {}, err() {} }, env: {}, terminal: false, exit() {}, interrupted: new AbortController().signal });
const paths = commandPaths(program);

test('every command has a stored help, and every stored help a command', () => {
  const expected = [...paths.map(fixtureName), 'knocknoc-server.txt'].sort();
  expect(fs.readdirSync(FIXTURES).sort()).toEqual(expected);
});

test.each(paths.map((words) => [words.join(' ') || '(no command)', words] as const))('knocker %s --help is unchanged', async (_label, words) => {
  const result = await run(KNOCKER, [...words, '--help']);
  expect(result.exitCode).toBe(0);
  expect(result.stderr).toBe('');
  compare(fixtureName(words), result.stdout);
});

test('knocknoc-server --help is unchanged', async () => {
  const result = await run(SERVER_BIN, ['--help']);
  expect(result.exitCode).toBe(0);
  compare('knocknoc-server.txt', result.stdout);
});
