import { expect, test } from 'vitest';
import { parseDatabaseUrl } from '../../src/postgres/url.js';
import type { Root } from '../../src/system/root.js';
import { installPrimary } from '../helpers/exposedb.js';
import { knocker } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';

const A = '127.0.0.176';
const B = '127.0.0.177';
const newRoot = useRoots();

interface StatusJson {
  exitCode: number;
  database: { host: string; role: string; limited: boolean; standbys: Array<{ name: string; state: string | null; lagBytes: number | null }> };
  databaseHosts: Array<{ host: string; role: string }> | null;
}

async function statusOf(root: Root): Promise<StatusJson> {
  const result = await knocker(['status', '--json', '--root', root.dir]);
  expect(result.stderr).toBe('');
  return JSON.parse(result.stdout) as StatusJson;
}

test("a pair knocker made: the standby's state and lag without pg_monitor for the nodes' login, on the primary's host", async () => {
  const [rootA, rootB] = [await newRoot(), await newRoot()];
  await installPrimary(rootA, A);
  const init = await knocker(['exposedb', '--root', rootA.dir, '--init']);
  expect(init.exitCode, init.stderr).toBe(0);
  expect((await knocker(['exposedb', '--root', rootA.dir, '--add', `${B}/32`])).exitCode).toBe(0);
  const add = await knocker(['exposedb', '--root', rootA.dir, '--add-standby', B]);
  expect(add.exitCode, add.stderr).toBe(0);
  const standby = await knocker(['standby', '--root', rootB.dir, 'init', '--bundle', add.stdout.trim()], { timeoutMs: 180_000 });
  expect(standby.exitCode, standby.stderr).toBe(0);
  const nodesUrl = standby.stdout.trim();
  const parsed = parseDatabaseUrl(nodesUrl);
  if (!parsed.ok) throw new Error(parsed.error);
  const _port = parsed.value.hosts[0]!.port;
  const slot = `knocker_${B.replace(/\./g, '_')}`;

  // On the primary's host, with its own node's single-host DatabaseURL.
  const onPrimary = await statusOf(rootA);
  expect(onPrimary.database).toMatchObject({ role: 'primary', limited: false });
  expect(onPrimary.database.standbys).toEqual([expect.objectContaining({ name: slot, state: 'streaming', lagBytes: expect.any(Number) })]);
  const text = await knocker(['status', '--once', '--root', rootA.dir]);
  expect(text.stdout).not.toContain('needs pg_monitor');
  // (Its client address is 127.0.0.1: on one machine libpq leaves from it whatever 127.0.0.x it goes to.)
  expect(text.stdout).toMatch(new RegExp(`standby ${slot} \\(\\S+\\): streaming, async, lag \\d`));
});
