// Web nodes follow the primary: a DatabaseURL listing a primary and its streaming standby with
// target_session_attrs=read-write (libpq's multi-host form), real PostgreSQL clusters on loopback
// "hosts", a real knocknoc-server process. The node uses the read-write one whatever the order,
// says which in /_status, and follows a promotion by itself.
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { createCa, issueServerCertificate } from '../../src/postgres/certificates.js';
import { restartCluster, type PrivateCluster } from '../../src/postgres/cluster.js';
import { isRoot, lookupUser } from '../../src/system/users.js';
import { makeTempDir } from '../helpers/temp.js';
import { buildDatabaseUrl, parseDatabaseUrl } from '../../src/postgres/url.js';
import { startTestCluster, type TestCluster } from '../helpers/pg.js';
import { allowLogins, startTestStandby, type TestStandby } from '../helpers/replica.js';
import { freePort } from '../../src/system/host.js';
import { launchServer, request, startServer, stopServers, waitFor, writeServerConf } from '../helpers/server.js';

const PRIMARY = '127.0.0.31';
const STANDBY = '127.0.0.32';
const NODE = '127.0.0.33';

interface Pair {
  primary: TestCluster;
  standby: TestStandby;
  /** The application's connection string with these hosts, in this order. */
  url(order: Array<'primary' | 'standby'>): string;
  primaryHost: string;
  standbyHost: string;
}

const made: Pair[] = [];

/** Each server its own certificate for its own address, from one CA: verify-full checks each host. */
async function withTls(cluster: PrivateCluster, caDir: string, restart: boolean): Promise<void> {
  const user = (await lookupUser(cluster.osUser))!;
  const owner = isRoot() ? { uid: user.uid, gid: user.gid } : undefined;
  const ca = { keyFile: path.join(caDir, 'ca.key'), certFile: path.join(caDir, 'ca.crt') };
  if (!(await fs.stat(ca.certFile).catch(() => undefined))) await createCa(ca, 'follow test');
  await issueServerCertificate({
    ca,
    hosts: [cluster.host],
    keyFile: path.join(cluster.dataDir, 'server.key'),
    certFile: path.join(cluster.dataDir, 'server.crt'),
    owner,
  });
  const conf = path.join(cluster.dataDir, 'postgresql.conf');
  if (!(await fs.readFile(conf, 'utf8')).includes('ssl = on'))
    await fs.appendFile(conf, "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
  if (restart) await restartCluster(cluster);
}

async function pair(options: { tls?: string } = {}): Promise<Pair> {
  const primary = await startTestCluster({ host: PRIMARY });
  if (options.tls) await withTls(primary, options.tls, true);
  await allowLogins(primary, [NODE]);
  const single = parseDatabaseUrl(await primary.createDatabase({ role: 'knocknoc', database: 'knocknoc' }));
  if (!single.ok) throw new Error(single.error);
  const standby = await startTestStandby(primary, {
    host: STANDBY,
    allow: [NODE],
    ...(options.tls ? { beforeStart: (c: PrivateCluster) => withTls(c, options.tls!, false) } : {}),
  });
  const at = { primary: { host: PRIMARY, port: primary.port }, standby: { host: STANDBY, port: standby.cluster.port } };
  const result: Pair = {
    primary,
    standby,
    primaryHost: `${PRIMARY}:${primary.port}`,
    standbyHost: `${STANDBY}:${standby.cluster.port}`,
    url: (order) =>
      buildDatabaseUrl({
        host: '',
        port: 0,
        hosts: order.map((o) => at[o]),
        user: 'knocknoc',
        password: single.value.password,
        database: 'knocknoc',
        params: { target_session_attrs: 'read-write', ...(options.tls ? { sslmode: 'verify-full', sslrootcert: path.join(options.tls, 'ca.crt') } : {}) },
      }),
  };
  made.push(result);
  return result;
}

afterEach(async () => {
  await stopServers();
  for (const p of made.splice(0)) {
    await p.standby.destroy();
    await p.primary.destroy();
  }
});

test('a two-host DatabaseURL: the node serves from the primary, in either order (the standby first is skipped as read-only)', async () => {
  const db = await pair();
  const first = await startServer({ host: NODE, databaseUrl: db.url(['primary', 'standby']), name: 'web-1' });
  const a = await first.waitForStatus(200);
  expect(a).toMatchObject({ status: 'ok', database: 'ok', databaseHost: db.primaryHost });
  await stopServers();

  const second = await startServer({ host: NODE, databaseUrl: db.url(['standby', 'primary']), name: 'web-1' });
  const b = await second.waitForStatus(200);
  expect(b.databaseHost).toBe(db.primaryHost);
  expect(second.stdout()).toContain(`database ${db.primaryHost} (the first read-write server of ${db.standbyHost}, ${db.primaryHost})`);
  // It registered on the primary, and the registration reached the standby.
  await waitFor('the registration on the standby', async () =>
    (await db.standby.admin<{ n: number }>('SELECT count(*)::int AS n FROM servers', [], 'knocknoc'))[0]!.n === 1 ? true : undefined,
  );
  const page = await request(second.url('/'));
  expect(page.status).toBe(200);
  expect(page.body).toContain('<td>web-1 (this node)</td>');

  // Its sessions terminated (SQLSTATE 57P01 on the open connection): it connects again by itself,
  // without a request to make it, to the same primary.
  const sessions = () => db.primary.admin<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name = 'knocknoc-server web-1'`, [], 'knocknoc');
  const before = (await sessions()).map((r) => r.pid);
  expect(before.length).toBeGreaterThan(0);
  await db.primary.admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'knocknoc-server web-1'`);
  await waitFor('a new session of web-1 on the primary', async () => ((await sessions()).some((r) => !before.includes(r.pid)) ? true : undefined));
  const again = await second.waitForStatus(200);
  expect(again.databaseHost).toBe(db.primaryHost);
  await waitFor('the page again', async () => ((await request(second.url('/'))).status === 200 ? true : undefined));
});

test('only a standby answers at start: exit 3 saying no server is read-write, never the password', async () => {
  const db = await pair();
  const only = db.url(['standby']);
  const port = await freePort(NODE);
  const confFile = await writeServerConf([`Listen = ${NODE}:${port}`, `DatabaseURL = ${only}`, 'ServerName = web-1']);
  const node = launchServer({ confFile, name: 'web-1', host: NODE, port });
  expect(await node.exited).toBe(3);
  expect(node.stderr()).toContain(`cannot reach the database: no server of the connection string is a read-write primary: ${db.standbyHost} is read-only`);
  const parsed = parseDatabaseUrl(only);
  expect(parsed.ok && parsed.value.password).toBeTruthy();
  if (parsed.ok) expect(node.stderr() + node.stdout()).not.toContain(parsed.value.password!);
});

test('the primary stopped, the standby promoted with pg_ctl promote: the node follows by itself, never hangs, and /_status names the new host', async () => {
  const db = await pair();
  const node = await startServer({ host: NODE, databaseUrl: db.url(['primary', 'standby']), name: 'web-1' });
  expect((await node.waitForStatus(200)).databaseHost).toBe(db.primaryHost);
  await db.standby.caughtUp();

  await db.primary.stop();
  // While only the standby answers: 503 with no database host, and the page fails cleanly; each
  // within the bound of a request (the helper's 10 s), whatever the node is doing.
  const down = await node.waitForStatus(503);
  expect(down).toMatchObject({ status: 'error', database: 'unreachable', databaseHost: null });
  const page = await request(node.url('/'));
  expect(page.status).toBe(503);
  expect(page.body).toMatch(/The database is unreachable/);

  await db.standby.promote();
  const up = await node.waitForStatus(200, 60_000);
  expect(up).toMatchObject({ status: 'ok', database: 'ok', databaseHost: db.standbyHost });
  // Pages follow too (their pool moved to the new host), and the heartbeat writes there.
  await waitFor('the page from the new primary', async () => ((await request(node.url('/'))).status === 200 ? true : undefined));
  const beat = await db.standby.admin<{ state: string }>(`SELECT state FROM servers WHERE name = 'web-1'`, [], 'knocknoc');
  expect(beat[0]?.state).toBe('running');
  await waitFor('the log of the move', () =>
    node.stdout().includes(`the database is now ${db.standbyHost} (was ${db.primaryHost})`) && /database reachable again after/.test(node.stdout())
      ? true
      : undefined,
  );
});

test('a primary turned read-only under the node (25006 on its heartbeat): the node moves to the read-write host', async () => {
  const db = await pair();
  const node = await startServer({ host: NODE, databaseUrl: db.url(['primary', 'standby']), name: 'web-1' });
  expect((await node.waitForStatus(200)).databaseHost).toBe(db.primaryHost);
  await db.standby.caughtUp();
  // A soft fence of the old primary, then the standby promoted: the node's open session on the
  // fenced primary is refused its next write (SQLSTATE 25006) and it selects again.
  await db.primary.admin('ALTER SYSTEM SET default_transaction_read_only = on');
  await db.primary.admin('SELECT pg_reload_conf()');
  await db.standby.promote();
  const moved = await waitFor(
    'the node on the promoted standby',
    async () => {
      const { http, body } = await node.status();
      return http === 200 && body.databaseHost === db.standbyHost ? body : undefined;
    },
    30_000,
  ).catch(async (error: Error) => {
    throw new Error(
      `${error.message}\n${JSON.stringify(await node.status().catch(() => undefined))}\n${node
        .stdout()
        .split('\n')
        .filter((l) => !l.includes('GET /_status'))
        .join('\n')}`,
    );
  });
  expect(moved.status).toBe('ok');
  // Its log comes on another channel than its /_status answer: waited for, not expected at once.
  await waitFor('the log of the move', () => (/is read-only now \(SQLSTATE 25006\)/.test(node.stdout()) ? true : undefined));
});

test('verify-full with a host list: each host checked against its own certificate, before and after the promotion', async () => {
  const caDir = await makeTempDir('knocker-follow-ca-');
  try {
    const db = await pair({ tls: caDir });
    const node = await startServer({ host: NODE, databaseUrl: db.url(['standby', 'primary']), name: 'web-1' });
    expect((await node.waitForStatus(200)).databaseHost).toBe(db.primaryHost);
    const encrypted = async (cluster: { admin: TestCluster['admin'] }) =>
      (
        await cluster.admin<{ ssl: boolean }>(
          `SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'knocknoc-server web-1'`,
        )
      ).map((r) => r.ssl);
    expect(await encrypted(db.primary)).toContain(true);
    expect(await encrypted(db.primary)).not.toContain(false);
    await db.standby.caughtUp();
    await db.primary.stop();
    await db.standby.promote();
    expect((await node.waitForStatus(200, 60_000)).databaseHost).toBe(db.standbyHost);
    await waitFor('web-1 on the promoted standby over TLS', async () => ((await encrypted(db.standby)).includes(true) ? true : undefined));
    expect(node.stdout() + node.stderr()).not.toMatch(/certificate|altnames/i);
  } finally {
    await fs.rm(caDir, { recursive: true, force: true });
  }
});
