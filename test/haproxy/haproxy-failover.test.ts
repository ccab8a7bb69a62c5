// HAProxy in front of real knocknoc-server nodes sharing one database: a node that dies or falls
// out of step with the database leaves rotation by itself (its /_status check fails) and comes
// back when it serves again; a backup node serves only while every active node is down.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { nodesSeenByNewClients, setupHaproxy } from '../helpers/haproxy.js';
import { makeRelease, type TestRelease } from '../helpers/release.js';
import { useRoots } from '../helpers/roots.js';
import { launchServer, sharedDatabase, startServer, untilListening, waitFor, type ServerNode } from '../helpers/server.js';

const HOSTS = ['127.0.0.81', '127.0.0.82', '127.0.0.83'];
const HAPROXY_HOST = '127.0.0.84';
const db = sharedDatabase({ host: '127.0.0.80', allow: HOSTS });
const newRoot = useRoots();
let next: TestRelease;

beforeAll(async () => {
  next = await makeRelease({ version: '1.1.0', migrations: [{ name: 'server_notes', sql: 'ALTER TABLE servers ADD COLUMN note text;\n' }] });
});
afterAll(async () => {
  await next?.destroy();
});

function startNodes(count: number, databaseUrl = db.url): Promise<ServerNode[]> {
  return Promise.all(HOSTS.slice(0, count).map((host, i) => startServer({ host, databaseUrl, name: `web-${i + 1}` })));
}

/** The same node (configuration, address) started again, possibly from another release. */
async function restart(node: ServerNode, bin?: string): Promise<ServerNode> {
  if (node.child.exitCode === null && node.child.signalCode === null) {
    node.child.kill('SIGTERM');
    await node.exited;
  }
  const again = launchServer({ confFile: node.confFile, bin, name: node.name, host: node.host, port: node.port });
  await untilListening(again);
  return again;
}

test('a killed node is marked DOWN and leaves rotation; requests keep succeeding on the others', async () => {
  const nodes = await startNodes(3);
  const haproxy = await setupHaproxy(await newRoot(), HAPROXY_HOST, nodes);
  expect(new Set(await nodesSeenByNewClients(haproxy, 6))).toEqual(new Set(['web-1', 'web-2', 'web-3']));

  // Requests keep coming, one after the other, while web-2 dies without a word.
  const replies: Array<{ status: number; node: string | undefined }> = [];
  let loading = true;
  const load = (async () => {
    while (loading) replies.push(await haproxy.get());
  })();
  await waitFor('requests to flow', () => (replies.length >= 5 ? true : undefined));
  nodes[1]!.child.kill('SIGKILL');
  await haproxy.waitFor('web-2', 'DOWN');
  loading = false;
  await load;
  // Traffic may take it out before a health check does; the next check then says why.
  await waitFor('the failed check', async () => ((await haproxy.statusOf('web-2')).check.status === 'L4CON' ? true : undefined));
  expect(replies.filter((r) => r.status !== 200)).toEqual([]);
  expect(new Set(replies.slice(-3).map((r) => r.node))).not.toContain('web-2');

  expect(new Set(await nodesSeenByNewClients(haproxy, 6))).toEqual(new Set(['web-1', 'web-3']));
  // A client whose cookie names the dead node is served by another, and given its cookie.
  const moved = await haproxy.get({ cookie: 'SRVID=web-2' });
  expect(moved.status).toBe(200);
  expect(['web-1', 'web-3']).toContain(moved.node);
  expect(moved.setCookie).toBe(`SRVID=${moved.node}`);
});

test('a node out of step with the database leaves rotation; back in step, it returns', async () => {
  // A database of its own: this test migrates it to the next release.
  const nodes = await startNodes(3, await db.cluster.createDatabase({ role: 'stepping', database: 'stepping' }));
  const haproxy = await setupHaproxy(await newRoot(), HAPROXY_HOST, nodes);

  // web-3 is upgraded to the next release, which migrates the database: web-1 and web-2 are out of step.
  const upgraded = await restart(nodes[2]!, next.serverBin);
  for (const name of ['web-1', 'web-2']) {
    const row = await haproxy.waitFor(name, 'DOWN');
    expect(row.check).toMatchObject({ status: 'L7STS', code: 503 });
  }
  await haproxy.waitFor('web-3', 'UP');
  expect(new Set(await nodesSeenByNewClients(haproxy, 4))).toEqual(new Set(['web-3']));
  expect((await upgraded.status()).body.version).toBe('1.1.0');

  // web-1 upgraded too: in step again, HAProxy's checks bring it back by themselves.
  await restart(nodes[0]!, next.serverBin);
  await haproxy.waitFor('web-1', 'UP');
  await waitFor('web-1 to serve new clients again', async () => ((await haproxy.get()).node === 'web-1' ? true : undefined));
  expect((await haproxy.statusOf('web-2')).status).toBe('DOWN');
});

test('a backup node serves only while every active node is down', async () => {
  const [web1, web2, web3] = await startNodes(3);
  const haproxy = await setupHaproxy(await newRoot(), HAPROXY_HOST, [web1!, web2!], { backup: [web3!] });
  await haproxy.waitFor('web-3', 'UP');
  expect(await haproxy.statusOf('web-3')).toMatchObject({ role: 'backup', status: 'UP' });
  expect(new Set(await nodesSeenByNewClients(haproxy, 8))).toEqual(new Set(['web-1', 'web-2']));

  web1!.child.kill('SIGKILL');
  await haproxy.waitFor('web-1', 'DOWN');
  expect(new Set(await nodesSeenByNewClients(haproxy, 4))).toEqual(new Set(['web-2']));

  web2!.child.kill('SIGKILL');
  await haproxy.waitFor('web-2', 'DOWN');
  expect(new Set(await nodesSeenByNewClients(haproxy, 4))).toEqual(new Set(['web-3']));

  // An active node back: the standby stands by again.
  await restart(web1!);
  await haproxy.waitFor('web-1', 'UP');
  expect(new Set(await nodesSeenByNewClients(haproxy, 4))).toEqual(new Set(['web-1']));
});
