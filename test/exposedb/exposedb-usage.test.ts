// knocker exposedb's help, misuse, and the hosts it must refuse to work on (no local cluster, a
// connection string that leads nowhere): each a clear message, the right exit code, nothing changed.
import { execa } from 'execa';
import fs from 'node:fs/promises';
import net from 'node:net';
import { describe, expect, test } from 'vitest';
import { EXPOSEDB_HELP } from '../../src/exposedb/help.js';
import { freePort } from '../../src/system/host.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { cleanEnv, KNOCKER, knocker } from '../helpers/knocker.js';
import { snapshotTree, useRoots } from '../helpers/roots.js';

const newRoot = useRoots();

async function rootWithConf(lines: string[]): Promise<Root> {
  const root = await newRoot();
  await fs.mkdir(root.path(PATHS.etcDir), { recursive: true });
  await fs.writeFile(root.path(PATHS.conf), `${lines.join('\n')}\n`, { mode: 0o600 });
  return root;
}

describe('help and misuse', () => {
  test("-h and --help print Knocknoc's exposedb help and exit 0", async () => {
    for (const flag of ['-h', '--help']) {
      const result = await knocker(['exposedb', flag]);
      expect(result.exitCode).toBe(0);
      expect(result.stdout).toBe(EXPOSEDB_HELP.trimEnd());
      expect(result.stderr).toBe('');
    }
    expect(EXPOSEDB_HELP).toContain('  sudo /opt/knocknoc/knocker/knocker exposedb [--init | --add <CIDR> | --remove <CIDR> | --list] [--conn URI]\n');
    expect((await knocker(['--help'])).stdout).toMatch(/exposedb \[options\] +share this primary's database with other\s+web nodes/);
  });

  test('bare, or with an unknown option or a missing value: the help on stderr, exit 2', async () => {
    const bare = await knocker(['exposedb']);
    expect(bare.exitCode).toBe(2);
    expect(bare.stdout).toBe('');
    expect(bare.stderr).toBe(EXPOSEDB_HELP.trimEnd());
    for (const [args, message] of [
      [['exposedb', '--bogus'], "error: unknown option '--bogus'"],
      [['exposedb', '--add'], "error: option '--add <CIDR>' argument missing"],
      [['exposedb', 'init'], "error: too many arguments for 'exposedb'"],
    ] as const) {
      const result = await knocker([...args]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr.startsWith(message)).toBe(true);
      expect(result.stderr.endsWith(EXPOSEDB_HELP.trimEnd())).toBe(true);
    }
  });
});

describe('refused before anything is touched (exit 3): not root, no local database to expose', () => {
  test("a change to the host's own PostgreSQL by a user who is not root", async () => {
    const result = await execa('runuser', ['-u', 'nobody', '--', process.execPath, KNOCKER, 'exposedb', '--add', '10.0.0.0/8'], {
      env: cleanEnv(),
      extendEnv: false,
      reject: false,
    });
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toBe(
      "error: knocker exposedb changes this host's PostgreSQL (its configuration, roles and pg_hba.conf): run it as root\nhint: sudo knocker exposedb --add 10.0.0.0/8",
    );
  });

  test('no knocknoc.conf and no --conn', async () => {
    const root = await newRoot();
    const result = await knocker(['exposedb', '--root', root.dir, '--init']);
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toContain(`error: no connection string: ${root.path(PATHS.conf)} does not exist`);
    expect(result.stderr).toContain(
      `hint: install Knocknoc on this host first (knocker install --root ${root.dir}), or give the connection string with --conn URI`,
    );
    expect(await fs.readdir(root.dir)).toEqual([]);
  });

  test('a web node whose database is elsewhere (option 3) has no local cluster', async () => {
    const port = await freePort('127.0.0.55');
    const root = await rootWithConf(['DatabaseOption = 3', `DatabaseURL = postgres://knocknoc_remote:secret@127.0.0.55:${port}/knocknoc`]);
    const before = await snapshotTree(root.path('/opt'));
    const result = await knocker(['exposedb', '--root', root.dir, '--init']);
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toContain(
      `error: no PostgreSQL cluster of this host serves 127.0.0.55:${port} (DatabaseURL in ${root.path(PATHS.conf)}): nothing listens there`,
    );
    expect(result.stderr).toContain('hint: this node uses a database elsewhere (DatabaseOption = 3): run knocker exposedb on the primary instead');
    expect(result.stdout).toBe('');
    expect(result.stderr).not.toContain('secret');
    expect(await snapshotTree(root.path('/opt'))).toEqual(before);
  });

  test('an unreachable --conn, one that reaches something else, and one on another host', async () => {
    const root = await newRoot();
    const closed = await freePort('127.0.0.55');
    const unreachable = await knocker([
      'exposedb',
      '--root',
      root.dir,
      '--add',
      '127.0.0.9/32',
      '--conn',
      `postgres://knocknoc:pw@127.0.0.55:${closed}/knocknoc`,
    ]);
    expect(unreachable.exitCode).toBe(3);
    expect(unreachable.stderr).toMatch(
      new RegExp(
        `^error: no PostgreSQL cluster of this host serves 127\\.0\\.0\\.55:${closed} \\(the --conn connection string\\): nothing listens there$`,
        'm',
      ),
    );

    const server = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.56', resolve));
    try {
      const port = (server.address() as net.AddressInfo).port;
      const other = await knocker(['exposedb', '--root', root.dir, '--list', '--conn', `postgres://knocknoc:pw@127.0.0.56:${port}/knocknoc`]);
      expect(other.exitCode).toBe(3);
      expect(other.stderr).toContain('something answers there, but not a cluster exposedb can administer here');
    } finally {
      server.close();
    }

    // Checked against this host's own addresses: nothing is sent to the other host.
    const elsewhere = await knocker(['exposedb', '--root', root.dir, '--init', '--conn', 'postgres://knocknoc:pw@192.0.2.10:5432/knocknoc']);
    expect(elsewhere.exitCode).toBe(3);
    expect(elsewhere.stderr).toContain('error: the database in the --conn connection string is on 192.0.2.10, not on this host');
    expect(elsewhere.stderr).toContain('hint: exposedb runs on the primary: the host whose own PostgreSQL holds the Knocknoc database');
    expect(await snapshotTree(root.path('/opt'))).toEqual(new Map());
  });
});
