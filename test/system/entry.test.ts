// src/entry.ts from a checkout (bin/knocker): a reader that goes away is not a crash, and the
// hidden programs the single executable starts itself as are there too.
import { execa } from 'execa';
import { expect, test } from 'vitest';
import { cleanEnv, knocker, KNOCKER } from '../helpers/knocker.js';

test('`knocker install --help | head -1`: a closed pipe ends the output quietly, exit 0', async () => {
  const child = execa(process.execPath, [KNOCKER, 'install', '--help'], {
    env: cleanEnv(),
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
    buffer: { stdout: false },
  });
  // Our end of its stdout is closed before Node has even started: its writes fail with EPIPE.
  child.stdout!.destroy();
  const result = await child;
  expect(result.stderr).toBe('');
  expect(result.exitCode).toBe(0);
});

test('`knocker __server` is knocknoc-server, and neither hidden command shows in the help', async () => {
  const server = await knocker(['__server', '--help']);
  expect(server.exitCode).toBe(0);
  expect(server.stdout).toMatch(/^Usage: knocknoc-server \[--config FILE\]/);
  const help = await knocker(['--help']);
  expect(help.stdout).toContain('Commands:');
  expect(help.stdout).not.toMatch(/__server|__admin-helper/);
});

test('`knocker __admin-helper` is the administrator helper: it answers on stdin/stdout and ends with it', async () => {
  // No session can open without a cluster: the helper says so in its protocol and exits.
  const helper = await knocker(['__admin-helper'], {
    input: `${JSON.stringify({ osUser: 'root', uid: 0, gid: 0, socketDir: '/nonexistent', port: 1, user: 'root', database: 'postgres' })}\n`,
  });
  const hello = JSON.parse(helper.stdout.split('\n')[0]!) as { ready: boolean; error?: { message: string } };
  expect(hello.ready).toBe(false);
  expect(hello.error?.message).toMatch(/ENOENT|connect/);
  expect(helper.exitCode).toBe(0);
});
