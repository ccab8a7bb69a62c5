// Three web nodes sharing one database, each a real knocknoc-server on its own loopback "host".
// The database allows only those hosts (pg_hba), so the nodes must connect from their own address.
import type pg from 'pg';
import { expect, test } from 'vitest';
import { MIGRATION_LOCK_KEY } from '../../src/schema/index.js';
import { freePort } from '../../src/system/host.js';
import {
  connectFrom,
  launchServer,
  request,
  sharedDatabase,
  startServer,
  type ServerNode,
  untilListening,
  waitFor,
  writeServerConf,
} from '../helpers/server.js';

const HOSTS = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
const db = sharedDatabase({ allow: HOSTS });

async function knocknocDb<T extends pg.QueryResultRow>(sql: string): Promise<T[]> {
  return db.cluster.admin<T>(sql, [], 'knocknoc');
}

test('three nodes started at once: one migrates, all are in step and listed online', async () => {
  // Hold the migration lock so that all three reach it before any can migrate.
  const holder = await connectFrom('127.0.0.5', db.url);
  await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
  let nodes: ServerNode[];
  try {
    nodes = await Promise.all(
      HOSTS.map(async (host, i) => {
        const port = await freePort(host);
        const confFile = await writeServerConf([`Listen = ${host}:${port}`, `DatabaseURL = ${db.url}`, `ServerName = web-${i + 1}`]);
        return launchServer({ confFile, name: `web-${i + 1}`, host, port });
      }),
    );
    await waitFor('all three nodes to wait for the migration lock', async () => {
      const rows = await knocknocDb<{ waiting: number }>(`SELECT count(*)::int AS waiting FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`);
      return rows[0]!.waiting === 3 ? true : undefined;
    });
  } finally {
    await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]);
    await holder.end();
  }
  await Promise.all(nodes.map((n) => untilListening(n)));

  const migrated = nodes.filter((n) => /migrated the database schema from version 0 to 2 \(001_initial\.sql, 002_history\.sql\)/.test(n.stdout()));
  expect(migrated).toHaveLength(1);
  expect(nodes.filter((n) => /database schema at version 2: nothing to migrate/.test(n.stdout()))).toHaveLength(2);
  const applied = await knocknocDb<{ version: number; applied_by: string }>('SELECT version, applied_by FROM knocknoc_schema_migrations ORDER BY version');
  const by = `knocknoc-server ${migrated[0]!.name} (${migrated[0]!.host}:${migrated[0]!.port})`;
  expect(applied).toEqual([
    { version: 1, applied_by: by },
    { version: 2, applied_by: by },
  ]);

  for (const node of nodes) {
    const { http, body } = await node.status();
    expect(http).toBe(200);
    expect(body).toMatchObject({
      status: 'ok',
      server: node.name,
      version: '1.0.0',
      schemaVersion: 2,
      databaseSchemaVersion: 2,
      versionMatch: true,
      database: 'ok',
    });
  }

  const servers = await knocknocDb<{ name: string; listen: string; version: string; schema_version: number; state: string }>(
    'SELECT name, listen, version, schema_version, state FROM servers ORDER BY name',
  );
  expect(servers).toEqual(nodes.map((n) => ({ name: n.name, listen: `${n.host}:${n.port}`, version: '1.0.0', schema_version: 2, state: 'running' })));

  // Any node's page lists every server sharing the database, online.
  const page = await request(nodes[1]!.url('/'));
  expect(page.status).toBe(200);
  expect(page.headers['x-knocknoc-server']).toBe('web-2');
  expect(page.body).toContain('<strong id="server">web-2</strong>');
  for (const node of nodes)
    expect(page.body).toMatch(new RegExp(`<td>${node.name}( \\(this node\\))?</td><td>${node.host}:${node.port}</td><td>1\\.0\\.0</td><td>online</td>`));
});

test('HEAD /_status answers like GET without a body; other methods and paths are refused', async () => {
  const node = await startServer({ host: '127.0.0.2', databaseUrl: db.url, name: 'web-1' });
  const head = await request(node.url('/_status'), { method: 'HEAD' });
  const get = await request(node.url('/_status'));
  expect(head.status).toBe(200);
  expect(head.body).toBe('');
  expect(head.headers['content-type']).toBe('application/json');
  expect(head.headers['content-length']).toBe(get.headers['content-length']);
  expect(Object.keys(JSON.parse(get.body) as object)).toEqual([
    'status',
    'server',
    'version',
    'schemaVersion',
    'databaseSchemaVersion',
    'versionMatch',
    'database',
    'databaseHost',
    'uptimeSeconds',
  ]);
  // HAProxy's check: HTTP/1.1 with Host and Connection: close.
  const check = await request(node.url('/_status'), { headers: { Host: 'knocknoc.example', Connection: 'close' } });
  expect(check.status).toBe(200);
  expect(check.body).toMatch(/"versionMatch"\s*:\s*true/);

  const post = await request(node.url('/_status'), { method: 'POST' });
  expect(post.status).toBe(405);
  expect(post.headers.allow).toBe('GET, HEAD');
  expect((await request(node.url('/nothing-here'))).status).toBe(404);
});
