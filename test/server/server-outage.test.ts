// A database outage under a running node: it keeps serving, /_status says the database is
// unreachable (503), and when the database is back the node recovers by itself.
import { expect, test } from 'vitest';
import { request, sharedDatabase, startServer } from '../helpers/server.js';

const db = sharedDatabase({ allow: ['127.0.0.2'] });

test('database stopped: 503 unreachable; started again: 200 without restarting the node', async () => {
  const node = await startServer({ host: '127.0.0.2', databaseUrl: db.url, name: 'web-1' });
  expect((await node.status()).http).toBe(200);

  await db.cluster.stop();
  const down = await node.waitForStatus(503);
  expect(down).toMatchObject({ status: 'error', server: 'web-1', database: 'unreachable', databaseSchemaVersion: null, versionMatch: false });
  // Still serving: the page names the node and says what is wrong.
  const page = await request(node.url('/'));
  expect(page.status).toBe(503);
  expect(page.body).toContain('<strong id="server">web-1</strong>');
  expect(page.body).toMatch(/The database is unreachable/);
  await expect.poll(() => node.stdout()).toMatch(/ERROR database unreachable: [^\n]*127\.0\.0\.5:\d+/);

  await db.cluster.start();
  const up = await node.waitForStatus(200, 30_000);
  expect(up).toMatchObject({ status: 'ok', database: 'ok', databaseSchemaVersion: 2, versionMatch: true });
  expect(node.child.exitCode).toBeNull();
  await expect.poll(() => node.stdout()).toMatch(/INFO {2}database reachable again after/);
  // One outage, reported once, however many health checks came in meanwhile.
  expect(node.stdout().match(/database unreachable:/g)).toHaveLength(1);
  // The heartbeat resumed: the registry sees the node again.
  await expect
    .poll(async () => (await request(node.url('/'))).body, { timeout: 15_000 })
    .toMatch(/<td>web-1 \(this node\)<\/td><td>[^<]+<\/td><td>1\.0\.0<\/td><td>online<\/td>/);
});
