// Database options 2 and 3 against a second, real PostgreSQL cluster playing the external
// database, and how connection failures are told apart.
import fs from 'node:fs/promises';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { KnocknocConf } from '../../src/config/knocknoc-conf.js';
import { PATHS } from '../../src/system/root.js';
import { knocker } from '../helpers/knocker.js';
import { startTestCluster, type TestCluster } from '../helpers/pg.js';
import { useRoots } from '../helpers/roots.js';

let external: TestCluster;
beforeAll(async () => {
  external = await startTestCluster({ host: '127.0.0.1' });
});
afterAll(async () => {
  await external?.destroy();
});

const newRoot = useRoots();

async function tables(database: string): Promise<string[]> {
  const rows = await external.admin<{ relname: string }>(
    `SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND relkind = 'r' ORDER BY relname`,
    [],
    database,
  );
  return rows.map((r) => r.relname);
}

describe('option 2: a new external database', () => {
  test('creates the Knocknoc schema as the connecting user; re-run is a no-op; another install is pointed to option 3', async () => {
    const url = await external.createDatabase({ role: 'ext2', database: 'ext2' });
    const root = await newRoot();
    const result = await knocker(['install', '--root', root.dir, '--listen', '127.0.0.1:18756', '--database-option', '2'], {
      env: { KNOCKNOC_DATABASE_URL: url },
    });
    expect(result.stdout).toBe('');
    expect(result.exitCode).toBe(0);
    expect(await tables('ext2')).toEqual(['history', 'knocknoc_schema_migrations', 'knocknoc_settings', 'servers']);
    const owners = await external.admin<{ owner: string }>(`SELECT DISTINCT tableowner AS owner FROM pg_tables WHERE schemaname = 'public'`, [], 'ext2');
    expect(owners).toEqual([{ owner: 'ext2' }]);
    const conf = KnocknocConf.parse(await fs.readFile(root.path(PATHS.conf), 'utf8'));
    expect(conf.get('DatabaseOption')).toBe('2');
    expect(conf.get('DatabaseURL')).toBe(url);

    const again = await knocker(['install', '--root', root.dir], { env: { KNOCKNOC_DATABASE_URL: url } });
    expect(again.exitCode).toBe(0);
    expect(again.stderr).toContain('Nothing to change');

    const other = await newRoot();
    const refused = await knocker(['install', '--root', other.dir, '--listen', '127.0.0.1:18757', '--database-option', '2'], {
      env: { KNOCKNOC_DATABASE_URL: url },
    });
    expect(refused.exitCode).toBe(3);
    expect(refused.stderr).toMatch(/✗ FAIL empty database: ext2 already holds a Knocknoc schema \(version 2\)/);
    expect(refused.stderr).toContain('hint: to add this node to an existing Knocknoc deployment, choose option 3 (web node only)');
    await expect(fs.access(other.path(PATHS.conf))).rejects.toThrow();
  });

  test('a user that cannot create tables fails preflight with the grant to make', async () => {
    await external.createDatabase({ role: 'owner3', database: 'owned3' });
    const url = await external.createDatabase({ role: 'weak3', database: 'weak3_own' });
    const weakUrl = url.replace(/\/weak3_own$/, '/owned3');
    const root = await newRoot();
    const result = await knocker(['install', '--root', root.dir, '--listen', '127.0.0.1:18758', '--database-option', '2', '--database-url', weakUrl]);
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toMatch(/✗ FAIL privileges: weak3 cannot create tables in owned3/);
    expect(result.stderr).toContain('hint: grant it, e.g. ALTER DATABASE owned3 OWNER TO weak3');
  });

  test('a migration that fails mid-apply is rolled back: the database is as it was, no knocknoc.conf (exit 4)', async () => {
    const url = await external.createDatabase({ role: 'ext4', database: 'ext4' });
    // Someone else's table with the name Knocknoc's first migration needs.
    await external.admin('CREATE TABLE servers (id integer); ALTER TABLE servers OWNER TO ext4', [], 'ext4');
    const root = await newRoot();
    const result = await knocker(['install', '--root', root.dir, '--listen', '127.0.0.1:18759', '--database-option', '2', '--database-url', url]);
    expect(result.exitCode).toBe(4);
    expect(result.stderr).toMatch(/migration 001_initial\.sql failed: relation "servers" already exists/);
    expect(await tables('ext4')).toEqual(['servers']);
    await expect(fs.access(root.path(PATHS.conf))).rejects.toThrow();
  });
});

describe('option 3: a web node on an existing Knocknoc database', () => {
  test('joins without creating or migrating anything', async () => {
    const url = await external.createDatabase({ role: 'shared', database: 'shared' });
    const primary = await newRoot();
    expect((await knocker(['install', '--root', primary.dir, '--listen', '127.0.0.1:18760', '--database-option', '2', '--database-url', url])).exitCode).toBe(
      0,
    );
    const before = await external.admin(`SELECT version, applied_at FROM knocknoc_schema_migrations`, [], 'shared');

    const node = await newRoot();
    const result = await knocker(['install', '--root', node.dir, '--listen', '127.0.0.1:18761', '--database-option', '3', '--server-name', 'web-2'], {
      env: { KNOCKNOC_DATABASE_URL: url },
    });
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toMatch(/✔ ok {3}Knocknoc database: schema version 2/);
    expect(result.stderr).toMatch(/\[1\/2\] Create .*knocknoc\.conf/);
    // The node is served from the shared database.
    const status = await fetch('http://127.0.0.1:18761/_status');
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({ status: 'ok', server: 'web-2', versionMatch: true, database: 'ok' });
    expect(await external.admin(`SELECT version, applied_at FROM knocknoc_schema_migrations`, [], 'shared')).toEqual(before);
    const conf = KnocknocConf.parse(await fs.readFile(node.path(PATHS.conf), 'utf8'));
    expect(conf.get('DatabaseOption')).toBe('3');
    expect(conf.get('ServerName')).toBe('web-2');
  });

  test('an empty database is not a Knocknoc database', async () => {
    const url = await external.createDatabase({ role: 'empty5', database: 'empty5' });
    const root = await newRoot();
    const result = await knocker(['install', '--root', root.dir, '--listen', '127.0.0.1:18762', '--database-option', '3', '--database-url', url]);
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toContain('✗ FAIL Knocknoc database: empty5 holds no Knocknoc schema');
    expect(result.stderr).toContain('for a new, empty database choose option 2');
  });

  test("refused by pg_hba from this node's address: the exposedb command to run on the primary", async () => {
    const url = await external.createDatabase({ role: 'hba6', database: 'hba6' });
    const root = await newRoot();
    // This node listens on 127.0.0.31, so it connects from there; the cluster only allows 127.0.0.1.
    const result = await knocker(['install', '--root', root.dir, '--listen', '127.0.0.31:8756', '--database-option', '3', '--database-url', url]);
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toContain(
      `✗ FAIL database 127.0.0.1:${external.port}/hba6: the database server at 127.0.0.1:${external.port} does not allow connections from this host (127.0.0.31)`,
    );
    expect(result.stderr).toContain("hint: allow this node's address on the primary: knocker exposedb --add 127.0.0.31/32");
    await expect(fs.access(root.path(PATHS.conf))).rejects.toThrow();
  });

  test('a wrong password, a refused port and a timeout each get their own advice', async () => {
    const url = await external.createDatabase({ role: 'pw7', database: 'pw7' });
    const root = await newRoot();
    const run = (databaseUrl: string) =>
      knocker(['install', '--root', root.dir, '--listen', '127.0.0.1:18763', '--database-option', '3', '--database-url', databaseUrl]);

    const wrong = await run(url.replace(/:[^:@]+@/, ':wrong-password@'));
    expect(wrong.exitCode).toBe(3);
    expect(wrong.stderr).toContain('password authentication failed for 127.0.0.1');
    expect(wrong.stderr).toContain('check the user and password in the connection string');

    const closedPort = await (await import('../../src/system/host.js')).freePort('127.0.0.1');
    const refused = await run(`postgres://pw7:x@127.0.0.1:${closedPort}/pw7`);
    expect(refused.exitCode).toBe(3);
    expect(refused.stderr).toContain(`connection refused by 127.0.0.1:${closedPort}: nothing is listening there`);
    expect(refused.stderr).toContain('listen_addresses');

    // Accepts TCP and never answers, like a host behind a firewall that drops replies.
    const silent = net.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const port = (silent.address() as net.AddressInfo).port;
      const timeout = await run(`postgres://pw7:x@127.0.0.1:${port}/pw7?connect_timeout=1`);
      expect(timeout.exitCode).toBe(3);
      expect(timeout.stderr).toContain(`no answer from 127.0.0.1:${port} in time`);
      expect(timeout.stderr).toContain('a firewall may be dropping the connection');
    } finally {
      silent.close();
    }
    // The password never appears in what was printed.
    expect(wrong.stdout + wrong.stderr).not.toContain('wrong-password');
  });
});
