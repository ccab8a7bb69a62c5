// The cluster's history: changes applied through the one runner on two hosts (two sandbox roots on
// one shared database) are recorded once each with where, which command and the outcome; both hosts
// read the same list; with the database down a command still works, its event waits in the host's
// spool (0600) and the next command that reaches the database writes it; rows that are not events
// are left out and counted.
import fs from 'node:fs/promises';
import { expect, test } from 'vitest';
import { HISTORY_SPOOL } from '../../src/history/spool.js';
import { freePort } from '../../src/system/host.js';
import { knocker } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';
import { sharedDatabase, startServer } from '../helpers/server.js';
import type { Root } from '../../src/system/root.js';

const db = sharedDatabase({ allow: ['127.0.0.2', '127.0.0.3'] });
const newRoot = useRoots();

interface Listed {
  events: Array<{ id: string; host: string; server: string | null; command: string; action: string; outcome: string; detail: string | null; spooled: boolean }>;
  skipped: number;
  spooled: number;
}

async function history(root: Root, ...args: string[]): Promise<Listed> {
  const result = await knocker(['history', '--json', '--root', root.dir, ...args]);
  expect(result.exitCode, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as Listed;
}

async function install(root: Root, host: string, name: string): Promise<string> {
  const listen = `${host}:${await freePort(host)}`;
  const result = await knocker(['install', '--root', root.dir, '--listen', listen, '--database-option', '3', '--server-name', name], {
    env: { KNOCKNOC_DATABASE_URL: db.url },
  });
  expect(result.exitCode, result.stderr).toBe(0);
  return listen;
}

test('every host sees the same history: installs, drain, a forget rolled back, and an event spooled while the database was down', async () => {
  // A node of the release migrates the database (the history table comes with the schema).
  const seed = await startServer({ host: '127.0.0.3', databaseUrl: db.url, name: 'web-seed' });
  await seed.waitForStatus(200);
  const a = await newRoot();
  const b = await newRoot();
  const listenA = await install(a, '127.0.0.2', 'web-a');
  await install(b, '127.0.0.3', 'web-b');

  const bind = `127.0.0.2:${await freePort('127.0.0.2')}`;
  const setup = await knocker(['haproxy', 'setup', '--root', a.dir, `web-a=${listenA}`, `web-seed=127.0.0.3:${seed.port}`, '--bind', bind]);
  expect(setup.exitCode, setup.stderr).toBe(0);
  const drain = await knocker(['haproxy', 'drain', 'web-seed', '--root', a.dir]);
  expect(drain.exitCode, drain.stderr).toBe(0);
  expect(drain.stderr).not.toContain('history:');

  // A forget the database refuses: rolled back, and recorded as such with its error.
  await db.cluster.admin(
    `CREATE FUNCTION refuse_forget() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'kept by a test'; END $$`,
    [],
    'knocknoc',
  );
  await db.cluster.admin('CREATE TRIGGER refuse_forget BEFORE DELETE ON servers FOR EACH ROW EXECUTE FUNCTION refuse_forget()', [], 'knocknoc');
  const refused = await knocker(['server', 'forget', 'web-seed', '--force', '--root', a.dir]);
  expect(refused.exitCode, refused.stderr).toBe(4);
  await db.cluster.admin('DROP TRIGGER refuse_forget ON servers', [], 'knocknoc');

  const fromA = await history(a);
  const fromB = await history(b);
  expect(fromB).toEqual(fromA);
  expect(fromA.skipped).toBe(0);
  const seen = fromA.events.map((e) => [e.server, e.command, e.outcome]);
  expect(seen).toEqual([
    ['web-a', 'knocker install', 'ok'],
    ['web-b', 'knocker install', 'ok'],
    ['web-a', 'knocker haproxy setup', 'ok'],
    ['web-a', 'knocker haproxy drain web-seed', 'ok'],
    ['web-a', 'knocker server forget web-seed', 'rolled-back'],
  ]);
  expect(fromA.events[4]!.detail).toContain('kept by a test');
  expect(fromA.events[4]!.action).toBe('Retire "web-seed"');
  // The plain list: one line per event, oldest first, the same on both hosts.
  const plainA = await knocker(['history', '--root', a.dir]);
  const plainB = await knocker(['history', '--root', b.dir]);
  expect(plainA.stdout).toBe(plainB.stdout);
  expect(plainA.stdout).toMatch(/^WHEN\s+WHERE\s+OUTCOME\s+WHAT$/m);
  expect(plainA.stdout).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+web-a \(\S+\)\s+✔ done\s+knocker haproxy drain web-seed$/m);
  expect(plainA.stdout).toMatch(/✗ failed, rolled back\s+knocker server forget web-seed: Retire "web-seed" — .*kept by a test/);
  expect((await knocker(['history', '--root', a.dir, '--limit', '2', '--json'])).stdout).toContain('"knocker server forget web-seed"');
  expect((await history(a, '--limit', '2')).events.map((e) => e.command)).toEqual(['knocker haproxy drain web-seed', 'knocker server forget web-seed']);

  // The database down: the command works, says where its event waits, and the spool is 0600.
  await db.cluster.stop();
  try {
    const maint = await knocker(['haproxy', 'maint', 'web-seed', '--root', a.dir]);
    expect(maint.exitCode, maint.stderr).toBe(0);
    expect(maint.stderr).toContain(`history: `);
    expect(maint.stderr).toContain(`this event is kept in ${a.path(HISTORY_SPOOL)} and written by the next knocker command that reaches the database`);
    expect((await fs.stat(a.path(HISTORY_SPOOL))).mode & 0o777).toBe(0o600);
    const down = await knocker(['history', '--root', a.dir]);
    expect(down.exitCode).toBe(3);
    expect(down.stderr).toContain('cannot reach the database');
  } finally {
    await db.cluster.start();
  }
  // Spooled events are shown on their host, marked, until written.
  const waiting = await history(a);
  expect(waiting.spooled).toBe(1);
  expect(waiting.events.at(-1)).toMatchObject({ command: 'knocker haproxy maint web-seed', outcome: 'ok', spooled: true });
  expect((await history(b)).events.some((e) => e.command === 'knocker haproxy maint web-seed')).toBe(false);

  // The next run that reaches the database writes what waited, and says so.
  const drainAgain = await knocker(['haproxy', 'drain', 'web-seed', '--root', a.dir]);
  expect(drainAgain.exitCode, drainAgain.stderr).toBe(0);
  expect(drainAgain.stderr).toContain('history: 1 earlier event kept on this host while the database could not take them now written to it');
  await expect(fs.stat(a.path(HISTORY_SPOOL))).rejects.toThrow(/ENOENT/);
  const after = await history(b);
  expect(after.events.slice(-2).map((e) => [e.command, e.spooled])).toEqual([
    ['knocker haproxy maint web-seed', false],
    ['knocker haproxy drain web-seed', false],
  ]);
  expect(await history(a)).toEqual(after);

  // A row that is not an event (written by any holder of the nodes' role) is left out and counted.
  await db.cluster.admin(
    `INSERT INTO history (id, started_at, finished_at, host, server, command, action, outcome) VALUES (gen_random_uuid(), now(), now() - interval '1 hour', 'h', NULL, 'x', 'y', 'ok')`,
    [],
    'knocknoc',
  );
  const withBad = await knocker(['history', '--json', '--root', b.dir]);
  expect(withBad.exitCode).toBe(0);
  expect(JSON.parse(withBad.stdout)).toMatchObject({ skipped: 1 });
  expect(withBad.stderr).toContain('history: 1 row of the database left out, not events');
});
