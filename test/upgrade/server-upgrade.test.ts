// Releases out of step with the shared database: the next release (a copy of this package with a
// newer version and one more migration) migrates it when it starts; older nodes keep running but
// fail /_status, so a load balancer pulls them.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { makeRelease, type TestRelease } from '../helpers/release.js';
import { freePort } from '../../src/system/host.js';
import { launchServer, request, sharedDatabase, startServer, writeServerConf } from '../helpers/server.js';

const db = sharedDatabase({ allow: ['127.0.0.2', '127.0.0.3', '127.0.0.4'] });
let next: TestRelease;

beforeAll(async () => {
  next = await makeRelease({ version: '1.1.0', migrations: [{ name: 'server_notes', sql: 'ALTER TABLE servers ADD COLUMN note text;\n' }] });
});
afterAll(async () => {
  await next?.destroy();
});

test('the first upgraded node migrates; an older release against the newer schema answers 503 out-of-step', async () => {
  const old = await startServer({ host: '127.0.0.2', databaseUrl: db.url, name: 'web-1' });
  expect((await old.status()).http).toBe(200);

  const upgraded = await startServer({ host: '127.0.0.3', databaseUrl: db.url, name: 'web-2', bin: next.serverBin });
  expect(upgraded.stdout()).toMatch(/migrated the database schema from version 2 to 3 \(003_server_notes\.sql\)/);
  expect(await upgraded.status()).toEqual({
    http: 200,
    body: expect.objectContaining({ status: 'ok', version: '1.1.0', schemaVersion: 3, databaseSchemaVersion: 3, versionMatch: true }),
  });

  // The node that was running notices by itself, without a restart.
  const seen = await old.waitForStatus(503);
  expect(seen).toMatchObject({
    status: 'out-of-step',
    server: 'web-1',
    version: '1.0.0',
    schemaVersion: 2,
    databaseSchemaVersion: 3,
    versionMatch: false,
    database: 'ok',
  });
  const check = await request(old.url('/_status'));
  expect(check.body).toMatch(/"versionMatch"\s*:\s*false/);

  // An older node started against the newer schema runs, says why in its log, and stays out of rotation.
  const late = await startServer({ host: '127.0.0.4', databaseUrl: db.url, name: 'web-3' });
  expect(late.stdout()).toMatch(/the database schema \(version 3\) is newer than this release expects \(2\)/);
  expect(await late.status()).toEqual({ http: 503, body: expect.objectContaining({ status: 'out-of-step', databaseSchemaVersion: 3, versionMatch: false }) });
  const migrations = await db.cluster.admin<{ version: number }>('SELECT version FROM knocknoc_schema_migrations ORDER BY version', [], 'knocknoc');
  expect(migrations.map((m) => m.version)).toEqual([1, 2, 3]);

  // The registry tells the versions apart.
  const page = await request(upgraded.url('/'));
  expect(page.body).toMatch(/<td>web-1<\/td><td>[^<]+<\/td><td>1\.0\.0 \(expects schema 2\)<\/td><td>online<\/td>/);
  expect(page.body).toMatch(/<td>web-2 \(this node\)<\/td><td>[^<]+<\/td><td>1\.1\.0<\/td><td>online<\/td>/);
});

test('a migration that fails stops the start (exit 3) and leaves the database at its version', async () => {
  const broken = await makeRelease({ version: '1.2.0', migrations: [{ name: 'broken', sql: 'ALTER TABLE no_such_table ADD COLUMN x integer;\n' }] });
  try {
    const databaseUrl = await db.cluster.createDatabase({ role: 'other', database: 'other' });
    const running = await startServer({ host: '127.0.0.2', databaseUrl, name: 'web-1' });
    const confFile = await writeServerConf([`Listen = 127.0.0.3:${await freePort('127.0.0.3')}`, `DatabaseURL = ${databaseUrl}`, 'ServerName = web-2']);
    const node = launchServer({ confFile, bin: broken.serverBin, name: 'web-2' });
    expect(await node.exited).toBe(3);
    expect(node.stderr()).toContain(
      'error: cannot bring the database schema to version 3: migration 003_broken.sql failed: relation "no_such_table" does not exist',
    );
    // Nothing half-done: the database is still at version 1 and the nodes running on it stay in step.
    expect(await db.cluster.admin('SELECT max(version) AS version FROM knocknoc_schema_migrations', [], 'other')).toEqual([{ version: 2 }]);
    expect((await running.status()).body).toMatchObject({ status: 'ok', versionMatch: true });
  } finally {
    await broken.destroy();
  }
});
