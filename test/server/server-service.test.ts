// knocknoc-server as a service under a sandbox root, driven through bin/knocker as an operator
// would: the install ends with a node serving /_status, and `knocker service` stops, starts,
// restarts and reports what the install set up.
import fs from 'node:fs/promises';
import { afterEach, expect, test } from 'vitest';
import { KnocknocConf } from '../../src/config/knocknoc-conf.js';
import { unitText } from '../../src/server/service.js';
import { PATHS, SYSTEM_ROOT, type Root } from '../../src/system/root.js';
import { freePort } from '../../src/system/host.js';
import { knocker } from '../helpers/knocker.js';
import { destroyRoot, makeRoot } from '../helpers/roots.js';
import { loadRelease, migrate } from '../../src/schema/index.js';
import { startTestCluster } from '../helpers/pg.js';
import { makeRelease } from '../helpers/release.js';
import { allowHosts, connectFrom, request, waitFor } from '../helpers/server.js';

const roots: Root[] = [];
afterEach(async () => {
  await Promise.all(roots.splice(0).map(destroyRoot));
});

async function installedRoot(host: string): Promise<{ root: Root; url: string }> {
  const root = await makeRoot();
  roots.push(root);
  const listen = `${host}:${await freePort(host)}`;
  const install = await knocker(['install', '--root', root.dir, '--listen', listen, '--server-name', 'web-1']);
  expect(install.stdout).toBe('');
  expect(install.exitCode).toBe(0);
  expect(install.stderr).toContain(`Knocknoc server: start it (daemon) and wait until http://${listen}/_status answers 200 …`);
  expect(install.stderr).toMatch(
    new RegExp(`✔ done in [\\d.]+ s \\(pid \\d+; http://${listen.replace(/\./g, '\\.')}/_status: 200 ok \\(Knocknoc 1\\.0\\.0, schema 2\\)\\)`),
  );
  return { root, url: `http://${listen}` };
}

async function pidOf(root: Root): Promise<number> {
  return Number((await fs.readFile(root.path(PATHS.serverPid), 'utf8')).trim());
}

test('an install ends with a running node; a re-run changes nothing; a changed answer restarts it', async () => {
  const { root, url } = await installedRoot('127.0.0.2');
  const status = await request(`${url}/_status`);
  expect(status.status).toBe(200);
  expect(JSON.parse(status.body)).toMatchObject({ status: 'ok', server: 'web-1', versionMatch: true });
  expect((await request(`${url}/`)).body).toContain('<strong id="server">web-1</strong>');
  // The node writes its log in batches: wait for the line rather than read once.
  const log = await waitFor('the request in the server log', async () => {
    const text = await fs.readFile(root.path(PATHS.serverLog), 'utf8');
    return /HTTP {2}127\.0\.0\.1 "GET \/_status HTTP\/1\.1" 200/.test(text) ? text : undefined;
  });
  expect(log).not.toContain(new URL(KnocknocConf.parse(await fs.readFile(root.path(PATHS.conf), 'utf8')).get('DatabaseURL')!).password);
  const pid = await pidOf(root);

  const again = await knocker(['install', '--root', root.dir]);
  expect(again.stderr).toContain('Nothing to change: this host already matches these answers.');
  expect(await pidOf(root)).toBe(pid);

  const renamed = await knocker(['install', '--root', root.dir, '--server-name', 'web-9']);
  expect(renamed.exitCode).toBe(0);
  expect(renamed.stderr).toMatch(/Knocknoc server: stop it \(pid \d+\) for this change, as its configuration changes; it starts again at the end/);
  expect(JSON.parse((await request(`${url}/_status`)).body)).toMatchObject({ status: 'ok', server: 'web-9' });
  expect(await pidOf(root)).not.toBe(pid);
});

test('knocker service: status, stop, start and restart of what the install set up', async () => {
  const { root, url } = await installedRoot('127.0.0.3');
  const service = (...args: string[]) => knocker(['service', ...args, '--root', root.dir]);

  const running = await service('status');
  expect(running.exitCode).toBe(0);
  expect(running.stdout).toMatch(/^postgres {2}running {5}private cluster .*\/var\/lib\/knocknoc\/postgresql on 127\.0\.0\.3:\d+$/m);
  expect(running.stdout).toMatch(
    new RegExp(`^server    running     pid \\d+, ${url}/_status: 200 ok \\(Knocknoc 1\\.0\\.0, schema 2\\); log .*knocknoc\\.log$`, 'm'),
  );
  expect(running.stdout).toContain(
    `haproxy   not set up  no HAProxy configuration written by knocker in ${root.path('/etc/haproxy/haproxy.cfg')} (run \`knocker haproxy setup NAME=HOST:PORT … --root ${root.dir}\`)`,
  );

  const stopped = await service('stop');
  expect(stopped.exitCode).toBe(0);
  expect(stopped.stdout).toBe('');
  expect(stopped.stderr).toMatch(/\[1\/2\] Stop the Knocknoc server …\n {2}\[1\/2\] ✔ done in [\d.]+ s \(stopped\)\n {2}\[2\/2\] Stop PostgreSQL/);
  await expect(request(`${url}/_status`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  await expect(fs.access(root.path(PATHS.serverPid))).rejects.toThrow();
  expect(await fs.readFile(root.path(PATHS.serverLog), 'utf8')).toMatch(/marked "web-1" stopped in the registry/);
  const down = await service('status');
  expect(down.exitCode).toBe(1);
  expect(down.stdout).toMatch(/^server {4}stopped /m);
  expect(down.stdout).toMatch(/^postgres {2}stopped /m);

  const started = await service('start');
  expect(started.exitCode).toBe(0);
  expect(started.stdout).toBe('');
  expect(started.stderr).toMatch(
    /\[1\/2\] Start PostgreSQL[^\n]*\n {2}\[1\/2\] ✔ done[^\n]*\n {2}\[2\/2\] Start the Knocknoc server …\n {2}\[2\/2\] ✔ done in [\d.]+ s \(pid \d+; http:\/\/127\.0\.0\.3:\d+\/_status: 200 ok/,
  );
  expect((await request(`${url}/_status`)).status).toBe(200);
  expect((await service('start')).stderr).toContain('Nothing to do: postgres is already running, server is already running.');

  // A server that died without cleaning up: its stale pid file does not pass for a running server,
  // nor for one stopped cleanly.
  const pid = await pidOf(root);
  process.kill(pid, 'SIGKILL');
  await expect.poll(async () => (await service('status', 'server')).stdout).toMatch(new RegExp(`^server    crashed     pid ${pid} gone`, 'm'));
  const restarted = await service('restart', 'server');
  expect(restarted.exitCode).toBe(0);
  expect(restarted.stderr).toMatch(/Start the Knocknoc server …\n {2}\[1\/1\] ✔ done/);
  expect(await pidOf(root)).not.toBe(pid);
  expect((await request(`${url}/_status`)).status).toBe(200);

  const haproxy = await service('start', 'haproxy');
  expect(haproxy.exitCode).toBe(3);
  expect(haproxy.stderr).toContain('error: haproxy: not set up on this host: no HAProxy configuration written by knocker');
});

test('a web node joining a database newer than its release: the start step fails with the reason and everything is rolled back', async () => {
  const cluster = await startTestCluster({ host: '127.0.0.5' });
  const next = await makeRelease({ version: '1.1.0', migrations: [{ name: 'later', sql: 'CREATE TABLE later (id integer);\n' }] });
  try {
    await allowHosts(cluster, ['127.0.0.4']);
    const databaseUrl = await cluster.createDatabase({ role: 'knocknoc', database: 'knocknoc' });
    const client = await connectFrom('127.0.0.5', databaseUrl);
    await migrate(client, loadRelease(next.dir).migrations, 'test').finally(() => client.end());

    const root = await makeRoot();
    roots.push(root);
    const listen = `127.0.0.4:${await freePort('127.0.0.4')}`;
    const result = await knocker(['install', '--root', root.dir, '--listen', listen, '--database-option', '3'], {
      env: { KNOCKNOC_DATABASE_URL: databaseUrl },
    });
    expect(result.exitCode).toBe(4);
    expect(result.stderr).toMatch(/warning: the database's schema \(version 3\) is newer than this release expects \(2\)/);
    expect(result.stderr).toMatch(
      /error: Knocknoc server: start it \(daemon\) .* failed: knocknoc-server runs but cannot serve: 503 out of step: this release expects schema 2, the database has 3 \(Knocknoc 1\.0\.0, schema 2\); upgrade Knocknoc on this node/,
    );
    expect(result.stderr).toMatch(/↺ rolled back: Create .*knocknoc\.conf/);
    await expect(fs.access(root.path(PATHS.conf))).rejects.toThrow();
    await expect(fs.access(root.path(PATHS.serverPid))).rejects.toThrow();
    await expect(request(`http://${listen}/_status`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  } finally {
    await cluster.destroy();
    await next.destroy();
  }
});

test('on a systemd host the server is knocknoc.service, running this package with its knocknoc.conf', () => {
  const text = unitText({ root: SYSTEM_ROOT, manager: 'systemd', confFile: '/opt/knocknoc/etc/knocknoc.conf', packageDir: '/opt/knocknoc/knocker 2' });
  expect(text).toContain(`\nExecStart=${process.execPath} "/opt/knocknoc/knocker 2/bin/knocknoc-server" --config /opt/knocknoc/etc/knocknoc.conf\n`);
  // A bad configuration (exit 2) is not restarted in a loop; a crash is.
  expect(text).toContain('\nRestart=on-failure\n');
  expect(text).toContain('\nRestartPreventExitStatus=2\n');
  expect(text).toContain('\nWantedBy=multi-user.target\n');
});
