// Crashed is not stopped: a server killed with -9 leaves its pid file behind, and `knocker service
// status` says so with its last log lines (exit 1); a root with nothing set up is exit 3, as the
// help says; `service start` brings the crashed server back.
import fs from 'node:fs/promises';
import { expect, test } from 'vitest';
import { freePort } from '../../src/system/host.js';
import { PATHS } from '../../src/system/root.js';
import { knocker } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';
import { request, sharedDatabase, startServer } from '../helpers/server.js';

const db = sharedDatabase({ allow: ['127.0.0.2'] });
const newRoot = useRoots();

test('service status on an empty root: every service not set up, exit 3 with the install command for this root', async () => {
  const root = await newRoot();
  const result = await knocker(['service', 'status', '--root', root.dir]);
  expect(result.exitCode).toBe(3);
  expect(result.stdout).toMatch(/^server {4}not set up {2}no /m);
  expect(result.stderr).toContain(`error: nothing here was set up by knocker install (root ${root.dir})`);
  expect(result.stderr).toContain(`hint: run knocker install --root ${root.dir} first`);
});

test('a server killed with -9 is "crashed", with its pid and last log lines; start brings it back', async () => {
  // The database's schema comes from a first node, as on a real cluster.
  await (await startServer({ host: '127.0.0.2', databaseUrl: db.url, name: 'first' })).waitForStatus(200);
  const root = await newRoot();
  const listen = `127.0.0.2:${await freePort('127.0.0.2')}`;
  const install = await knocker(['install', '--root', root.dir, '--listen', listen, '--database-option', '3', '--server-name', 'crashy'], {
    env: { KNOCKNOC_DATABASE_URL: db.url },
  });
  expect(install.exitCode, install.stderr).toBe(0);
  const pid = Number((await fs.readFile(root.path(PATHS.serverPid), 'utf8')).trim());
  // The node may answer /_status before its "listening" line has reached the file: the line this
  // test looks for among the last ones is waited for, then the node is killed.
  await expect.poll(() => fs.readFile(root.path(PATHS.serverLog), 'utf8'), { timeout: 20_000 }).toMatch(/knocknoc-server "crashy" 1\.0\.0 listening on/);
  process.kill(pid, 'SIGKILL');
  await expect
    .poll(() =>
      fs.readFile(`/proc/${pid}/stat`, 'utf8').then(
        (s) => s.includes(') Z'),
        () => true,
      ),
    )
    .toBe(true);

  const status = await knocker(['service', 'status', 'server', '--root', root.dir]);
  expect(status.exitCode).toBe(1);
  expect(status.stdout).toContain(`server    crashed     pid ${pid} gone, its pid file still there; last log lines (${root.path(PATHS.serverLog)}):`);
  expect(status.stdout).toMatch(/\n {22}\S.*knocknoc-server "crashy" 1\.0\.0 listening on/);

  const stop = await knocker(['service', 'stop', 'server', '--root', root.dir]);
  expect(stop.exitCode).toBe(0);
  expect(stop.stderr).toContain(`Nothing to do: server is already stopped (it had crashed: see \`knocker service status --root ${root.dir}\`).`);

  const start = await knocker(['service', 'start', 'server', '--root', root.dir]);
  expect(start.exitCode, start.stderr).toBe(0);
  expect((await request(`http://${listen}/_status`)).status).toBe(200);
  const again = await knocker(['service', 'status', 'server', '--root', root.dir]);
  expect(again.exitCode).toBe(0);
  expect(again.stdout).toMatch(/^server {4}running {5}pid \d+/m);
});
