// knocker exposedb on a primary: a sandbox root installed with option 1, whose private cluster
// other "hosts" (loopback sources 127.0.0.51–54) try to reach with the printed connection string.
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connect, withClient } from '../../src/postgres/connect.js';
import { EXPOSEDB_HELP } from '../../src/exposedb/help.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { appUrl, asNode, exposedState, hbaFile, installPrimary, rootAdmin, url } from '../helpers/exposedb.js';
import { knocker } from '../helpers/knocker.js';
import { destroyRoot, makeRoot } from '../helpers/roots.js';

let primary: Root;
beforeAll(async () => {
  primary = await makeRoot();
  await installPrimary(primary, '127.0.0.50');
});
afterAll(async () => {
  if (primary) await destroyRoot(primary);
});

const exposedb = (...args: string[]) => knocker(['exposedb', '--root', primary.dir, ...args]);

async function startedAt(): Promise<string> {
  return (await rootAdmin<{ t: string }>(primary, 'SELECT pg_postmaster_start_time()::text AS t'))[0]!.t;
}

describe('knocker exposedb on a primary', () => {
  test("--init lets nobody in yet; --add lets a node in with the app's full rights; --remove shuts it out and ends its session", async () => {
    const init = await exposedb('--init');
    expect(init.exitCode).toBe(0);
    // The connection string alone on stdout; progress and notes on stderr.
    const printed = init.stdout;
    expect(printed).toMatch(/^postgres:\/\/knocknoc_remote:[A-Za-z0-9_-]{32}@127\.0\.0\.50:\d+\/knocknoc\?sslmode=verify-full$/);
    expect(init.stderr).toMatch(/\[5\/5\] ✔ done/);
    expect(init.stderr).toContain(`No web node is allowed yet: allow each one with knocker exposedb --add <its IP>/32 --root ${primary.dir}.`);
    expect(init.stderr).not.toMatch(/warning: PostgreSQL has ssl off/);
    const remote = url(printed);
    expect(remote.port).toBe((await appUrl(primary)).port);

    // Kept for the next --init in a root-only file; never in the log.
    const urlFile = primary.path(PATHS.exposedbUrl);
    expect((await fs.stat(urlFile)).mode & 0o777).toBe(0o600);
    expect(await fs.readFile(urlFile, 'utf8')).toContain(`\n${printed}\n`);
    expect(await fs.readFile(primary.path(PATHS.exposedbLog), 'utf8')).not.toContain(remote.password!);
    // A sandbox root is a host of its own address: its cluster listens there already (where the other
    // "hosts" reach it), never on every address of the machine; no restart was needed.
    expect(init.stderr).not.toMatch(/listen on every address|restarted/);
    expect(
      await rootAdmin(primary, `SELECT setting, sourcefile LIKE '%postgresql.auto.conf' AS auto FROM pg_settings WHERE name = 'listen_addresses'`),
    ).toEqual([{ setting: '127.0.0.50', auto: false }]);

    await expect(withClient(remote, await asNode(primary, '127.0.0.51'), async () => 'in')).rejects.toMatchObject({ code: '28000' });

    const add = await exposedb('--add', '127.0.0.51/32');
    expect(add.exitCode).toBe(0);
    expect(add.stdout).toBe('Allowed 127.0.0.51/32: knocknoc_remote may log in to knocknoc from it (pg_hba.conf checked and reloaded, no restart).');
    // Over TLS only: the same node without it is refused.
    await expect(withClient({ ...remote, sslmode: 'disable' }, { sourceAddress: '127.0.0.51' }, async () => 'in')).rejects.toMatchObject({
      code: '28000',
      message: expect.stringContaining('no encryption'),
    });
    // Only that node: another source is refused, even with the password and a broader rule of the
    // operator's further down (the block's reject lines match first).
    const hba = await fs.readFile(hbaFile(primary), 'utf8');
    await fs.writeFile(hbaFile(primary), `${hba}host all all 127.0.0.0/8 scram-sha-256\n`);
    await rootAdmin(primary, 'SELECT pg_reload_conf()');
    await expect(withClient(remote, await asNode(primary, '127.0.0.52'), async () => 'in')).rejects.toMatchObject({
      code: '28000',
      message: expect.stringContaining('pg_hba.conf rejects connection for host "127.0.0.52", user "knocknoc_remote"'),
    });
    await fs.writeFile(hbaFile(primary), hba);
    await rootAdmin(primary, 'SELECT pg_reload_conf()');

    const node = await connect(remote, await asNode(primary, '127.0.0.51'));
    try {
      const who = (await node.query<{ current_user: string; session_user: string }>('SELECT current_user, session_user')).rows[0];
      expect(who).toEqual({ current_user: 'knocknoc', session_user: 'knocknoc_remote' });
      // Reads and writes Knocknoc's tables, and creates tables the app role owns and can use.
      expect((await node.query('SELECT key FROM knocknoc_settings')).rowCount).toBeGreaterThan(0);
      await node.query(`INSERT INTO knocknoc_settings (key, value) VALUES ('written-by', 'web-2')`);
      await node.query('CREATE TABLE made_by_web2 (id integer PRIMARY KEY)');
      await node.query('INSERT INTO made_by_web2 VALUES (1)');
      const app = await appUrl(primary);
      const seen = await withClient(app, { sourceAddress: '127.0.0.50' }, async (client) => {
        await client.query('ALTER TABLE made_by_web2 ADD COLUMN note text');
        await client.query(`UPDATE made_by_web2 SET note = 'from the app role'`);
        return {
          owner: (await client.query<{ o: string }>(`SELECT tableowner AS o FROM pg_tables WHERE tablename = 'made_by_web2'`)).rows[0]!.o,
          written: (await client.query<{ value: string }>(`SELECT value FROM knocknoc_settings WHERE key = 'written-by'`)).rows[0]!.value,
        };
      });
      expect(seen).toEqual({ owner: 'knocknoc', written: 'web-2' });

      const remove = await exposedb('--remove', '127.0.0.51/32');
      expect(remove.exitCode).toBe(0);
      expect(remove.stdout).toMatch(/^Removed 127\.0\.0\.51\/32: knocknoc_remote can no longer log in from it .*; ended 1 open session from it\.$/m);
      // The open session is gone, and a new one is refused.
      await expect(node.query('SELECT 1')).rejects.toThrow();
    } finally {
      await node.end().catch(() => {});
    }
    await expect(withClient(remote, await asNode(primary, '127.0.0.51'), async () => 'in')).rejects.toMatchObject({ code: '28000' });
  });

  test('--init again changes nothing: the same string, files and settings, and no restart', async () => {
    const first = await exposedb('--init');
    expect(first.exitCode).toBe(0);
    const before = await exposedState(primary);
    const started = await startedAt();

    const again = await exposedb('--init');
    expect(again.exitCode).toBe(0);
    expect(again.stderr).toMatch(/^Nothing to change: database knocknoc of the private cluster in .* is already exposed\.$/m);
    expect(again.stdout).toBe(first.stdout);
    expect(await exposedState(primary)).toEqual(before);
    expect(await startedAt()).toBe(started);
  });

  test('the kept string is what --init prints: a password changed behind its back is set back; without the file, a new one', async () => {
    const first = await exposedb('--init');
    await rootAdmin(primary, `ALTER ROLE knocknoc_remote PASSWORD 'changed by hand'`);
    const again = await exposedb('--init');
    expect(again.stderr).toContain('PostgreSQL: give role knocknoc_remote the password of the saved connection string, login only');
    expect(again.stdout).toBe(first.stdout);
    await exposedb('--add', '127.0.0.53/32');
    try {
      expect(await withClient(url(again.stdout), await asNode(primary, '127.0.0.53'), async () => 'in')).toBe('in');
      await fs.rm(primary.path(PATHS.exposedbUrl));
      const fresh = await exposedb('--init');
      expect(fresh.exitCode).toBe(0);
      expect(fresh.stdout).not.toBe(first.stdout);
      expect(url(fresh.stdout)).toMatchObject({ user: 'knocknoc_remote', host: '127.0.0.50', database: 'knocknoc' });
      expect(await withClient(url(fresh.stdout), await asNode(primary, '127.0.0.53'), async () => 'in')).toBe('in');
      await expect(withClient(url(first.stdout), await asNode(primary, '127.0.0.53'), async () => 'in')).rejects.toMatchObject({ code: '28P01' });
    } finally {
      await exposedb('--remove', '127.0.0.53/32');
    }
  });

  test('--add and --remove: CIDRs normalised, the same state again is "unchanged", no restart', async () => {
    await exposedb('--init');
    const started = await startedAt();
    const add = await exposedb('--add', '10.1.2.3/24');
    expect(add.exitCode).toBe(0);
    expect(add.stdout).toMatch(/^Allowed 10\.1\.2\.0\/24 \(normalised from 10\.1\.2\.3\/24\): /);
    const hba = await fs.readFile(hbaFile(primary), 'utf8');
    expect(hba).toMatch(/^hostssl {2}knocknoc {2}knocknoc_remote {2}10\.1\.2\.0\/24 {2}scram-sha-256$/m);
    expect(hba).not.toMatch(/trust/);
    // The block comes before every other rule, and ends with the role's reject lines.
    const block = hba.slice(hba.indexOf('# BEGIN exposedb managed block (do not edit by hand)'), hba.indexOf('# END exposedb managed block'));
    expect(hba.indexOf('# BEGIN exposedb')).toBeLessThan(hba.search(/^(local|host)/m));
    expect(block.trimEnd().split('\n').slice(-2)).toEqual(['host     all  knocknoc_remote  0.0.0.0/0  reject', 'host     all  knocknoc_remote  ::/0  reject']);
    // The previous file is kept beside it.
    expect(await fs.readFile(`${hbaFile(primary)}.bak`, 'utf8')).not.toContain('10.1.2.0/24');

    const before = await exposedState(primary);
    const same = await exposedb('--add', '10.1.2.0/24');
    expect(same.exitCode).toBe(0);
    expect(same.stdout).toBe('Unchanged: 10.1.2.0/24 is already allowed.');
    expect(await exposedState(primary)).toEqual(before);

    expect((await exposedb('--remove', '10.1.2.9/32')).stdout).toBe(
      'Unchanged: 10.1.2.9/32 is not on the allow-list (it lies within 10.1.2.0/24, which stays allowed).',
    );
    expect((await exposedb('--remove', '10.1.2.77/24')).stdout).toMatch(
      /^Removed 10\.1\.2\.0\/24 \(normalised from 10\.1\.2\.77\/24\): .*ended 0 open sessions from it\.$/,
    );
    const gone = await exposedb('--remove', '10.1.2.0/24');
    expect(gone.exitCode).toBe(0);
    expect(gone.stdout).toBe('Unchanged: 10.1.2.0/24 is not on the allow-list.');
    expect(await startedAt()).toBe(started);
  });

  test('--list: one CIDR a line; warns about hand edits and about errors in the file', async () => {
    await exposedb('--init');
    await exposedb('--add', '2001:DB8::1/32');
    await exposedb('--add', '127.0.0.53');
    const list = await exposedb('--list');
    expect(list.exitCode).toBe(0);
    expect(list.stdout).toBe('127.0.0.53/32\n2001:db8::/32');
    expect(list.stderr).toBe('');

    const original = await fs.readFile(hbaFile(primary), 'utf8');
    try {
      const edited = original
        .replace('# END exposedb managed block', 'host knocknoc all 192.0.2.0/24 trust\n# END exposedb managed block')
        .concat('host all all 10.0.0.0/33 scram-sha-256\n');
      await fs.writeFile(hbaFile(primary), edited);
      const warned = await exposedb('--list');
      expect(warned.exitCode).toBe(0);
      expect(warned.stdout).toBe('127.0.0.53/32\n2001:db8::/32');
      expect(warned.stderr).toMatch(/warning: the exposedb block in .*pg_hba\.conf was edited by hand/);
      expect(warned.stderr).toContain('it holds rules exposedb did not write (not listed above):\n  host knocknoc all 192.0.2.0/24 trust\n');
      expect(warned.stderr).toMatch(
        /warning: .*pg_hba\.conf has errors, so PostgreSQL keeps its previous rules until they are fixed:\n {2}line \d+: invalid CIDR mask in address "10\.0\.0\.0\/33"/,
      );
      // A block holding someone's own rule is never rewritten (the rule would be lost).
      const refused = await exposedb('--add', '127.0.0.54/32');
      expect(refused.exitCode).toBe(3);
      expect(refused.stderr).toContain('holds rules exposedb did not write: host knocknoc all 192.0.2.0/24 trust');
      expect(await fs.readFile(hbaFile(primary), 'utf8')).toBe(edited);
    } finally {
      await fs.writeFile(hbaFile(primary), original);
    }
    await exposedb('--remove', '2001:db8::/32');
    await exposedb('--remove', '127.0.0.53/32');
  });

  test('a pg_hba.conf that PostgreSQL rejects is put back (exit 4) and the server keeps its rules', async () => {
    const init = await exposedb('--init');
    const remote = url(init.stdout);
    expect((await exposedb('--add', '127.0.0.53/32')).exitCode).toBe(0);
    const original = await fs.readFile(hbaFile(primary), 'utf8');
    // Someone's broken line further down: the file as a whole does not pass PostgreSQL's check.
    const broken = `${original}host all all 10.0.0.0/33 scram-sha-256\n`;
    await fs.writeFile(hbaFile(primary), broken);
    try {
      const result = await exposedb('--add', '127.0.0.54/32');
      expect(result.exitCode).toBe(4);
      expect(result.stderr).toMatch(
        /error: pg_hba\.conf: allow knocknoc_remote from 127\.0\.0\.54\/32 failed: PostgreSQL rejects the new .*pg_hba\.conf \(line \d+: invalid CIDR mask in address "10\.0\.0\.0\/33"\); the previous file was put back and the server keeps its current rules/,
      );
      expect(result.stderr).toContain('hint: every change made before the failure was rolled back');
      expect(await fs.readFile(hbaFile(primary), 'utf8')).toBe(broken);
      await expect(withClient(remote, await asNode(primary, '127.0.0.54'), async () => 'in')).rejects.toMatchObject({ code: '28000' });
      expect(await withClient(remote, await asNode(primary, '127.0.0.53'), async () => 'in')).toBe('in');
    } finally {
      await fs.writeFile(hbaFile(primary), original);
      await exposedb('--remove', '127.0.0.53/32');
    }
  });

  test('bad input: a clear message, exit 2, and nothing changed', async () => {
    await exposedb('--init');
    const before = await exposedState(primary);
    const cases: Array<[string[], RegExp]> = [
      [['--add', 'foo'], /^error: --add: "foo": the address is not an IPv4 or IPv6 address; nothing was changed$/m],
      [['--add', '10.0.0.0/33'], /^error: --add: "10\.0\.0\.0\/33": the prefix length must be 0–32; nothing was changed$/m],
      [
        ['--add', '0.0.0.0/0'],
        /^error: --add: "0\.0\.0\.0\/0" matches every address: that would let the role in from anywhere; allow each web node, or its subnet, instead; nothing was changed$/m,
      ],
      [['--remove', '::ffff:10.0.0.1/128'], /IPv4-mapped IPv6 address/],
      [['--host', 'not a host', '--init'], /^error: --host: "not a host" is neither an IP address nor a host name; nothing was changed$/m],
      [['--conn', 'mysql://x', '--list'], /^error: --conn: a connection string starts with postgres:\/\/ or postgresql:\/\/; nothing was changed$/m],
    ];
    for (const [args, message] of cases) {
      const result = await exposedb(...args);
      expect(result.exitCode, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toMatch(message);
      expect(result.stdout).toBe('');
    }
    const misuse: Array<[string[], string]> = [
      [['--init', '--add', '127.0.0.54/32'], "error: option '--init' cannot be used with option '--add <CIDR>'"],
      [['--add', '127.0.0.54/32', '--remove', '127.0.0.54/32'], "error: option '--add <CIDR>' cannot be used with option '--remove <CIDR>'"],
      [['--add', '127.0.0.54/32', '--add', '127.0.0.55/32'], '--add may be given only once'],
      [['--list', '--host', '127.0.0.50'], 'error: --host goes with --init'],
      [
        ['--conn', 'postgres://u:p@127.0.0.50/db'],
        'error: choose what to do: --init, --add <CIDR>, --remove <CIDR>, --list, --sync, --renew-cert, --add-standby <ADDR>, --add-monitor <ADDR>, --invite <ADDR/32>, --invites or --revoke <ID>',
      ],
      [['--renew-cert', '--add', '127.0.0.54/32'], "error: option '--add <CIDR>' cannot be used with option '--renew-cert'"],
      [['--revoke', 'abc', '--add-monitor', '127.0.0.9'], "error: option '--revoke <ID>' cannot be used with option '--add-monitor <ADDR>'"],
    ];
    for (const [args, message] of misuse) {
      const result = await exposedb(...args);
      expect(result.exitCode, args.join(' ')).toBe(2);
      // The message, then the help text.
      expect(result.stderr, args.join(' ')).toContain(message);
      expect(result.stderr.endsWith(EXPOSEDB_HELP.trimEnd())).toBe(true);
    }
    expect(await exposedState(primary)).toEqual(before);
  });

  test('a run holding the lock stops another (exit 3), which changes nothing', async () => {
    await exposedb('--init');
    const before = await exposedState(primary);
    await fs.mkdir(primary.path(PATHS.runDir), { recursive: true });
    await fs.writeFile(primary.path(PATHS.installLock), `${process.pid} knocker install\n`);
    try {
      const locked = await exposedb('--add', '127.0.0.54/32');
      expect(locked.exitCode).toBe(3);
      expect(locked.stderr).toContain(`error: another knocker install is running (pid ${process.pid}); wait for it to finish`);
      expect(await exposedState(primary)).toEqual(before);
    } finally {
      await fs.rm(primary.path(PATHS.installLock), { force: true });
    }
  });
});
