// The upgrade screen as an operator sees it: bin/knocker upgrade in a real terminal (tmux), the
// checks and the steps, the question, then the run to its end.
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { cleanEnv, KNOCKER } from '../helpers/knocker.js';
import { makeRelease, type TestRelease } from '../helpers/release.js';
import { sharedDatabase } from '../helpers/server.js';
import { openTerminal, type Terminal } from '../helpers/tmux.js';
import { newDatabase, startUpgradeCluster, type UpgradeCluster } from '../helpers/upgrade.js';

const HOSTS = ['127.0.0.211', '127.0.0.212', '127.0.0.213'];
const db = sharedDatabase({ host: '127.0.0.210', allow: HOSTS });
let next: TestRelease;
let cluster: UpgradeCluster | undefined;
const terminals: Terminal[] = [];

beforeAll(async () => {
  next = await makeRelease({ version: '1.1.0', migrations: [{ name: 'tui_marker', sql: 'CREATE TABLE tui_marker (id int);' }] });
});
afterAll(async () => {
  await next?.destroy();
});
afterEach(async () => {
  await Promise.all(terminals.splice(0).map((t) => t.close()));
  await cluster?.stop();
  cluster = undefined;
});

/** Three nodes on 1.0.0, on a database of their own (an upgrade migrates it). */
async function freshCluster(): Promise<UpgradeCluster> {
  cluster = await startUpgradeCluster({ hosts: HOSTS, haproxyHost: '127.0.0.215', databaseUrl: await newDatabase(db) });
  return cluster;
}

async function open(c: UpgradeCluster): Promise<Terminal> {
  const t = await openTerminal([process.execPath, KNOCKER, 'upgrade', '--root', c.root.dir, '--upgrade-command', c.commandFor(next.dir)], {
    width: 100,
    height: 50,
    env: cleanEnv({ TERM: 'xterm-256color' }),
  });
  terminals.push(t);
  return t;
}

test('the screen asks first; q leaves with nothing changed', async () => {
  const c = await freshCluster();
  const t = await open(c);
  const screen = await t.waitFor('Start the upgrade?');
  expect(screen).toContain('knocker upgrade: 3 servers, web-1 first');
  expect(screen).toMatch(/✔ ok\s+web-2: online, \/_status 200 on 1\.0\.0/);
  expect(screen).toMatch(/web-1\s+127\.0\.0\.211:\d+\s+1\.0\.0\s+waiting \(first, alone in rotation\)/);
  expect(screen).toContain('Take web-2 and web-3 out of rotation');
  await t.keys('q');
  await t.waitFor('Nothing was changed.');
  await t.waitFor('EXIT=0');
  for (const row of await c.haproxy.status()) expect(row.statusText).toBe('UP');
});

test('y starts it (the one confirm style: Enter is no answer): each server through its phases to the new version', async () => {
  const c = await freshCluster();
  const t = await open(c);
  await t.waitFor('Start the upgrade? [y: yes · n/Esc: no]');
  await t.keys('y');
  const done = await t.waitFor(/Done: every server on 1\.1\.0 and in rotation/, 60_000);
  expect(done).toMatch(/web-3\s+127\.0\.0\.213:\d+\s+1\.0\.0 → 1\.1\.0\s+done, in rotation/);
  expect(done).toMatch(/✔ done\s+Upgrade web-1:/);
  expect(done).not.toContain('FAILED');
  await t.waitFor('EXIT=0');
  for (const row of await c.haproxy.status()) expect(row.statusText).toBe('UP');
});

test('Ctrl-C on the screen: the server being upgraded finishes, then it stops with rotation put back (exit 4)', async () => {
  const c = await freshCluster();
  const slow = `sh -c 'sleep 2; exec "$0" service restart server --root "$1"' ${next.dir}/bin/knocker ${c.base}/{name}`;
  const t = await openTerminal([process.execPath, KNOCKER, 'upgrade', '--root', c.root.dir, '--yes', '--upgrade-command', slow], {
    width: 100,
    height: 50,
    env: cleanEnv({ TERM: 'xterm-256color' }),
  });
  terminals.push(t);
  await t.waitFor(/running\s+Upgrade web-1:/);
  await t.keys('C-c');
  await t.waitFor('Stopping once the server being upgraded is done');
  const stopped = await t.waitFor('EXIT=4', 60_000);
  expect(stopped).toContain('Stopped: ');
  expect(stopped).toContain('stopped by the operator (Ctrl-C)');
  expect(stopped).toMatch(/web-1\s+127\.0\.0\.211:\d+\s+1\.0\.0 → 1\.1\.0\s+done, in rotation/);
  expect(stopped).toMatch(/web-2\s+127\.0\.0\.212:\d+\s+1\.0\.0\s+waiting/);
  expect((await c.haproxy.statusOf('web-1')).statusText).toBe('UP');
});
