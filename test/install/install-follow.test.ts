// The installer with a multi-host DatabaseURL (a primary and its real streaming standby): each host
// is checked and named primary or standby, the string is written to knocknoc.conf as given (the
// server reads it with the same parser), and the node serves from the primary whatever the order.
import fs from 'node:fs/promises';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { KnocknocConf } from '../../src/config/knocknoc-conf.js';
import { checkServerConfig } from '../../src/server/config.js';
import { buildDatabaseUrl, parseDatabaseUrl } from '../../src/postgres/url.js';
import { freePort } from '../../src/system/host.js';
import { PATHS } from '../../src/system/root.js';
import { knocker } from '../helpers/knocker.js';
import { startTestCluster, type TestCluster } from '../helpers/pg.js';
import { allowLogins, startTestStandby, type TestStandby } from '../helpers/replica.js';
import { useRoots } from '../helpers/roots.js';

const PRIMARY = '127.0.0.51';
const STANDBY = '127.0.0.52';
const NODE = '127.0.0.53';
let primary: TestCluster;
let standby: TestStandby;
let password: string;

beforeAll(async () => {
  primary = await startTestCluster({ host: PRIMARY });
  await allowLogins(primary, [NODE]);
  const single = parseDatabaseUrl(await primary.createDatabase({ role: 'knocknoc', database: 'knocknoc' }));
  if (!single.ok) throw new Error(single.error);
  password = single.value.password!;
  standby = await startTestStandby(primary, { host: STANDBY, allow: [NODE] });
}, 120_000);
afterAll(async () => {
  await standby?.destroy();
  await primary?.destroy();
});

const newRoot = useRoots();

function url(hosts: Array<{ host: string; port: number }>, params: Record<string, string> = { target_session_attrs: 'read-write' }): string {
  return buildDatabaseUrl({ host: '', port: 0, hosts, user: 'knocknoc', password, database: 'knocknoc', params });
}

test('option 2 with the standby listed first: each host checked and named, the string kept as given, the node on the primary', async () => {
  const P = { host: PRIMARY, port: primary.port };
  const S = { host: STANDBY, port: standby.cluster.port };
  const given = url([S, P]);
  const root = await newRoot();
  const port = await freePort(NODE);
  const result = await knocker(['install', '--root', root.dir, '--listen', `${NODE}:${port}`, '--database-option', '2'], {
    env: { KNOCKNOC_DATABASE_URL: given },
  });
  expect(result.stdout).toBe('');
  expect(result.exitCode).toBe(0);
  expect(result.stderr).toMatch(new RegExp(`✔ ok +database host ${STANDBY}:${S.port}: standby \\(in recovery, read-only\\), PostgreSQL 1\\d`));
  expect(result.stderr).toMatch(new RegExp(`✔ ok +database host ${PRIMARY}:${P.port}: primary \\(read-write\\), PostgreSQL 1\\d`));
  expect(result.stderr).toMatch(new RegExp(`✔ ok +database ${PRIMARY}:${P.port}/knocknoc: PostgreSQL`));
  expect(result.stderr).not.toContain(password);
  const text = await fs.readFile(root.path(PATHS.conf), 'utf8');
  const conf = KnocknocConf.parse(text);
  expect(conf.get('DatabaseURL')).toBe(given);
  // The file is one knocknoc-server reads, with both hosts in order.
  const checked = checkServerConfig(text, root.path(PATHS.conf), 'web');
  expect(checked.ok && checked.config.databaseUrl.hosts).toEqual([S, P]);
  const status = await fetch(`http://${NODE}:${port}/_status`);
  expect(status.status).toBe(200);
  expect(await status.json()).toMatchObject({ status: 'ok', database: 'ok', databaseHost: `${PRIMARY}:${P.port}` });
  // The schema was made on the primary, and reached the standby.
  await expect
    .poll(async () => (await standby.admin<{ n: number }>(`SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'servers'`, [], 'knocknoc'))[0]!.n, {
      timeout: 20_000,
    })
    .toBe(1);
});

test('several hosts without target_session_attrs=read-write, or with no primary among them: refused before anything is written', async () => {
  const P = { host: PRIMARY, port: primary.port };
  const S = { host: STANDBY, port: standby.cluster.port };
  const root = await newRoot();
  const port = await freePort(NODE);
  const any = await knocker(['install', '--root', root.dir, '--listen', `${NODE}:${port}`, '--database-option', '3'], {
    env: { KNOCKNOC_DATABASE_URL: url([P, S], {}) },
  });
  expect(any.exitCode).toBe(3);
  expect(any.stderr).toMatch(/✗ FAIL connection string: it lists 2 hosts with target_session_attrs=any: a web node writes, and could settle on a standby/);
  expect(any.stderr).toContain('hint: add target_session_attrs=read-write');

  // Only the standby and a port where nothing listens.
  const nothing = { host: PRIMARY, port: await freePort(PRIMARY) };
  const none = await knocker(['install', '--root', root.dir, '--listen', `${NODE}:${port}`, '--database-option', '3'], {
    env: { KNOCKNOC_DATABASE_URL: url([nothing, S]) },
  });
  expect(none.exitCode).toBe(3);
  expect(none.stderr).toMatch(new RegExp(`✔ ok +database host ${STANDBY}:${S.port}: standby`));
  expect(none.stderr).toMatch(
    new RegExp(`✗ FAIL database hosts: no host of the list is a read-write primary \\(connection refused by ${PRIMARY}:${nothing.port}`),
  );
  expect(any.stdout + none.stdout + any.stderr + none.stderr).not.toContain(password);
  await expect(fs.access(root.path(PATHS.conf))).rejects.toThrow();
});
