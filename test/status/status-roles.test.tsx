// knocker status asks every host of a multi-host DatabaseURL on a new session, on real clusters:
// two independent primaries behind one string are a failure naming both (exit 1, in --once,
// --json and the dashboard, with what to do); one of them made read-only by a setting no longer
// counts as a primary; a primary and its streaming standby are healthy, each with its role.
import fs from 'node:fs/promises';
import path from 'node:path';
import { render } from 'ink-testing-library';
import { afterEach, expect, test } from 'vitest';
import { Dashboard } from '../../src/status-app.js';
import { openMonitor, staleAfterMs } from '../../src/status/index.js';
import { buildDatabaseUrl, parseDatabaseUrl } from '../../src/postgres/url.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { waitForFrame } from '../helpers/ink.js';
import { knocker } from '../helpers/knocker.js';
import { startTestCluster, type TestCluster } from '../helpers/pg.js';
import { allowLogins, startTestStandby, type TestStandby } from '../helpers/replica.js';
import { useRoots } from '../helpers/roots.js';
import { startServer, stopServers } from '../helpers/server.js';

const A = '127.0.0.171';
const B = '127.0.0.172';
const NODE = '127.0.0.173';
const newRoot = useRoots();
const clusters: TestCluster[] = [];
let standby: TestStandby | undefined;

afterEach(async () => {
  await stopServers();
  await standby?.destroy();
  standby = undefined;
  await Promise.all(clusters.splice(0).map((c) => c.destroy()));
});

interface StatusJson {
  exitCode: number;
  verdict: string;
  twoPrimaries: boolean;
  databaseHosts: Array<{ host: string; role: string; acceptsWrites: boolean | null; inRecovery: boolean | null }> | null;
  databaseProblems: string[];
  servers: Array<{ name: string; state: string; problems: string[] }>;
}

async function rootFor(databaseUrl: string, listen: string): Promise<Root> {
  const root = await newRoot();
  await fs.mkdir(path.dirname(root.path(PATHS.conf)), { recursive: true });
  await fs.writeFile(root.path(PATHS.conf), `Listen = ${listen}\nDatabaseURL = ${databaseUrl}\nServerName = web-1\n`, { mode: 0o600 });
  return root;
}

async function statusJson(root: Root): Promise<StatusJson & { code: number }> {
  const result = await knocker(['status', '--json', '--root', root.dir]);
  expect(result.stderr).toBe('');
  return { ...(JSON.parse(result.stdout) as StatusJson), code: result.exitCode };
}

/** The nodes' multi-host string over `hosts` (host:port each), with the one login both clusters have. */
function multiHost(hosts: string[], password: string | undefined): string {
  return buildDatabaseUrl({
    host: '',
    port: 0,
    hosts: hosts.map((h) => ({ host: h.split(':')[0]!, port: Number(h.split(':')[1]) })),
    user: 'knocknoc',
    password,
    database: 'knocknoc',
    params: { target_session_attrs: 'read-write' },
  });
}

test('two independent primaries behind one DatabaseURL: exit 1 naming both, in --once, --json and the dashboard; one made read-only by a setting is no primary', async () => {
  const a = await startTestCluster({ host: A });
  clusters.push(a);
  const b = await startTestCluster({ host: B });
  clusters.push(b);
  const first = parseDatabaseUrl(await a.createDatabase({ role: 'knocknoc', database: 'knocknoc' }));
  if (!first.ok) throw new Error(first.error);
  await b.createDatabase({ role: 'knocknoc', database: 'knocknoc', password: first.value.password });
  for (const c of [a, b]) await allowLogins(c, [NODE]);
  const hostA = `${A}:${a.port}`;
  const hostB = `${B}:${b.port}`;
  const url = multiHost([hostA, hostB], first.value.password);
  const node = await startServer({ host: NODE, databaseUrl: url, name: 'web-1' });
  await node.waitForStatus(200);
  const root = await rootFor(url, `${node.host}:${node.port}`);

  const split = await statusJson(root);
  expect(split.code).toBe(1);
  expect(split.exitCode).toBe(1);
  expect(split.twoPrimaries).toBe(true);
  expect(split.verdict).toContain(`TWO PRIMARIES: ${hostA} and ${hostB}`);
  expect(split.databaseHosts).toEqual([
    { host: hostA, role: 'primary', inRecovery: false, acceptsWrites: true, error: null },
    { host: hostB, role: 'primary', inRecovery: false, acceptsWrites: true, error: null },
  ]);
  expect(split.databaseProblems.join('\n')).toContain('knocker standby rejoin');
  expect(split.servers[0]).toMatchObject({ name: 'web-1', state: 'two-primaries' });
  expect(split.servers[0]!.problems.join('\n')).not.toMatch(/fence/);

  const text = await knocker(['status', '--once', '--root', root.dir]);
  expect(text.exitCode).toBe(1);
  expect(text.stdout).toContain(`✗ TWO PRIMARIES ${hostA} and ${hostB}`);
  expect(text.stdout).toContain(`✗ host ${hostA}: primary (accepts writes)`);
  expect(text.stdout).toContain(`✗ host ${hostB}: primary (accepts writes)`);

  const monitor = await openMonitor(root, { intervalMs: 500 });
  monitor.start();
  const ui = render(<Dashboard services={{ monitor, staleAfterMs: () => staleAfterMs(monitor) }} onExit={() => {}} />);
  try {
    const shown = await waitForFrame(ui, `✗ TWO PRIMARIES: ${hostA} and ${hostB}`, 30_000);
    expect(shown).toMatch(/^✗ knocker status/m);
    expect(shown).toContain(`✗ host ${hostB}: primary (accepts writes)`);
  } finally {
    ui.unmount();
    await monitor.stop();
  }

  // B read-only for every new session (a setting, not a stop): it no longer takes writes.
  await b.admin('ALTER DATABASE knocknoc SET default_transaction_read_only = on');
  const fenced = await statusJson(root);
  expect(fenced.twoPrimaries).toBe(false);
  expect(fenced.databaseHosts?.map((h) => [h.host, h.role])).toEqual([
    [hostA, 'primary'],
    [hostB, 'read-only'],
  ]);
  expect(fenced.code).toBe(0);
});

test('a primary and its streaming standby behind one DatabaseURL: healthy, each with its role', async () => {
  const primary = await startTestCluster({ host: A });
  clusters.push(primary);
  await allowLogins(primary, [NODE]);
  const single = parseDatabaseUrl(await primary.createDatabase({ role: 'knocknoc', database: 'knocknoc' }));
  if (!single.ok) throw new Error(single.error);
  standby = await startTestStandby(primary, { host: B, name: 'standby_b', allow: [NODE] });
  const hostP = `${A}:${primary.port}`;
  const hostS = `${B}:${standby.cluster.port}`;
  const url = multiHost([hostS, hostP], single.value.password);
  const node = await startServer({ host: NODE, databaseUrl: url, name: 'web-1' });
  await node.waitForStatus(200);
  const root = await rootFor(url, `${node.host}:${node.port}`);

  const status = await statusJson(root);
  expect(status.code).toBe(0);
  expect(status.twoPrimaries).toBe(false);
  expect(status.databaseHosts).toEqual([
    { host: hostS, role: 'standby', inRecovery: true, acceptsWrites: false, error: null },
    { host: hostP, role: 'primary', inRecovery: false, acceptsWrites: true, error: null },
  ]);
  const text = await knocker(['status', '--once', '--root', root.dir]);
  expect(text.exitCode).toBe(0);
  expect(text.stdout).toContain(`✔ host ${hostS}: standby`);
  expect(text.stdout).toContain(`✔ host ${hostP}: primary (accepts writes)`);
});
