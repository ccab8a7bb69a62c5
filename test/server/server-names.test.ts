// One name, one node: a second knocknoc-server with the ServerName of a node that is online is
// refused (its row is left alone), the row of a node killed outright is taken over by its
// restart, and the installer refuses such a name in preflight with the flag that fixes it.
import fs from 'node:fs/promises';
import { afterEach, expect, test } from 'vitest';
import { PATHS } from '../../src/system/root.js';
import { freePort } from '../../src/system/host.js';
import { knocker } from '../helpers/knocker.js';
import { destroyRoot, makeRoot } from '../helpers/roots.js';
import { launchServer, sharedDatabase, startServer, untilListening, writeServerConf } from '../helpers/server.js';
import type { Root } from '../../src/system/root.js';

const db = sharedDatabase({ allow: ['127.0.0.2', '127.0.0.3'] });
const roots: Root[] = [];
afterEach(async () => {
  await Promise.all(roots.splice(0).map(destroyRoot));
});

async function registry(): Promise<{ name: string; listen: string }[]> {
  return db.cluster.admin<{ name: string; listen: string }>('SELECT name, listen FROM servers ORDER BY name', [], 'knocknoc');
}

test('a second node with the name of an online node does not start, and the first keeps its row', async () => {
  const first = await startServer({ host: '127.0.0.2', databaseUrl: db.url, name: 'web-1' });
  await first.waitForStatus(200);
  const port = await freePort('127.0.0.3');
  const confFile = await writeServerConf([`Listen = 127.0.0.3:${port}`, `DatabaseURL = ${db.url}`, 'ServerName = web-1']);
  const second = launchServer({ confFile, name: 'web-1 (second)', host: '127.0.0.3', port });
  expect(await second.exited).toBe(3);
  expect(second.stderr()).toContain(
    `knocknoc-server: error: another node (at 127.0.0.2:${first.port}) is online as "web-1": two nodes cannot share a ServerName`,
  );
  expect(second.stderr()).toContain(`hint: give this node a name of its own (ServerName in ${confFile}), then start it again`);
  expect(await registry()).toEqual([{ name: 'web-1', listen: `127.0.0.2:${first.port}` }]);
  expect((await first.status()).http).toBe(200);
});

test('a node killed outright and started again takes its own row back', async () => {
  const port = await freePort('127.0.0.2');
  const confFile = await writeServerConf([`Listen = 127.0.0.2:${port}`, `DatabaseURL = ${db.url}`, 'ServerName = web-crash']);
  const before = launchServer({ confFile, name: 'web-crash', host: '127.0.0.2', port });
  await untilListening(before);
  before.child.kill('SIGKILL');
  await before.exited;
  // Still listed online (its last heartbeat is recent), but silent: the restart takes the name.
  const again = launchServer({ confFile, name: 'web-crash', host: '127.0.0.2', port });
  await untilListening(again);
  expect(again.stdout()).toContain(`"web-crash" was still listed online at 127.0.0.2:${port} but sends no heartbeat: taking the name over`);
  expect((await again.status()).body).toMatchObject({ status: 'ok', server: 'web-crash' });
});

test('install refuses a name an online node holds (exit 3, nothing written) and says which flag fixes it', async () => {
  const first = await startServer({ host: '127.0.0.2', databaseUrl: db.url, name: 'web-9' });
  await first.waitForStatus(200);
  const root = await makeRoot();
  roots.push(root);
  const listen = `127.0.0.3:${await freePort('127.0.0.3')}`;
  const result = await knocker(['install', '--root', root.dir, '--listen', listen, '--database-option', '3', '--server-name', 'web-9'], {
    env: { KNOCKNOC_DATABASE_URL: db.url },
  });
  expect(result.exitCode).toBe(3);
  expect(result.stderr).toContain(`✗ FAIL server name "web-9": the online node at 127.0.0.2:${first.port} already has this name`);
  expect(result.stderr).toContain('hint: give this node its own name: add --server-name web-9-2');
  await expect(fs.access(root.path(PATHS.conf))).rejects.toThrow();

  // With the name the hint gives, the same command installs and the node is listed beside the first.
  const fixed = await knocker(['install', '--root', root.dir, '--listen', listen, '--database-option', '3', '--server-name', 'web-9-2'], {
    env: { KNOCKNOC_DATABASE_URL: db.url },
  });
  expect(fixed.exitCode).toBe(0);
  expect(fixed.stderr).toContain('✔ ok   server name "web-9-2": free in the registry');
  expect((await registry()).map((r) => r.name)).toEqual(expect.arrayContaining(['web-9', 'web-9-2']));
  await knocker(['service', 'stop', '--root', root.dir]);
});
