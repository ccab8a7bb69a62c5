// bin/knocker install in a real terminal (tmux), typed as a person would.
import fs from 'node:fs/promises';
import { afterEach, expect, test } from 'vitest';
import { KnocknocConf } from '../../src/config/knocknoc-conf.js';
import { PATHS } from '../../src/system/root.js';
import { cleanEnv, KNOCKER } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';
import { openTerminal, type Terminal } from '../helpers/tmux.js';

const newRoot = useRoots();
const terminals: Terminal[] = [];
afterEach(async () => {
  await Promise.all(terminals.splice(0).map((t) => t.close()));
});

async function terminal(args: string[]): Promise<Terminal> {
  const t = await openTerminal([process.execPath, KNOCKER, ...args], { env: cleanEnv({ TERM: 'xterm-256color' }) });
  terminals.push(t);
  return t;
}

test('install on a sandbox root, answering the questions at the keyboard', async () => {
  const root = await newRoot();
  const t = await terminal(['install', '--root', root.dir]);
  await t.waitFor('Enter IP and port to listen on (default: 127.0.0.1:8756):');
  expect((await t.screen()).replace(/\s+/g, ' ')).toContain('(No existing configuration detected, starting fresh)');
  await t.type('127.0.0.25:87');
  await t.type('x');
  await t.waitFor('"87x" is not a port number (1–65535)');
  await t.keys('BSpace');
  await t.type('56');
  await t.keys('Enter');
  await t.waitFor('Enter TrustedForwarders (default: 127.0.0.1/32):');
  await t.type('10.9.8.7/16');
  await t.keys('Enter');
  await t.waitFor('Option 1, 2, or 3? (default is 1):');
  await t.keys('Escape');
  await t.waitFor('Enter TrustedForwarders (default: 10.9.0.0/16):');
  await t.keys('Enter');
  await t.waitFor('Option 1, 2, or 3?');
  await t.keys('1');
  await t.waitFor("Enter this server's name (default: ");
  await t.keys('Enter');
  await t.waitFor('Set up HAProxy on this host? (default: no):');
  await t.keys('Enter');
  const plan = await t.waitFor('Apply these 7 changes?');
  expect(plan).toMatch(/\+DatabaseURL = postgres:\/\/knocknoc:\*\*\*\*@127\.0\.0\.25:\d+\/knocknoc/);
  await t.keys('y');
  const done = await t.waitFor('EXIT=0', 60_000);
  expect(done).toMatch(/Knocknoc is installed: 7 changes in/);
  const conf = KnocknocConf.parse(await fs.readFile(root.path(PATHS.conf), 'utf8'));
  expect(conf.get('Listen')).toBe('127.0.0.25:8756');
  expect(conf.get('TrustedForwarders')).toBe('10.9.0.0/16');
  expect(done).not.toContain(/knocknoc:([^@*]+)@/.exec(conf.get('DatabaseURL')!)![1]!);
});

test('Ctrl+C before applying cancels, and nothing is changed', async () => {
  const root = await newRoot();
  const t = await terminal(['install', '--root', root.dir]);
  await t.waitFor('Enter IP and port to listen on');
  await t.keys('Enter', 'Enter', '3');
  await t.waitFor('Enter pre-existing external Knocknoc database connection string:');
  await t.type('postgres://knocknoc:topsecret@127.0.0.1:5/knocknoc');
  const typed = await t.waitFor('postgres://knocknoc:*********@127.0.0.1:5/knocknoc');
  expect(typed).not.toContain('topsecret');
  await t.keys('C-c');
  const screen = await t.waitFor('EXIT=130');
  expect(screen).toContain('Cancelled: nothing was changed.');
  expect(await fs.readdir(root.dir)).toEqual([]);
});
