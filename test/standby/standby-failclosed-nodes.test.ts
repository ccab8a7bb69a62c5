// Rule 6 of the standby pair (issue 22): the whole host follows the primary. A primary (root A,
// database option 1, its own web node) and a standby host (root B) that runs a web node too,
// installed with database option 3 on the primary's single-host string before the standby existed.
// `exposedb --add-standby` gives A's own node the multi-host string, `standby init` gives B's node
// the same; both hosts' pg_hba.conf admit both hosts' nodes. Then a switchover and back, under a
// writer walking the multi-host string and a sampler asking both hosts for a writable session:
// A's own node answers /_status 200 from the new primary each time (it answered 503 before).
import fs from 'node:fs/promises';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { KnocknocConf } from '../../src/config/knocknoc-conf.js';
import { parseDatabaseUrl } from '../../src/postgres/url.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { finish, makePair, webNodeOnStandbyHost, run, standby, waitRole, type Pair, switchoverUnderLoad } from '../helpers/failclosed.js';
import { knocker } from '../helpers/knocker.js';
import { request, waitFor } from '../helpers/server.js';

const A = '127.0.26.1';
const B = '127.0.26.2';
const CLIENT = '127.0.26.3';
let pair: Pair;

async function listenOf(root: Root): Promise<string> {
  return KnocknocConf.parse(await fs.readFile(root.path(PATHS.conf), 'utf8')).get('Listen')!;
}

async function databaseUrlOf(root: Root) {
  const parsed = parseDatabaseUrl(KnocknocConf.parse(await fs.readFile(root.path(PATHS.conf), 'utf8')).get('DatabaseURL') ?? '');
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

/** The node of `root` answers /_status 200 from the database on `host`. */
async function servesFrom(root: Root, host: string, timeoutMs = 60_000): Promise<void> {
  const listen = await listenOf(root);
  let last = '';
  await waitFor(
    `the node of ${root.dir} serving from ${host}:${pair.port}`,
    async () => {
      const reply = await request(`http://${listen}/_status`, { timeoutMs: 5_000 }).catch((error: Error) => ({ status: 0, body: error.message }));
      last = `${reply.status} ${reply.body}`;
      if (reply.status !== 200) return undefined;
      return (JSON.parse(reply.body) as { databaseHost: string }).databaseHost === `${host}:${pair.port}` ? true : undefined;
    },
    timeoutMs,
  ).catch((error: Error) => {
    throw new Error(`${error.message} (last answer: ${last})`);
  });
}

beforeAll(async () => {
  // B's own web node (option 3 on the primary's string; add-standby gives it the pair's).
  pair = await makePair(A, B, CLIENT, { beforeStandby: webNodeOnStandbyHost(B) });
}, 180_000);

afterAll(async () => {
  await pair?.destroy();
});

test("after add-standby and init, both hosts' nodes use the multi-host string and both pg_hba.conf admit both nodes", async () => {
  for (const root of [pair.rootA, pair.rootB]) {
    const url = await databaseUrlOf(root);
    expect(url.hosts).toEqual(pair.hosts);
    expect(url.targetSessionAttrs).toBe('read-write');
    expect(url.sslmode).toBe('verify-full');
    expect(await fs.readFile(url.sslrootcert!, 'utf8')).toBe(pair.ca);
    // Written atomically with the previous version kept.
    expect((await fs.readFile(`${root.path(PATHS.conf)}.bak`, 'utf8')).includes(`,${B}:`)).toBe(false);
    expect((await fs.stat(root.path(PATHS.conf))).mode & 0o777).toBe(0o600);
  }
  // A's node keeps its own role (exposedb still reads it as the app's string); B's the other nodes' role.
  expect((await databaseUrlOf(pair.rootA)).user).toBe('knocknoc');
  expect((await databaseUrlOf(pair.rootB)).user).toBe('knocknoc_remote');
  for (const root of [pair.rootA, pair.rootB]) {
    const hba = await fs.readFile(root.path(`${PATHS.pgData}/pg_hba.conf`), 'utf8');
    for (const host of [A, B])
      for (const role of ['knocknoc', 'knocknoc_remote']) expect(hba).toMatch(new RegExp(`hostssl\\s+knocknoc\\s+${role}\\s+${host}/32`));
  }
  await servesFrom(pair.rootA, A);
  await servesFrom(pair.rootB, A);
  // Both nodes registered and running in the one registry.
  const list = await run(['server', 'list', '--json', '--root', pair.rootA.dir]);
  expect(list.exitCode, list.stderr).toBe(0);
  const names = (JSON.parse(list.stdout) as Array<{ name: string; state: string }>).map((s) => s.name);
  expect(names).toContain('web-b');
}, 120_000);

test("a switchover and back: A's own node answers 200 from the new primary each time; no acknowledged write lost, never two writable hosts", async () => {
  const { writer, sampler } = await switchoverUnderLoad(pair, pair.rootA, 1);
  await servesFrom(pair.rootA, B);
  await servesFrom(pair.rootB, B);
  // knocker status on the old primary's host names B as the primary and A's node as serving.
  const back = await standby(pair.rootB, 'switchover');
  expect(back.exitCode, back.stderr).toBe(0);
  await waitRole(pair.rootB, 'standby');
  await servesFrom(pair.rootA, A);
  await servesFrom(pair.rootB, A);
  await finish(pair.rootA, writer, sampler);
}, 240_000);

test('a second add-standby and init change nothing on the nodes (the strings are the pair already)', async () => {
  const before = await Promise.all([pair.rootA, pair.rootB].map((r) => fs.readFile(r.path(PATHS.conf), 'utf8')));
  const add = await run(['exposedb', '--root', pair.rootA.dir, '--add-standby', B, '--dry-run', '--json']);
  expect(add.exitCode, add.stderr).toBe(0);
  const titles = (JSON.parse(add.stdout) as { plan: { steps: Array<{ title: string; changes: boolean }> } }).plan.steps
    .filter((s) => s.changes)
    .map((s) => s.title);
  expect(titles.some((t) => t.includes(PATHS.conf) || t.includes('web node'))).toBe(false);
  const init = await standby(pair.rootB, 'init', '--bundle', pair.bundle);
  expect(init.exitCode, init.stderr).toBe(0);
  expect(await Promise.all([pair.rootA, pair.rootB].map((r) => fs.readFile(r.path(PATHS.conf), 'utf8')))).toEqual(before);
}, 120_000);

test("knocker install run again on the primary keeps its node on the pair's string (it would write the single-host one)", async () => {
  const before = await fs.readFile(pair.rootA.path(PATHS.conf), 'utf8');
  const again = await knocker(['install', '--root', pair.rootA.dir, '--listen', await listenOf(pair.rootA)], { timeoutMs: 120_000 });
  expect(again.exitCode, again.stderr).toBe(0);
  expect(await fs.readFile(pair.rootA.path(PATHS.conf), 'utf8')).toBe(before);
  expect((await databaseUrlOf(pair.rootA)).hosts).toEqual(pair.hosts);
  await servesFrom(pair.rootA, A);
}, 120_000);
