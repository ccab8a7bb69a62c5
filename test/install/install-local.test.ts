// Database option 1 under --root: a real private PostgreSQL cluster in the root, driven through
// bin/knocker as a script would run it.
import fs from 'node:fs/promises';
import { describe, expect, test } from 'vitest';
import { KnocknocConf } from '../../src/config/knocknoc-conf.js';
import { withClient } from '../../src/postgres/connect.js';
import { parseDatabaseUrl, type DatabaseUrl } from '../../src/postgres/url.js';
import { databaseSchemaVersion } from '../../src/schema/index.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { knocker } from '../helpers/knocker.js';
import { snapshotTree, useRoots } from '../helpers/roots.js';

const newRoot = useRoots();

async function readConf(root: Root): Promise<KnocknocConf> {
  return KnocknocConf.parse(await fs.readFile(root.path(PATHS.conf), 'utf8'));
}

function url(text: string | undefined): DatabaseUrl {
  const parsed = parseDatabaseUrl(text ?? '');
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

describe('option 1 on a sandbox root', () => {
  test('installs a private cluster, role, database and schema; a re-run changes nothing', async () => {
    const root = await newRoot();
    const first = await knocker(['install', '--root', root.dir, '--listen', '127.0.0.7:8756', '--server-name', 'web-1']);
    expect(first.stdout).toBe('');
    expect(first.exitCode).toBe(0);
    expect(first.stderr).toMatch(/Installed in/);
    expect(first.stderr).not.toMatch(/postgres:\/\/knocknoc:[^*]/);

    const confFile = root.path(PATHS.conf);
    expect((await fs.stat(confFile)).mode & 0o777).toBe(0o600);
    const conf = await readConf(root);
    expect(conf.get('Listen')).toBe('127.0.0.7:8756');
    expect(conf.get('DatabaseOption')).toBe('1');
    expect(conf.get('ServerName')).toBe('web-1');
    const db = url(conf.get('DatabaseURL'));
    // The private cluster is this "host's" own: it listens on the node's address only.
    expect(db).toMatchObject({ host: '127.0.0.7', user: 'knocknoc', database: 'knocknoc' });
    expect(db.password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const seen = await withClient(db, { sourceAddress: '127.0.0.7' }, async (client) => ({
      version: await databaseSchemaVersion(client),
      owner: (await client.query<{ owner: string }>(`SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = 'knocknoc'`)).rows[0]?.owner,
      listen: (await client.query<{ listen: string }>(`SELECT current_setting('listen_addresses') AS listen`)).rows[0]?.listen,
    }));
    expect(seen).toMatchObject({ version: 2, owner: 'knocknoc', listen: '127.0.0.7' });
    // Another "host" cannot log in, even with the password.
    await expect(withClient(db, { sourceAddress: '127.0.0.8' }, async () => 'in')).rejects.toMatchObject({ code: '28000' });

    // The log has the run, never the password.
    const log = await fs.readFile(root.path(PATHS.installLog), 'utf8');
    expect(log).toMatch(/step 5 done/);
    expect(log).not.toContain(db.password!);

    const before = await snapshotTree(root.path('/opt'));
    const again = await knocker(['install', '--root', root.dir, '--listen', '127.0.0.7:8756', '--server-name', 'web-1']);
    expect(again.exitCode).toBe(0);
    expect(again.stderr).toMatch(/Nothing to change: this host already matches these answers/);
    expect(await snapshotTree(root.path('/opt'))).toEqual(before);
    // The existing conf's values are the defaults, so a bare re-run is a no-op too.
    const bare = await knocker(['install', '--root', root.dir]);
    expect(bare.stderr).toMatch(/Nothing to change/);
  });

  test('--dry-run --json plans everything and touches nothing', async () => {
    const root = await newRoot();
    const result = await knocker(['install', '--root', root.dir, '--dry-run', '--json', '--listen', '127.0.0.9:8756']);
    expect(result.exitCode).toBe(0);
    const report = JSON.parse(result.stdout) as { plan: { changes: number; steps: Array<{ kind: string; title: string }> }; preflight: Array<{ ok: boolean }> };
    expect(report.preflight.every((c) => c.ok)).toBe(true);
    expect(report.plan.steps.map((s) => s.kind)).toEqual(['file', 'database', 'service', 'database', 'database', 'service']);
    expect(report.plan.changes).toBe(6);
    expect(await fs.readdir(root.dir)).toEqual([]);
  });

  test('a failure mid-apply rolls back every step (exit 4) and says what failed', async () => {
    const root = await newRoot();
    // The server's log file is a folder: starting the server, the last step, fails after
    // knocknoc.conf, the cluster, role, database and schema were made.
    await fs.mkdir(root.path(PATHS.serverLog), { recursive: true });
    const result = await knocker(['install', '--root', root.dir, '--listen', '127.0.0.10:8756']);
    expect(result.exitCode).toBe(4);
    expect(result.stderr).toMatch(/error: Knocknoc server: start it .* failed: /);
    expect(result.stderr).toMatch(/every change made before the failure was rolled back/);
    expect(result.stderr).toMatch(/↺ rolled back: PostgreSQL 15: create a private cluster/);
    expect(result.stderr).toMatch(/↺ rolled back: Create .*knocknoc\.conf/);
    // Nothing remains: no cluster folder, no socket folder, no conf.
    await expect(fs.access(root.path(PATHS.pgData))).rejects.toThrow();
    await expect(fs.access(root.path(PATHS.pgSocketDir))).rejects.toThrow();
    await expect(fs.access(root.path(PATHS.conf))).rejects.toThrow();
    expect(await fs.readFile(root.path(PATHS.installLog), 'utf8')).toMatch(/undo 2: PostgreSQL 15: create a private cluster/);
  });

  test('a second run waits for nobody: the lock of a live run stops it (exit 3), a stale lock is taken over', async () => {
    const root = await newRoot();
    await fs.mkdir(root.path(PATHS.runDir), { recursive: true });
    await fs.writeFile(root.path(PATHS.installLock), `${process.pid}\n`);
    const locked = await knocker(['install', '--root', root.dir, '--listen', '127.0.0.11:8756']);
    expect(locked.exitCode).toBe(3);
    expect(locked.stderr).toMatch(new RegExp(`another knocker install is running \\(pid ${process.pid}\\)`));
    expect(await fs.readdir(root.path('/var/lib')).catch(() => [])).toEqual([]);

    await fs.writeFile(root.path(PATHS.installLock), '999999999\n');
    const stale = await knocker(['install', '--root', root.dir, '--listen', '127.0.0.11:8756', '--dry-run']);
    expect(stale.exitCode).toBe(0);
  });

  test('preflight: a taken listen port stops the run before any change (exit 3)', async () => {
    const root = await newRoot();
    const net = await import('node:net');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.12', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const result = await knocker(['install', '--root', root.dir, '--listen', `127.0.0.12:${port}`]);
      expect(result.exitCode).toBe(3);
      expect(result.stderr).toMatch(new RegExp(`✗ FAIL listen address 127\\.0\\.0\\.12:${port}: port ${port} is already in use`));
      expect(result.stderr).toMatch(/hint: choose another port/);
      await expect(fs.access(root.path(PATHS.pgData))).rejects.toThrow();
      await expect(fs.access(root.path(PATHS.conf))).rejects.toThrow();
    } finally {
      server.close();
    }
  });
});
