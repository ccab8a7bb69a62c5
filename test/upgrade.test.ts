// `knocker upgrade` on real parts: three sandbox web nodes (each its own root, run by
// `knocker service`), one shared PostgreSQL, knocker's HAProxy on the first node's root, and
// steady load through HAProxy. The upgrade command restarts a node from the next release's folder,
// whose migration changes the schema: the old nodes are out of step from that moment.
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { connectFrom, sharedDatabase } from './helpers/server.js';
import { knocker } from './helpers/knocker.js';
import { makeRelease, type TestRelease } from './helpers/release.js';
import { startUpgradeCluster, steadyLoad, type UpgradeCluster } from './helpers/upgrade.js';
import { makeTempDir } from './helpers/temp.js';

const HOSTS = ['127.0.0.201', '127.0.0.202', '127.0.0.203'];
const HAPROXY_HOST = '127.0.0.205';
const db = sharedDatabase({ host: '127.0.0.200', allow: HOSTS });

let next: TestRelease;
let clusters: UpgradeCluster[] = [];

beforeAll(async () => {
  next = await makeRelease({
    version: '1.1.0',
    // Fails if it ever runs twice: the table exists the second time.
    migrations: [{ name: 'upgrade_marker', sql: `CREATE TABLE upgrade_marker (migrated_at timestamptz NOT NULL DEFAULT now()); INSERT INTO upgrade_marker DEFAULT VALUES;` }],
  });
});
afterAll(async () => {
  await next?.destroy();
});
afterEach(async () => {
  for (const cluster of clusters.splice(0)) await cluster.stop();
});

async function cluster(): Promise<UpgradeCluster> {
  const c = await startUpgradeCluster({ hosts: HOSTS, haproxyHost: HAPROXY_HOST, databaseUrl: db.url });
  clusters.push(c);
  return c;
}

function upgrade(c: UpgradeCluster, ...args: string[]) {
  return knocker(['upgrade', '--root', c.root.dir, ...args], { timeoutMs: 120_000 });
}

async function versions(c: UpgradeCluster): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const node of c.nodes) {
    const reply = await fetch(`http://${node.host}:${node.port}/_status`);
    result[node.name] = ((await reply.json()) as { version: string }).version;
  }
  return result;
}

async function journal(c: UpgradeCluster): Promise<{ state: string; target?: string; servers: Array<{ name: string; phase: string }> }> {
  return JSON.parse(await fs.readFile(c.root.path('/var/lib/knocknoc/upgrade.json'), 'utf8'));
}

test('three nodes from 1.0.0 to 1.1.0 under steady load: all upgraded, the database migrated once, no request failed', async () => {
  const c = await cluster();
  expect(await versions(c)).toEqual({ 'web-1': '1.0.0', 'web-2': '1.0.0', 'web-3': '1.0.0' });
  const load = steadyLoad(c.haproxy.url, 50);
  await new Promise((r) => setTimeout(r, 500));
  const result = await upgrade(c, '--upgrade-command', c.commandFor(next.dir), '--non-interactive');
  await new Promise((r) => setTimeout(r, 500));
  const report = await load.stop();
  expect(result.stderr).toBe('');
  expect(result.exitCode, result.stdout).toBe(0);
  expect(report.failed, JSON.stringify(report.failed.slice(0, 5))).toEqual([]);
  expect(report.total).toBeGreaterThan(50);
  expect(report.versions.get('1.1.0')).toBeGreaterThan(0);
  expect(await versions(c)).toEqual({ 'web-1': '1.1.0', 'web-2': '1.1.0', 'web-3': '1.1.0' });
  // Migrated once, by the first server.
  const client = await connectFrom(HOSTS[0]!, db.url);
  try {
    const marker = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM upgrade_marker');
    expect(marker.rows[0]!.n).toBe(1);
    const applied = await client.query<{ applied_by: string }>("SELECT applied_by FROM knocknoc_schema_migrations WHERE name = 'upgrade_marker'");
    expect(applied.rows.map((r) => r.applied_by)).toHaveLength(1);
    expect(applied.rows[0]!.applied_by).toContain('web-1');
  } finally {
    await client.end();
  }
  // Every node back in rotation.
  for (const node of c.nodes) expect((await c.haproxy.statusOf(node.name)).statusText).toBe('UP');
  expect(result.stdout).toMatch(/Done: 3 servers on 1\.1\.0/);
  expect((await journal(c)).state).toBe('done');
  const stat = await fs.stat(c.root.path('/var/lib/knocknoc/upgrade.json'));
  expect(stat.mode & 0o777).toBe(0o600);
});
