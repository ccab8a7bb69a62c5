// Changing HAProxy's configuration as an operator does (bin/knocker on a sandbox root, real HAProxy
// and real knocknoc-server nodes): nothing is applied from a broken template or a bad node, and
// the old configuration keeps serving; setup from the servers registry, dry runs, list and remove;
// TLS; knocker service; and the warning about a local node's TrustedForwarders.
import { execa } from 'execa';
import fs from 'node:fs/promises';
import path from 'node:path';
import { selfSignedArgs } from '../helpers/certs.js';
import { expect, test } from 'vitest';
import { runtimeCommand } from '../../src/haproxy/runtime.js';
import { freePort } from '../../src/system/host.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { Haproxy, nodesSeenByNewClients, setupHaproxy, spec } from '../helpers/haproxy.js';
import { knocker } from '../helpers/knocker.js';
import { makeRelease } from '../helpers/release.js';
import { snapshotTree, useRoots } from '../helpers/roots.js';
import { request, sharedDatabase, startServer, waitFor, type ServerNode } from '../helpers/server.js';

const HOSTS = ['127.0.0.105', '127.0.0.106', '127.0.0.107'];
const HAPROXY_HOST = '127.0.0.108';
// knocker itself reads the registry from 127.0.0.1.
const db = sharedDatabase({ host: '127.0.0.104', allow: [...HOSTS, '127.0.0.1'] });
const newRoot = useRoots();

function startNodes(count: number, databaseUrl = db.url): Promise<ServerNode[]> {
  return Promise.all(HOSTS.slice(0, count).map((host, i) => startServer({ host, databaseUrl, name: `web-${i + 1}` })));
}

async function workerPid(haproxy: Haproxy): Promise<number> {
  const result = await haproxy.run('status', '--json');
  return (JSON.parse(result.stdout) as { haproxy: { pid: number } }).haproxy.pid;
}

test('a broken template or a bad node changes nothing: exit 4 or 2, and the old configuration keeps serving', async () => {
  const nodes = await startNodes(3);
  const root = await newRoot();
  const haproxy = await setupHaproxy(root, HAPROXY_HOST, nodes.slice(0, 2));
  const before = await snapshotTree(root.path('/etc/haproxy'));
  const pid = await workerPid(haproxy);
  const unchanged = async () => {
    expect(await snapshotTree(root.path('/etc/haproxy'))).toEqual(before);
    expect(await workerPid(haproxy)).toBe(pid);
    expect(new Set(await nodesSeenByNewClients(haproxy, 4))).toEqual(new Set(['web-1', 'web-2']));
  };

  const badSpecs = await haproxy.run('add', 'web-3=nothost:8756', 'web-4', `web-1=${nodes[2]!.host}:${nodes[2]!.port}`);
  expect(badSpecs.exitCode).toBe(2);
  expect(badSpecs.stderr).toContain('error: invalid nodes (write them NAME=HOST:PORT); nothing was changed');
  expect(badSpecs.stderr).toContain('"web-3=nothost:8756": "nothost" is not an IPv4 or IPv6 address');
  expect(badSpecs.stderr).toContain('"web-4" is not NAME=HOST:PORT');
  const taken = await haproxy.run('add', `web-1=${nodes[2]!.host}:${nodes[2]!.port}`);
  expect(taken.exitCode).toBe(2);
  expect(taken.stderr).toContain(`web-1 is web-1=${nodes[0]!.host}:${nodes[0]!.port}: remove it first to change it`);
  const last = await haproxy.run('remove', 'web-1', 'web-2');
  expect(last.exitCode).toBe(2);
  expect(last.stderr).toContain('no web node: give at least one as NAME=HOST:PORT');
  await unchanged();

  // A release whose template HAProxy refuses: haproxy -c stops it before anything is replaced.
  const broken = await makeRelease({ version: '1.0.1' });
  const unfillable = await makeRelease({ version: '1.0.2' });
  try {
    const template = path.join(broken.dir, 'assets', 'haproxy.cfg.template');
    await fs.writeFile(template, (await fs.readFile(template, 'utf8')).replace('    balance roundrobin\n', '    balance roundrobin\n    no-such-keyword on\n'));
    const refused = await knocker(['haproxy', 'add', spec(nodes[2]!), '--root', root.dir], { bin: broken.knockerBin });
    expect(refused.exitCode).toBe(4);
    expect(refused.stderr).toMatch(
      /✗ failed after [\d.]+ s: the new configuration does not pass haproxy -c; \S+\/etc\/haproxy\/haproxy\.cfg is left as it was/,
    );
    expect(refused.stderr).toMatch(/\[ALERT\].*haproxy\.cfg:\d+\] : unknown keyword 'no-such-keyword' in 'backend' section/);
    expect(refused.stderr).not.toContain('Reload HAProxy');
    expect(refused.stdout).toBe('');
    await unchanged();

    const other = path.join(unfillable.dir, 'assets', 'haproxy.cfg.template');
    await fs.writeFile(other, (await fs.readFile(other, 'utf8')).replace('{{servers}}', '{{nodes}}'));
    const unknown = await knocker(['haproxy', 'add', spec(nodes[2]!), '--root', root.dir], { bin: unfillable.knockerBin });
    expect(unknown.exitCode).toBe(4);
    expect(unknown.stderr).toContain('error: cannot fill the HAProxy template: unknown placeholder {{nodes}}; no {{servers}}');
    await unchanged();
  } finally {
    await broken.destroy();
    await unfillable.destroy();
  }
});

test('setup from the servers registry, a dry run, list and remove', async () => {
  const url = await db.cluster.createDatabase({ role: 'registry', database: 'registry' });
  const nodes = await startNodes(3, url);
  const root = await newRoot();
  const bind = `${HAPROXY_HOST}:${await freePort(HAPROXY_HOST)}`;
  const run = (...args: string[]) => knocker(['haproxy', ...args, '--root', root.dir]);

  const dry = await run('setup', '--from-registry', '--conn', url, '--bind', bind, '--backup', spec(nodes[2]!), '--dry-run', '--json');
  expect(dry.exitCode).toBe(0);
  const plan = JSON.parse(dry.stdout) as { notes: string[]; plan: { steps: Array<{ title: string; changes: boolean; details: string[] }> } };
  expect(plan.notes).toEqual([expect.stringMatching(/^From the servers registry: web-1 \(127\.0\.0\.105:\d+, online, 1\.0\.0\), /)]);
  expect(plan.plan.steps.map((s) => s.title)).toEqual([
    expect.stringMatching(/^Write \S+\/etc\/haproxy\/haproxy\.cfg: 3 web nodes behind http:\/\/127\.0\.0\.108:\d+ \(checked with haproxy -c first\)$/),
    'Start HAProxy (daemon) and wait until its admin socket answers',
  ]);
  expect(plan.plan.steps[0]!.details).toContain(`+    server web-3 ${nodes[2]!.host}:${nodes[2]!.port} cookie web-3 check backup`);
  await expect(fs.access(root.path(PATHS.haproxyConf))).rejects.toThrow();

  const setup = await run('setup', '--from-registry', '--conn', url, '--bind', bind, '--backup', spec(nodes[2]!));
  expect(setup.exitCode, setup.stderr).toBe(0);
  expect(setup.stderr).toMatch(
    /^From the servers registry: web-1 \(127\.0\.0\.105:\d+, online, 1\.0\.0\), web-2 \(127\.0\.0\.106:\d+, online, 1\.0\.0\), web-3 /,
  );
  expect(setup.stderr).toMatch(/\[2\/2\] ✔ done/);
  const list = await run('list');
  const configured = [
    `HAProxy listens on http://${bind}`,
    `  web-1            ${`${nodes[0]!.host}:${nodes[0]!.port}`.padEnd(24)} active`,
    `  web-2            ${`${nodes[1]!.host}:${nodes[1]!.port}`.padEnd(24)} active`,
    `  web-3            ${`${nodes[2]!.host}:${nodes[2]!.port}`.padEnd(24)} backup`,
  ];
  expect(list.stdout.split('\n')).toEqual(configured);
  // Piped, setup's stdout is its result alone: the configuration now in place, as list prints it.
  expect(setup.stdout.split('\n')).toEqual(configured);
  const haproxy = new Haproxy(root, `http://${bind}`);
  await haproxy.waitFor('web-1', 'UP');

  const removed = await run('remove', 'web-2');
  expect(removed.exitCode).toBe(0);
  expect(removed.stderr).toContain('(previous version kept as');
  expect(removed.stdout.split('\n')).toEqual(configured.filter((line) => !line.includes('web-2')));
  expect((await haproxy.status()).map((s) => s.name)).toEqual(['web-1', 'web-3']);
  expect(await fs.readFile(root.path(`${PATHS.haproxyConf}.bak`), 'utf8')).toContain('server web-2 ');
  expect((await run('remove', 'web-9')).stderr).toContain('error: no such node: web-9; nothing was changed\n  the nodes are: web-1, web-3');
  const again = await run('setup');
  expect(again.stderr).toContain('Nothing to change: HAProxy already runs this configuration.');
  expect(again.stdout).toBe((await run('list')).stdout);
});

test('TLS: HTTPS with the certificate, plain HTTP redirected to it, the cookie Secure', async () => {
  const nodes = await startNodes(1);
  const root = await newRoot();
  const cert = path.join(root.dir, 'knocknoc.pem');
  const [openssl, ...args] = selfSignedArgs({ cn: 'localhost', days: 2, keyOut: `${cert}.key`, certOut: `${cert}.crt` });
  await execa(openssl!, args);
  await fs.writeFile(cert, (await fs.readFile(`${cert}.crt`, 'utf8')) + (await fs.readFile(`${cert}.key`, 'utf8')), { mode: 0o600 });
  const httpsPort = await freePort(HAPROXY_HOST);
  const httpPort = await freePort(HAPROXY_HOST);
  const haproxy = await setupHaproxy(root, HAPROXY_HOST, nodes, {
    args: ['--cert', cert, '--http-bind', `${HAPROXY_HOST}:${httpPort}`, '--bind', `${HAPROXY_HOST}:${httpsPort}`],
  });
  expect((await haproxy.run('list')).stdout).toContain(
    `HAProxy listens on https://${HAPROXY_HOST}:${httpsPort} (certificate ${cert}), and redirects http://${HAPROXY_HOST}:${httpPort} there`,
  );

  const plain = await request(`http://${HAPROXY_HOST}:${httpPort}/some/page?x=1`);
  expect(plain.status).toBe(301);
  expect(plain.headers.location).toBe(`https://${HAPROXY_HOST}:${httpsPort}/some/page?x=1`);
  const https = await execa('curl', ['-sk', '-D', '-', '-o', '/dev/null', `https://${HAPROXY_HOST}:${httpsPort}/`]);
  expect(https.stdout).toMatch(/^HTTP\/2 200/);
  expect(https.stdout).toMatch(/x-knocknoc-server: web-1/i);
  expect(https.stdout).toMatch(/set-cookie: SRVID=web-1; path=\/; HttpOnly; Secure/i);

  // Back to plain HTTP, where the redirect was.
  const plainAgain = await haproxy.run('setup', '--no-cert');
  expect(plainAgain.exitCode).toBe(0);
  expect(plainAgain.stdout).toContain(`HAProxy listens on http://${HAPROXY_HOST}:${httpPort}`);
  await waitFor('plain HTTP served', async () => ((await request(`http://${HAPROXY_HOST}:${httpPort}/`)).status === 200 ? true : undefined));
});

async function writeLocalConf(root: Root, node: ServerNode, trustedForwarders: string): Promise<void> {
  await fs.mkdir(root.path(PATHS.etcDir), { recursive: true });
  await fs.writeFile(
    root.path(PATHS.conf),
    `Listen = ${node.host}:${node.port}\nTrustedForwarders = ${trustedForwarders}\nDatabaseURL = ${db.url}\nServerName = ${node.name}\n`,
    { mode: 0o600 },
  );
}

test("knocker service runs HAProxy; its sockets; a local node not trusting HAProxy's address is warned about", async () => {
  const nodes = await startNodes(2);
  const root = await newRoot();
  await writeLocalConf(root, nodes[0]!, '10.9.9.9/32');
  // The package's own configuration is replaced, and kept.
  await fs.mkdir(root.path('/etc/haproxy'), { recursive: true });
  await fs.writeFile(root.path(PATHS.haproxyConf), 'global\n    daemon\n');
  const bind = `${HAPROXY_HOST}:${await freePort(HAPROXY_HOST)}`;
  const setup = await knocker(['haproxy', 'setup', '--root', root.dir, '--bind', bind, ...nodes.map(spec)]);
  expect(setup.exitCode).toBe(0);
  expect(setup.stderr).toContain(
    `warning: ${root.path(PATHS.haproxyConf)} was not written by knocker: it is replaced, and kept as ${root.path(PATHS.haproxyConf)}.bak`,
  );
  expect(await fs.readFile(root.path(`${PATHS.haproxyConf}.bak`), 'utf8')).toBe('global\n    daemon\n');
  expect(setup.stderr).toContain(
    `warning: web-1 (${nodes[0]!.host}:${nodes[0]!.port}) is this host's Knocknoc node, and HAProxy reaches it from 127.0.0.1, which its TrustedForwarders (10.9.9.9/32) do not include`,
  );
  expect(setup.stderr).toContain(`Add 127.0.0.1/32 to TrustedForwarders in ${root.path(PATHS.conf)}`);
  await writeLocalConf(root, nodes[0]!, '127.0.0.1/32');
  expect((await knocker(['haproxy', 'setup', '--root', root.dir])).stderr).not.toContain('warning:');

  const haproxy = new Haproxy(root, `http://${bind}`);
  await haproxy.waitFor('web-2', 'UP');
  // knocker's socket is root's alone; the dashboard's can read but not change.
  expect((await fs.stat(root.path(PATHS.haproxyAdminSocket))).mode & 0o777).toBe(0o600);
  expect((await fs.stat(root.path(PATHS.haproxyStatusSocket))).mode & 0o777).toBe(0o660);
  expect(await runtimeCommand(root.path(PATHS.haproxyStatusSocket), 'set server web_nodes/web-1 state maint')).toBe('Permission denied\n\n');
  expect((await haproxy.statusOf('web-1')).status).toBe('UP');
  const service = (...args: string[]) => knocker(['service', ...args, '--root', root.dir]);
  const status = await service('status', 'haproxy');
  expect(status.exitCode).toBe(0);
  expect(status.stdout).toMatch(new RegExp(`^haproxy   running     pid \\d+, http://${bind}: 2/2 web nodes in rotation; log \\S+haproxy\\.log$`, 'm'));
  const stopped = await service('stop', 'haproxy');
  expect(stopped.stderr).toMatch(/Stop HAProxy \(http:\/\/127\.0\.0\.108:\d+\) …\n {2}\[1\/1\] ✔ done in [\d.]+ s \(stopped\)/);
  await expect(request(`http://${bind}/`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  expect((await service('status', 'haproxy')).stdout).toMatch(/^haproxy {3}stopped /m);
  const unreachable = await haproxy.run('status');
  expect(unreachable.exitCode).toBe(3);
  expect(unreachable.stderr).toContain('is it running? knocker service status haproxy');
  // A node removed meanwhile: the configuration changes, HAProxy stays stopped until it is started.
  const removed = await haproxy.run('remove', 'web-2');
  expect(removed.exitCode).toBe(0);
  expect(removed.stderr).toContain(`HAProxy is stopped; it uses this configuration when it starts (knocker service start haproxy --root ${root.dir}).`);
  await expect(request(`http://${bind}/`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  expect((await service('start', 'haproxy')).exitCode).toBe(0);
  expect((await request(`http://${bind}/`)).status).toBe(200);
  expect((await haproxy.status()).map((s) => s.name)).toEqual(['web-1']);
});
