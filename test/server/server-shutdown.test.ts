// A graceful stop: on SIGTERM the node stops accepting connections, lets the request in flight
// finish, marks itself stopped in the registry and exits 0.
import { expect, test } from 'vitest';
import { connectFrom, request, sharedDatabase, startServer, waitFor } from '../helpers/server.js';

const db = sharedDatabase({ allow: ['127.0.0.2'] });

test('SIGTERM during a slow request: it completes, the node exits 0 and shows as stopped', async () => {
  const node = await startServer({ host: '127.0.0.2', databaseUrl: db.url, name: 'web-1' });
  // The page reads the registry; while another session holds a lock on it, the page waits.
  const locker = await connectFrom('127.0.0.5', db.url);
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE servers IN ACCESS EXCLUSIVE MODE');
  const slow = request(node.url('/'), { timeoutMs: 30_000 });
  try {
    await waitFor('the page to wait for the lock', async () => {
      const rows = await db.cluster.admin<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'knocknoc-server web-1' AND wait_event_type = 'Lock'`,
      );
      return rows[0]!.n > 0 ? true : undefined;
    });
    node.child.kill('SIGTERM');
    await waitFor('the node to begin stopping', () => (node.stdout().includes('SIGTERM: stopping') ? true : undefined));
    expect(node.stdout()).toMatch(/finishing 1 request in flight/);
    // No new connections while it finishes.
    await expect(request(node.url('/_status'))).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(node.child.exitCode).toBeNull();
  } finally {
    await locker.query('COMMIT');
    await locker.end();
  }
  const reply = await slow;
  expect(reply.status).toBe(200);
  expect(reply.body).toContain('<strong id="server">web-1</strong>');
  expect(reply.headers.connection).toBe('close');
  expect(await node.exited).toBe(0);
  expect(node.stdout()).toMatch(/marked "web-1" stopped in the registry/);

  const rows = await db.cluster.admin<{ state: string; stopped: boolean }>(
    `SELECT state, stopped_at IS NOT NULL AS stopped FROM servers WHERE name = 'web-1'`,
    [],
    'knocknoc',
  );
  expect(rows).toEqual([{ state: 'stopped', stopped: true }]);
});
