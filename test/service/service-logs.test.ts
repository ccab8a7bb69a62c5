// Logs: `knocker service logs` prints and follows the server's log under a root; health checks are
// counted instead of filling the request log; knocknoc.log written to a file stays size-bounded.
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { expect, test } from 'vitest';
import { freePort } from '../../src/system/host.js';
import { PATHS } from '../../src/system/root.js';
import { cleanEnv, KNOCKER, knocker } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';
import { request, SERVER_BIN, sharedDatabase, startServer, waitFor, writeServerConf } from '../helpers/server.js';
import { makeTempDir } from '../helpers/temp.js';

const db = sharedDatabase({ allow: ['127.0.0.2'] });
const newRoot = useRoots();

test('service logs prints the last lines and follows new ones; health checks are counted, not logged one by one', async () => {
  await (await startServer({ host: '127.0.0.2', databaseUrl: db.url, name: 'first' })).waitForStatus(200);
  const root = await newRoot();
  const listen = `127.0.0.2:${await freePort('127.0.0.2')}`;
  const install = await knocker(['install', '--root', root.dir, '--listen', listen, '--database-option', '3', '--server-name', 'logged'], {
    env: { KNOCKNOC_DATABASE_URL: db.url },
  });
  expect(install.exitCode, install.stderr).toBe(0);

  const logs = await knocker(['service', 'logs', '--root', root.dir]);
  expect(logs.exitCode).toBe(0);
  expect(logs.stdout).toMatch(/INFO {2}knocknoc-server "logged" 1\.0\.0 listening on http:\/\/127\.0\.0\.2:\d+/);
  const one = await knocker(['service', 'logs', 'server', '-n', '1', '--root', root.dir]);
  expect(one.stdout.trimEnd().split('\n')).toHaveLength(1);
  const none = await knocker(['service', 'logs', 'postgres', '--root', root.dir]);
  expect(none.exitCode).toBe(3);
  expect(none.stderr).toContain(`hint: is it set up here? knocker service status postgres --root ${root.dir}`);
  expect((await knocker(['service', 'status', '--lines', '3', '--root', root.dir])).exitCode).toBe(2);

  const follow = execa(process.execPath, [KNOCKER, 'service', 'logs', '-f', '-n', '1', '--root', root.dir], {
    env: cleanEnv(),
    extendEnv: false,
    reject: false,
  });
  let seen = '';
  follow.stdout!.setEncoding('utf8').on('data', (chunk: string) => (seen += chunk));
  await waitFor('the first line', () => (seen.split('\n').length > 1 ? true : undefined));
  // Twenty health checks from one client: at most the first is a line of its own.
  for (let i = 0; i < 20; i += 1) expect((await request(`http://${listen}/_status`)).status).toBe(200);
  await request(`http://${listen}/a-page-nobody-has`);
  await waitFor('the request line in the followed log', () => (seen.includes('"GET /a-page-nobody-has HTTP/1.1" 404') ? true : undefined));
  expect(seen.match(/GET \/_status/g)?.length ?? 0).toBeLessThanOrEqual(1);
  follow.kill('SIGINT');
  expect((await follow).exitCode).toBe(0);

  const stop = await knocker(['service', 'stop', 'server', '--root', root.dir]);
  expect(stop.exitCode).toBe(0);
  const log = await fs.readFile(root.path(PATHS.serverLog), 'utf8');
  expect(log.match(/"GET \/_status HTTP\/1\.1" 200/g)?.length ?? 0).toBeLessThanOrEqual(3);
  expect(log).toMatch(/INFO {2}health checks: \d+ more in the last \d+ s \(\d+ × 200\) from 127\.0\.0\.\d+/);
});

test('knocknoc.log written to a file is kept under its bound: the old part moves to knocknoc.log.1', async () => {
  const dir = await makeTempDir('knocknoc-log-');
  try {
    const port = await freePort('127.0.0.2');
    const confFile = await writeServerConf([`Listen = 127.0.0.2:${port}`, `DatabaseURL = ${db.url}`, 'ServerName = bounded']);
    const file = path.join(dir, 'knocknoc.log');
    const out = await fs.open(file, 'a');
    const child = spawn(process.execPath, [SERVER_BIN, '--config', confFile], {
      env: cleanEnv({ KNOCKNOC_LOG_MAX_BYTES: '65536' }),
      stdio: ['ignore', out.fd, out.fd],
    });
    try {
      await waitFor('the node to answer', async () => ((await request(`http://127.0.0.2:${port}/_status`)).status === 200 ? true : undefined));
      // Requests to a page are each logged; enough of them to pass the bound several times over.
      await waitFor(
        'knocknoc.log.1',
        async () => {
          await Promise.all(Array.from({ length: 200 }, () => request(`http://127.0.0.2:${port}/${'x'.repeat(150)}`)));
          return (await fs.stat(`${file}.1`).catch(() => undefined)) ? true : undefined;
        },
        60_000,
      );
      expect((await fs.stat(`${file}.1`)).size).toBeGreaterThan(65_536);
      expect((await fs.stat(file)).size).toBeLessThan(65_536 + 512 * 1024);
      const rest = await fs.readFile(file, 'utf8');
      // Truncated in place: what the node writes next starts the file again, no hole of zeros before it.
      expect(rest.startsWith('\0')).toBe(false);
    } finally {
      child.kill('SIGKILL');
      await out.close();
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
