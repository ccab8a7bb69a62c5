// Persistence and rotation through HAProxy in front of real knocknoc-server nodes: a client keeps
// its node by HAProxy's cookie while new clients are spread; drain, maint and ready as an
// operator runs them (bin/knocker), maint kept across reloads and restarts, and ready only after
// a passing health check.
import fs from 'node:fs/promises';
import { expect, test } from 'vitest';
import { nodesSeenByNewClients, setupHaproxy, spec } from '../helpers/haproxy.js';
import { knocker } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';
import { launchServer, request, sharedDatabase, startServer, untilListening, waitFor, type ServerNode } from '../helpers/server.js';

const HOSTS = ['127.0.0.89', '127.0.0.90', '127.0.0.91', '127.0.0.92'];
const HAPROXY_HOST = '127.0.0.93';
const CLIENT = '127.0.0.94';
const db = sharedDatabase({ host: '127.0.0.88', allow: HOSTS });
const newRoot = useRoots();

function startNodes(count: number): Promise<ServerNode[]> {
  return Promise.all(HOSTS.slice(0, count).map((host, i) => startServer({ host, databaseUrl: db.url, name: `web-${i + 1}` })));
}

test('a client stays on its node by the cookie HAProxy sets; new clients are spread; nodes see the client, not HAProxy', async () => {
  const nodes = await startNodes(3);
  const haproxy = await setupHaproxy(await newRoot(), HAPROXY_HOST, nodes);

  const first = await haproxy.get();
  expect(first.status).toBe(200);
  expect(first.setCookie).toBe(`SRVID=${first.node}`);
  for (let i = 0; i < 8; i += 1) {
    const again = await haproxy.get({ cookie: first.setCookie });
    expect(again).toEqual({ status: 200, node: first.node, setCookie: undefined });
  }
  const spread = await nodesSeenByNewClients(haproxy, 9);
  for (const name of ['web-1', 'web-2', 'web-3']) expect(spread.filter((n) => n === name).length).toBeGreaterThanOrEqual(2);

  // option forwardfor, and nodes trusting 127.0.0.1 (where HAProxy connects from): the node logs the client.
  const reply = await request(`${haproxy.url}/from-a-client`, { localAddress: CLIENT });
  const served = nodes.find((n) => n.name === reply.headers['x-knocknoc-server'])!;
  await waitFor('the request in the node log', () => (served.stdout().includes('"GET /from-a-client HTTP/1.1"') ? true : undefined));
  expect(served.stdout()).toMatch(/HTTP {2}127\.0\.0\.94 via 127\.0\.0\.1 "GET \/from-a-client HTTP\/1\.1" 404/);
});

test('drain: no new sessions, cookie holders stay; maint: no traffic at all, kept across a reload and a restart', async () => {
  const nodes = await startNodes(4);
  const root = await newRoot();
  const haproxy = await setupHaproxy(root, HAPROXY_HOST, nodes.slice(0, 3));
  const holder = 'SRVID=web-2';
  expect((await haproxy.get({ cookie: holder })).node).toBe('web-2');

  const drained = await haproxy.run('drain', 'web-2');
  expect(drained.exitCode).toBe(0);
  expect(drained.stderr).toMatch(/Drain web-2: no new sessions; clients holding its cookie still reach it …\n {2}\[1\/1\] ✔ done in [\d.]+ s \(now DRAIN/);
  expect(drained.stdout).toMatch(/^web-2: DRAIN, check L7OK 200$/);
  expect((await haproxy.statusOf('web-2')).status).toBe('DRAIN');
  expect(await nodesSeenByNewClients(haproxy, 8)).not.toContain('web-2');
  expect((await haproxy.get({ cookie: holder })).node).toBe('web-2');
  const drainedAgain = await haproxy.run('drain', 'web-2');
  expect(drainedAgain.stderr).toContain('Nothing to change: web-2 is already drained');
  expect(drainedAgain.stdout).toMatch(/^web-2: DRAIN/);

  const maint = await haproxy.run('maint', 'web-2');
  expect(maint.exitCode).toBe(0);
  expect((await haproxy.statusOf('web-2')).status).toBe('MAINT');
  const redispatched = await haproxy.get({ cookie: holder });
  expect(redispatched.status).toBe(200);
  expect(redispatched.node).not.toBe('web-2');
  expect(redispatched.setCookie).toBe(`SRVID=${redispatched.node}`);

  // A reload (adding web-4) keeps web-2 in maintenance, and drops no request made meanwhile.
  const during: number[] = [];
  let reloading = true;
  const requests = (async () => {
    while (reloading) during.push((await haproxy.get()).status);
  })();
  const added = await haproxy.run('add', spec(nodes[3]!));
  reloading = false;
  await requests;
  expect(during.length).toBeGreaterThan(0);
  expect(during.filter((status) => status !== 200)).toEqual([]);
  expect(added.exitCode, added.stderr).toBe(0);
  expect(added.stderr).toMatch(/Reload HAProxy \(pid \d+\) without dropping connections …\n {2}\[2\/2\] ✔ done in [\d.]+ s \(new worker pid \d+/);
  // Piped, add's stdout is its result alone: the configuration now in place, as list prints it.
  expect(added.stdout).toBe((await haproxy.run('list')).stdout);
  expect(added.stdout).toContain(`  web-4            ${spec(nodes[3]!).slice('web-4='.length).padEnd(24)} active`);
  await haproxy.waitFor('web-4', 'UP');
  expect((await haproxy.statusOf('web-2')).status).toBe('MAINT');
  expect(await nodesSeenByNewClients(haproxy, 8)).not.toContain('web-2');

  // So does a stop and start.
  const restarted = await knocker(['service', 'restart', 'haproxy', '--root', root.dir]);
  expect(restarted.exitCode).toBe(0);
  expect((await haproxy.statusOf('web-2')).status).toBe('MAINT');
  expect(await fs.readFile(root.path('/var/lib/haproxy/server-state'), 'utf8')).toMatch(/ web_nodes \d+ web-2 127\.0\.0\.90 0 1 /);
});

test('ready brings a node back only after it passes a health check', async () => {
  const nodes = await startNodes(2);
  const haproxy = await setupHaproxy(await newRoot(), HAPROXY_HOST, nodes);
  expect((await haproxy.run('maint', 'web-2')).exitCode).toBe(0);

  // Its process is gone: ready waits for a check that never passes, and leaves it out of rotation.
  nodes[1]!.child.kill('SIGTERM');
  await nodes[1]!.exited;
  const refused = await haproxy.run('ready', 'web-2', '--timeout', '4');
  expect(refused.exitCode).toBe(4);
  expect(refused.stderr).toContain('web-2 did not pass its health check within 4 s (now DOWN, check L4CON: Connection refused); it stays out of rotation');
  expect(refused.stderr).toContain('↺ rolled back: Bring web-2 back into rotation');
  expect(refused.stdout).toBe('');
  expect((await haproxy.statusOf('web-2')).status).toBe('MAINT');

  // Serving again: ready goes through DRAIN (checks passed), then into rotation.
  const again = launchServer({ confFile: nodes[1]!.confFile, name: 'web-2', host: nodes[1]!.host, port: nodes[1]!.port });
  await untilListening(again);
  const ready = await haproxy.run('ready', 'web-2');
  expect(ready.exitCode, ready.stderr).toBe(0);
  expect(ready.stderr).toMatch(/web-2: DRAIN, check L7OK 200\n {2}\[1\/1\] ✔ done in [\d.]+ s \(now UP, check L7OK 200\)/);
  expect(ready.stderr.indexOf('web-2: DRAIN')).toBeGreaterThan(ready.stderr.indexOf('web-2: DOWN'));
  expect(ready.stdout).toBe('web-2: UP, check L7OK 200');
  expect((await haproxy.statusOf('web-2')).status).toBe('UP');
  await waitFor('web-2 to serve new clients', async () => ((await haproxy.get()).node === 'web-2' ? true : undefined));
  expect((await haproxy.run('ready', 'web-2')).stderr).toContain('Nothing to change: web-2 is already in rotation');
});
