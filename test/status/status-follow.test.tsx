// knocker status with a primary and a real streaming standby behind a two-host DatabaseURL: the
// database panel shows the standby (state, lag in bytes and time, its slot and the WAL the slot
// retains), each server's database host (from its /_status), and a promotion while the old primary
// still takes writes is two primaries, a failure naming both (exit 1), until the old one stops.
import fs from 'node:fs/promises';
import path from 'node:path';
import { render } from 'ink-testing-library';
import { afterEach, expect, test } from 'vitest';
import { Dashboard } from '../../src/status-app.js';
import { openMonitor, staleAfterMs } from '../../src/status/index.js';
import { buildDatabaseUrl, parseDatabaseUrl } from '../../src/postgres/url.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { frame } from '../helpers/ink.js';
import { knocker } from '../helpers/knocker.js';
import { rowOf } from '../helpers/status.js';
import { startTestCluster, type TestCluster } from '../helpers/pg.js';
import { allowLogins, startTestStandby, type TestStandby } from '../helpers/replica.js';
import { useRoots } from '../helpers/roots.js';
import { startServer, stopServers, waitFor, type ServerNode } from '../helpers/server.js';

const PRIMARY = '127.0.0.41';
const STANDBY = '127.0.0.42';
const NODES = ['127.0.0.43', '127.0.0.44'];
const newRoot = useRoots();
let primary: TestCluster | undefined;
let standby: TestStandby | undefined;

afterEach(async () => {
  await stopServers();
  await standby?.destroy();
  await primary?.destroy();
  standby = undefined;
  primary = undefined;
});

interface ServerJson {
  name: string;
  state: string;
  problems: string[];
  status: { http: number | null; databaseHost: string | null } | null;
}

interface StatusJson {
  exitCode: number;
  twoPrimaries: boolean;
  databaseProblems: string[];
  database: {
    role: string;
    host: string;
    hosts: string[];
    standbys: Array<Record<string, unknown>>;
    slots: Array<Record<string, unknown>>;
  };
  servers: ServerJson[];
}

async function rootFor(databaseUrl: string, listen: string): Promise<Root> {
  const root = await newRoot();
  await fs.mkdir(path.dirname(root.path(PATHS.conf)), { recursive: true });
  await fs.writeFile(root.path(PATHS.conf), `Listen = ${listen}\nDatabaseURL = ${databaseUrl}\nServerName = web-1\n`, { mode: 0o600 });
  return root;
}

async function statusJson(root: Root): Promise<StatusJson> {
  const result = await knocker(['status', '--json', '--root', root.dir]);
  expect(result.stderr).toBe('');
  return JSON.parse(result.stdout) as StatusJson;
}

test('the standby with its lag and slot; every node on the primary; a node left on the old primary after a promotion is flagged until it moves', async () => {
  primary = await startTestCluster({ host: PRIMARY });
  await allowLogins(primary, NODES);
  const single = parseDatabaseUrl(await primary.createDatabase({ role: 'knocknoc', database: 'knocknoc' }));
  if (!single.ok) throw new Error(single.error);
  // The lag columns of pg_stat_replication need pg_monitor (the grant replicates to the standby).
  await primary.admin('GRANT pg_monitor TO knocknoc');
  standby = await startTestStandby(primary, { host: STANDBY, name: 'standby_b', allow: NODES });
  const P = `${PRIMARY}:${primary.port}`;
  const S = `${STANDBY}:${standby.cluster.port}`;
  const url = (order: string[]) =>
    buildDatabaseUrl({
      host: '',
      port: 0,
      hosts: order.map((h) => ({ host: h.split(':')[0]!, port: Number(h.split(':')[1]) })),
      user: 'knocknoc',
      password: single.value.password,
      database: 'knocknoc',
      params: { target_session_attrs: 'read-write' },
    });
  const nodes: ServerNode[] = [];
  for (const [i, host] of NODES.entries()) nodes.push(await startServer({ host, databaseUrl: url([P, S]), name: `web-${i + 1}` }));
  for (const node of nodes) await node.waitForStatus(200);
  const listen = `${nodes[0]!.host}:${nodes[0]!.port}`;

  // Before: the standby streams through its slot; both nodes on P.
  const before = await newRootStatus(url([P, S]), listen);
  expect(before.exitCode).toBe(0);
  expect(before.database).toMatchObject({ role: 'primary', host: P, hosts: [P, S] });
  expect(before.database.standbys).toEqual([
    expect.objectContaining({
      name: 'standby_b',
      state: 'streaming',
      syncState: 'async',
      lagBytes: expect.any(Number),
      lagSeconds: expect.any(Number),
      slot: 'standby_b',
    }),
  ]);
  expect(before.database.slots).toEqual([
    { name: 'standby_b', type: 'physical', active: true, walStatus: 'reserved', retainedBytes: expect.any(Number), safeWalSizeBytes: null },
  ]);
  expect(before.servers.map((s) => [s.name, s.state, s.status?.databaseHost])).toEqual([
    ['web-1', 'ok', P],
    ['web-2', 'ok', P],
  ]);
  const text = await knocker(['status', '--once', '--root', before.root.dir]);
  expect(text.stdout).toMatch(/SERVER\s+HEALTH\s+VERSION\s+\/_STATUS\s+DATABASE/);
  expect(text.stdout).toMatch(new RegExp(`web-1\\s+ok\\s+1\\.0\\.0\\s+200 \\S+\\s+${P.replace(/\./g, '\\.')}`));
  expect(text.stdout).toContain(`on ${P} (of ${P}, ${S})`);
  expect(text.stdout).toMatch(/standby standby_b \(127\.0\.0\.1\): streaming, async, lag \d+(\.\d)? (B|KiB|MiB) \/ \S+, slot standby_b/);
  expect(text.stdout).toMatch(/slot standby_b \(physical\): active, retains \d+(\.\d)? (B|KiB|MiB) of WAL, wal_status reserved/);

  // The standby promoted while the old primary still runs (writable, not fenced): the nodes keep
  // their sessions on it. Both hosts accept writes: status names both, and tells nobody to fence
  // one host while the other is as much a primary.
  await standby.caughtUp();
  await standby.promote();
  const after = await newRootStatus(url([S, P]), listen);
  expect(after.exitCode).toBe(1);
  expect(after.database).toMatchObject({ role: 'primary', host: S, slots: [] });
  expect(after.twoPrimaries).toBe(true);
  expect(after.databaseProblems[0]).toContain(`TWO PRIMARIES: ${S} and ${P}`);
  for (const server of after.servers) {
    expect(server.status?.databaseHost).toBe(P);
    expect(server.state).toBe('two-primaries');
    expect(server.problems.join('; ')).not.toMatch(/fence/);
  }
  const flagged = await knocker(['status', '--once', '--root', after.root.dir]);
  expect(flagged.stdout).toMatch(/web-1: writes to .* while .* accepts writes too/);
  // The live dashboard says the same: the DATABASE column, the row flagged, the panel's host.
  const monitor = await openMonitor(after.root, { intervalMs: 500 });
  monitor.start();
  const ui = render(<Dashboard services={{ monitor, staleAfterMs: () => staleAfterMs(monitor) }} onExit={() => {}} />);
  try {
    const shown = await waitFor(
      'the dashboard to flag web-1',
      () => {
        const current = frame(ui);
        return /two-primar/.test(rowOf(current, 'web-1')) ? current : undefined;
      },
      30_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}; last frame:\n${frame(ui)}`);
    });
    expect(shown).toMatch(/\/_STATUS\s+DATABASE/);
    expect(rowOf(shown, 'web-1')).toContain(P);
    expect(shown).toContain(`on ${S} (of ${S}, ${P})`);
    expect(shown).toContain(`✗ host ${P}: primary (accepts writes)`);
  } finally {
    ui.unmount();
    await monitor.stop();
  }

  // The old primary stopped: both nodes move to S by themselves, and status is healthy again.
  await primary.stop();
  for (const node of nodes) await waitFor(`${node.name} on ${S}`, async () => ((await node.status()).body.databaseHost === S ? true : undefined), 60_000);
  const healed = await statusJson(after.root);
  expect(healed.twoPrimaries).toBe(false);
  expect(healed.servers.map((s) => [s.name, s.status?.databaseHost, s.problems.filter((p) => p.includes('uses the database on'))])).toEqual([
    ['web-1', S, []],
    ['web-2', S, []],
  ]);
  // The first string (P first) follows too: P refuses, S is the read-write one.
  expect((await statusJson(before.root)).database).toMatchObject({ host: S, role: 'primary' });
});

async function newRootStatus(databaseUrl: string, listen: string): Promise<StatusJson & { root: Root }> {
  const root = await rootFor(databaseUrl, listen);
  return { ...(await statusJson(root)), root };
}
