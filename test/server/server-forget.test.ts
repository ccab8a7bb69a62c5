// Retiring a node: `knocker server list` shows the registry, `knocker server forget` refuses an
// online server (unless --force), takes a stopped one out of the registry and out of this host's
// HAProxy, and `knocker status` says how, in the same context (--root).
import fs from 'node:fs/promises';
import { expect, test } from 'vitest';
import { freePort } from '../../src/system/host.js';
import { PATHS } from '../../src/system/root.js';
import { Haproxy } from '../helpers/haproxy.js';
import { knocker } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';
import { sharedDatabase, startServer } from '../helpers/server.js';

const db = sharedDatabase({ allow: ['127.0.0.2', '127.0.0.3'] });
const newRoot = useRoots();

async function names(): Promise<string[]> {
  return (await db.cluster.admin<{ name: string }>('SELECT name FROM servers ORDER BY name', [], 'knocknoc')).map((r) => r.name);
}

test('a stopped server is retired from the registry and from HAProxy; an online one is refused without --force', async () => {
  const root = await newRoot();
  const listen = `127.0.0.2:${await freePort('127.0.0.2')}`;
  const gone = await startServer({ host: '127.0.0.3', databaseUrl: db.url, name: 'web-gone' });
  await gone.waitForStatus(200);
  const install = await knocker(['install', '--root', root.dir, '--listen', listen, '--database-option', '3', '--server-name', 'web-a'], {
    env: { KNOCKNOC_DATABASE_URL: db.url },
  });
  expect(install.exitCode, install.stderr).toBe(0);
  const bind = `127.0.0.2:${await freePort('127.0.0.2')}`;
  const setup = await knocker(['haproxy', 'setup', '--root', root.dir, `web-a=${listen}`, `web-gone=127.0.0.3:${gone.port}`, '--bind', bind]);
  expect(setup.exitCode, setup.stderr).toBe(0);
  const haproxy = new Haproxy(root, `http://${bind}`);
  await haproxy.waitFor('web-gone', 'UP');

  const listed = await knocker(['server', 'list', '--root', root.dir]);
  expect(listed.exitCode).toBe(0);
  expect(listed.stdout).toMatch(/^NAME\s+LISTEN\s+STATE\s+VERSION\s+LAST SEEN$/m);
  expect(listed.stdout).toMatch(new RegExp(`^web-gone\\s+127\\.0\\.0\\.3:${gone.port}\\s+online\\s+1\\.0\\.0\\s+\\d+s ago$`, 'm'));

  const online = await knocker(['server', 'forget', 'web-gone', '--root', root.dir]);
  expect(online.exitCode).toBe(3);
  expect(online.stderr).toContain(`error: "web-gone" is online (at 127.0.0.3:${gone.port}`);
  expect(online.stderr).toContain(`hint: to retire it anyway: knocker server forget web-gone --force --root ${root.dir}`);
  expect(await names()).toEqual(['web-a', 'web-gone']);

  gone.child.kill('SIGTERM');
  expect(await gone.exited).toBe(0);
  const stopped = await knocker(['server', 'list', '--root', root.dir, '--json']);
  expect(JSON.parse(stopped.stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'web-gone', state: 'stopped' })]));
  const plainList = await knocker(['server', 'list', '--root', root.dir]);
  expect(plainList.stderr).toContain(`A server gone for good is retired with: knocker server forget web-gone --root ${root.dir}`);

  const status = await knocker(['status', '--once', '--root', root.dir]);
  expect(status.exitCode).toBe(1);
  expect(status.stdout).toContain(`gone for good? retire it: knocker server forget web-gone --root ${root.dir}`);

  const dry = await knocker(['server', 'forget', 'web-gone', '--root', root.dir, '--dry-run']);
  expect(dry.exitCode).toBe(0);
  expect(dry.stdout).toMatch(/\+ \[database\] Take "web-gone" out of the servers registry of .*\n(.*\n)* {2}\+ \[file\] HAProxy: remove node web-gone from/);
  expect(dry.stdout).toContain('Dry run: nothing was changed.');
  expect(await names()).toEqual(['web-a', 'web-gone']);

  // A row that cannot be deleted: the plan stops there (exit 4), HAProxy untouched.
  await db.cluster.admin(
    `CREATE FUNCTION refuse_forget() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'kept by a test'; END $$`,
    [],
    'knocknoc',
  );
  await db.cluster.admin('CREATE TRIGGER refuse_forget BEFORE DELETE ON servers FOR EACH ROW EXECUTE FUNCTION refuse_forget()', [], 'knocknoc');
  const refused = await knocker(['server', 'forget', 'web-gone', '--root', root.dir]);
  expect(refused.exitCode, refused.stderr).toBe(4);
  expect(refused.stderr).toContain('kept by a test');
  expect(refused.stderr).toContain('every change made before the failure was rolled back');
  expect(await fs.readFile(root.path(PATHS.haproxyConf), 'utf8')).toContain('web-gone');
  expect(await names()).toEqual(['web-a', 'web-gone']);
  await db.cluster.admin('DROP TRIGGER refuse_forget ON servers', [], 'knocknoc');
  await db.cluster.admin('DROP FUNCTION refuse_forget()', [], 'knocknoc');

  const forget = await knocker(['server', 'forget', 'web-gone', '--root', root.dir]);
  expect(forget.exitCode, forget.stderr).toBe(0);
  // Nothing a script would capture: the progress and the outcome on stderr.
  expect(forget.stdout).toBe('');
  expect(forget.stderr).toMatch(/^Removed "web-gone" from the registry of .* and from this host's HAProxy\.$/m);
  expect(forget.stderr).toContain('HAProxy: remove node web-gone from');
  expect(await names()).toEqual(['web-a']);
  expect(await fs.readFile(root.path(PATHS.haproxyConf), 'utf8')).not.toContain('web-gone');
  expect(await fs.readFile(root.path(PATHS.opsLog), 'utf8')).toMatch(/server forget web-gone: deleted from the registry of .* \(was 127\.0\.0\.3:\d+, stopped/);
  expect((await knocker(['status', '--once', '--root', root.dir])).stdout).not.toContain('web-gone');

  const unknown = await knocker(['server', 'forget', 'web-zzz', '--root', root.dir]);
  expect(unknown.exitCode).toBe(2);
  expect(unknown.stderr).toContain('hint: the servers are: web-a');
});
