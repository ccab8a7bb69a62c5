// The one-line join with a standby (issue 26): a primary (root A, 127.0.26.1) with a streaming
// standby (root B, 127.0.26.2) invites a node (127.0.26.4) after the standby was made, so B's
// pg_hba.conf (a clone of A's from before) does not have it; the invitation itself takes the
// node's entry to B (knocker.allow_list, replicated, then knocker.apply_allow_list() there). The
// node joins with the multi-host string and serves; a switchover under load (a writer recording
// every acknowledged write, a sampler checking never two writable hosts) makes B the primary, and
// the node serves from it and writes there: its entry was on both. Then the list changed on the new
// primary reaches the old one the same way, and a standby's file that lags (edited by hand) is
// named by --list and brought back by --sync; server forget takes the node out on both; and a
// standby promoted after its primary was killed writes the list into its lagging file first.
import fs from 'node:fs/promises';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { KnocknocConf } from '../../src/config/knocknoc-conf.js';
import { parseDatabaseUrl } from '../../src/postgres/url.js';
import { freePort } from '../../src/system/host.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { finish, makePair, run, standby, startSampler, waitRole, writerFor, type Pair } from '../helpers/failclosed.js';
import { knocker } from '../helpers/knocker.js';
import { destroyRoot, makeRoot } from '../helpers/roots.js';
import { request, waitFor } from '../helpers/server.js';
import { killPostmaster, sql } from '../helpers/standby.js';

const A = '127.0.26.1';
const B = '127.0.26.2';
const CLIENT = '127.0.26.3';
const NODE = '127.0.26.4';
let pair: Pair;
let node: Root | undefined;

const hba = (root: Root) => fs.readFile(root.path(`${PATHS.pgData}/pg_hba.conf`), 'utf8');
const allowLine = (address: string) => new RegExp(`^hostssl {2}knocknoc {2}knocknoc_remote {2}${address.replace(/\./g, '\\.')}/32 {2}scram-sha-256$`, 'm');

async function nodeStatus(listen: string): Promise<{ http: number; databaseHost: string | null } | undefined> {
  try {
    const reply = await request(`http://${listen}/_status`, { timeoutMs: 10_000 });
    return { http: reply.status, databaseHost: (JSON.parse(reply.body) as { databaseHost: string | null }).databaseHost };
  } catch {
    return undefined;
  }
}

beforeAll(async () => {
  pair = await makePair(A, B, CLIENT);
}, 180_000);

afterAll(async () => {
  if (node) {
    await knocker(['service', 'stop', 'server', '--root', node.dir]);
    await destroyRoot(node);
  }
  await pair?.destroy();
});

test('a node invited while the primary has a standby is allowed on both: it joins, and after a switchover serves from and writes to the new primary; no acknowledged write lost', async () => {
  // B was cloned before the invitation: its pg_hba.conf knows nothing of the node yet.
  expect(await hba(pair.rootB)).not.toMatch(allowLine(NODE));
  const invite = await run(['exposedb', '--root', pair.rootA.dir, '--invite', `${NODE}/32`, '--name', 'web-26']);
  expect(invite.exitCode, invite.stderr).toBe(0);
  expect(invite.stderr).toContain(`the standby ${B}: pg_hba.conf allow-list brought up to date (checked by PostgreSQL, reloaded)`);
  expect(invite.stderr).toContain(`This primary has a standby (${B}:${pair.port})`);
  expect(invite.stderr).not.toContain('warning');
  const token = invite.stdout.trim();
  // Both files hold the node's entry, and the same block.
  const block = (text: string) => text.slice(text.indexOf('# BEGIN exposedb'), text.indexOf('# END exposedb'));
  expect(await hba(pair.rootA)).toMatch(allowLine(NODE));
  expect(await hba(pair.rootB)).toMatch(allowLine(NODE));
  expect(block(await hba(pair.rootB))).toBe(block(await hba(pair.rootA)));
  expect(await fs.readFile(pair.rootB.path(`${PATHS.pgData}/pg_hba.conf.bak`), 'utf8')).not.toMatch(allowLine(NODE));

  node = await makeRoot();
  const listen = `${NODE}:${await freePort(NODE)}`;
  const joined = await knocker(['install', '--root', node.dir, '--listen', listen, '--join', '-'], { input: `${token}\n`, timeoutMs: 120_000 });
  expect(joined.exitCode, joined.stderr).toBe(0);
  const conf = KnocknocConf.parse(await fs.readFile(node.path(PATHS.conf), 'utf8'));
  const parsed = parseDatabaseUrl(conf.get('DatabaseURL') ?? '');
  expect(parsed.ok).toBe(true);
  if (!parsed.ok) return;
  // The multi-host string: the primary first, then the standby; read-write; verify-full with the node's CA.
  expect(parsed.value.hosts).toEqual([
    { host: A, port: pair.port },
    { host: B, port: pair.port },
  ]);
  expect(parsed.value).toMatchObject({
    user: 'knocknoc_remote',
    targetSessionAttrs: 'read-write',
    sslmode: 'verify-full',
    sslrootcert: node.path(PATHS.databaseCa),
  });
  await waitFor('the node serving from A', async () => {
    const s = await nodeStatus(listen);
    return s?.http === 200 && s.databaseHost === `${A}:${pair.port}` ? true : undefined;
  });

  // B lags, as a standby down at the invitation would: the node's line gone from its file, reloaded.
  const bFile = pair.rootB.path(`${PATHS.pgData}/pg_hba.conf`);
  await fs.writeFile(bFile, (await hba(pair.rootB)).replace(allowLine(NODE), ''));
  await sql(pair.rootB, 'SELECT pg_reload_conf()', [], 'postgres');
  const lagging = await run(['exposedb', '--root', pair.rootA.dir, '--list']);
  expect(lagging.stderr).toContain(`warning: the allow-list in the pg_hba.conf of ${B} lags the primary's`);

  // The switchover brings B's file up to date before B takes writes.
  const writer = writerFor(pair, 1);
  const sampler = startSampler(pair);
  await waitFor('writes before the switchover', () => (writer.acked.length > 30 ? true : undefined));
  const over = await standby(pair.rootA, 'switchover');
  expect(over.exitCode, over.stderr).toBe(0);
  expect(over.stderr).toContain(`${B}: the nodes' allow-list (replicated) into its own pg_hba.conf, before it takes writes`);
  expect(over.stderr).toContain('pg_hba.conf allow-list brought up to date (checked by PostgreSQL, reloaded)');
  expect(await hba(pair.rootB)).toMatch(allowLine(NODE));
  await waitRole(pair.rootA, 'standby');
  const [{ t: after }] = (await sql<{ t: string }>(pair.rootB, 'SELECT now()::text AS t')) as [{ t: string }];
  await waitFor(
    'the node serving from B',
    async () => {
      const s = await nodeStatus(listen);
      return s?.http === 200 && s.databaseHost === `${B}:${pair.port}` ? true : undefined;
    },
    90_000,
  );
  // Its writes land on the new primary: its heartbeat there is newer than the switchover.
  await waitFor('the node heartbeating on B', async () => {
    const rows = await sql<{ n: number }>(pair.rootB, `SELECT count(*)::int AS n FROM servers WHERE name = 'web-26' AND last_seen > $1::timestamptz`, [after]);
    return rows[0]!.n === 1 ? true : undefined;
  });
  await finish(pair.rootB, writer, sampler);
}, 300_000);

test('the list changed on the new primary reaches the old one; a lagging file is named by --list and brought back by --sync', async () => {
  const conn = (host: string) => `postgres://knocknoc@${host}:${pair.port}/knocknoc`;
  const added = await run(['exposedb', '--root', pair.rootB.dir, '--conn', conn(B), '--add', '127.0.26.9/32']);
  expect(added.exitCode, added.stderr).toBe(0);
  expect(added.stderr).toContain(`the standby ${A}: pg_hba.conf allow-list brought up to date`);
  expect(await hba(pair.rootA)).toMatch(allowLine('127.0.26.9'));
  // On the standby the list is the primary's: a change there is refused, and says where to make it.
  const onStandby = await run(['exposedb', '--root', pair.rootA.dir, '--conn', conn(A), '--remove', '127.0.26.9/32']);
  expect(onStandby.exitCode).toBe(3);
  expect(onStandby.stderr).toContain(`error: --remove: this host is the standby of ${B}: its allow-list is the primary's; nothing was changed`);

  // A's file edited by hand (the node's line gone): the primary's --list says it lags.
  const text = await hba(pair.rootA);
  await fs.writeFile(pair.rootA.path(`${PATHS.pgData}/pg_hba.conf`), text.replace(allowLine(NODE), ''));
  const listed = await run(['exposedb', '--root', pair.rootB.dir, '--conn', conn(B), '--list']);
  expect(listed.exitCode).toBe(0);
  expect(listed.stdout.split('\n')).toContain(`${NODE}/32`);
  expect(listed.stderr).toContain(`warning: the allow-list in the pg_hba.conf of ${A} lags the primary's`);
  const synced = await run(['exposedb', '--root', pair.rootA.dir, '--conn', conn(A), '--sync']);
  expect(synced.exitCode, synced.stderr).toBe(0);
  expect(synced.stdout).toContain('Synced: the allow-list in');
  expect(await hba(pair.rootA)).toBe(text);
  const again = await run(['exposedb', '--root', pair.rootA.dir, '--conn', conn(A), '--sync']);
  expect(again.stdout).toContain('Unchanged: the allow-list in');
  expect((await run(['exposedb', '--root', pair.rootB.dir, '--conn', conn(B), '--list'])).stderr).not.toContain('lags');
}, 120_000);

test('server forget on the primary takes the node out of the allow-list of both hosts', async () => {
  expect((await knocker(['service', 'stop', 'server', '--root', node!.dir])).exitCode).toBe(0);
  // A, whose web node runs the forget, is the primary again.
  const back = await standby(pair.rootB, 'switchover');
  expect(back.exitCode, back.stderr).toBe(0);
  await waitRole(pair.rootB, 'standby');
  expect(await hba(pair.rootB)).toMatch(allowLine(NODE));
  const forgot = await run(['server', 'forget', 'web-26', '--root', pair.rootA.dir]);
  expect(forgot.exitCode, forgot.stderr).toBe(0);
  expect(forgot.stderr).toContain(`${NODE}/32 no longer allowed`);
  expect(forgot.stderr).toContain(`the standby ${B}: pg_hba.conf allow-list brought up to date`);
  expect(await hba(pair.rootA)).not.toMatch(allowLine(NODE));
  expect(await hba(pair.rootB)).not.toMatch(allowLine(NODE));
}, 120_000);

test('standby promote after the primary is lost: the standby first writes the replicated list into its own lagging pg_hba.conf', async () => {
  const bFile = pair.rootB.path(`${PATHS.pgData}/pg_hba.conf`);
  await fs.writeFile(bFile, (await hba(pair.rootB)).replace(allowLine('127.0.26.9'), ''));
  await sql(pair.rootB, 'SELECT pg_reload_conf()', [], 'postgres');
  expect(await hba(pair.rootB)).not.toMatch(allowLine('127.0.26.9'));
  await killPostmaster(pair.rootA);
  const promoted = await standby(pair.rootB, 'promote');
  expect(promoted.exitCode, promoted.stderr).toBe(0);
  expect(promoted.stderr).toContain('pg_hba.conf allow-list brought up to date (checked by PostgreSQL, reloaded)');
  expect(await hba(pair.rootB)).toMatch(allowLine('127.0.26.9'));
  expect(await hba(pair.rootB)).not.toMatch(allowLine(NODE));
}, 120_000);
