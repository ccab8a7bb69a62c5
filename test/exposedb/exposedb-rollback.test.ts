// exposedb --init when something is wrong: a configuration PostgreSQL would not start with stops it
// before any change (a restart must never be what finds it broken), and a failure in the last
// step rolls every step back, the restart included.
import fs from 'node:fs/promises';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { PATHS, type Root } from '../../src/system/root.js';
import { exposedState, hbaFile, installPrimary, rootAdmin } from '../helpers/exposedb.js';
import { knocker } from '../helpers/knocker.js';
import { destroyRoot, makeRoot } from '../helpers/roots.js';

let primary: Root;
beforeAll(async () => {
  primary = await makeRoot();
  await installPrimary(primary, '127.0.0.57');
  // Listening on localhost only, --init has to move the cluster to its root's own address, with a
  // restart: the change these tests need to see refused up front, or rolled back.
  await rootAdmin(primary, `ALTER SYSTEM SET listen_addresses = 'localhost'`);
  expect((await knocker(['service', 'restart', 'postgres', '--root', primary.dir])).exitCode).toBe(0);
});
afterAll(async () => {
  if (primary) await destroyRoot(primary);
});

const exposedb = (...args: string[]) => knocker(['exposedb', '--root', primary.dir, ...args]);

async function server(): Promise<{ startedAt: string; listen: string; remoteRoles: number }> {
  const [row] = await rootAdmin<{ started_at: string; listen: string; remote_roles: number }>(
    primary,
    `SELECT pg_postmaster_start_time()::text AS started_at, current_setting('listen_addresses') AS listen,
            (SELECT count(*)::int FROM pg_roles WHERE rolname = 'knocknoc_remote') AS remote_roles`,
  );
  return { startedAt: row!.started_at, listen: row!.listen, remoteRoles: row!.remote_roles };
}

test('a postgresql.conf PostgreSQL would not start with: exit 3 before any change, no restart', async () => {
  const confFile = primary.path(`${PATHS.pgData}/postgresql.conf`);
  const conf = await fs.readFile(confFile, 'utf8');
  // Accepted by a reload (it only "could not be applied"), fatal at the next start.
  await fs.writeFile(confFile, `${conf}shared_buffers = 'lots'\n`);
  try {
    const before = { state: await exposedState(primary), server: await server() };
    const result = await exposedb('--init');
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toContain(
      'error: PostgreSQL would not start again with its configuration files, so exposedb will not restart it: invalid value for parameter "shared_buffers": "lots"',
    );
    expect(result.stdout).toBe('');
    expect({ state: await exposedState(primary), server: await server() }).toEqual(before);
  } finally {
    await fs.writeFile(confFile, conf);
  }
});

test('a failure late in the plan rolls back every step before it (exit 4)', async () => {
  // pg_hba.conf has a line PostgreSQL refuses (outside exposedb's block): the allow-list step fails
  // after the connection string was kept and the role and its grants were made.
  const hba = hbaFile(primary);
  const original = await fs.readFile(hba, 'utf8');
  await fs.writeFile(hba, `${original}host all all 10.0.0.0/99 scram-sha-256\n`);
  try {
    const before = { state: await exposedState(primary), server: await server() };
    expect(before.server).toMatchObject({ listen: 'localhost', remoteRoles: 0 });
    const result = await exposedb('--init');
    expect(result.exitCode).toBe(4);
    expect(result.stderr).toMatch(/error: pg_hba\.conf: allow-list block .* failed: /);
    expect(result.stderr).toContain('hint: every change made before the failure was rolled back');
    for (const step of ['exposedb-url', 'create login role knocknoc_remote', 'knocknoc_remote acts as knocknoc', 'PostgreSQL TLS']) {
      expect(result.stderr).toMatch(new RegExp(`↺ rolled back: .*${step}`));
    }
    // As it was: no role, the same files, not restarted, still listening where it did.
    const after = await server();
    expect(after).toEqual(before.server);
    expect(await exposedState(primary)).toEqual(before.state);
    await expect(fs.access(primary.path(PATHS.exposedbUrl))).rejects.toThrow();
    // No CA, no certificate, ssl off again.
    await expect(fs.access(primary.path(PATHS.clusterCaDir))).rejects.toThrow();
    await expect(fs.access(primary.path(PATHS.pgTlsDir))).rejects.toThrow();
    expect(await rootAdmin(primary, `SELECT current_setting('ssl') AS ssl`)).toEqual([{ ssl: 'off' }]);
  } finally {
    await fs.writeFile(hba, original);
  }
});
