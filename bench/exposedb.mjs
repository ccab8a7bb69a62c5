// Whole-process time of `knocker exposedb`: --add (and --remove, --list) on an exposed primary,
// and --init on a freshly installed one (its private cluster is restarted to listen everywhere).
// Each primary is a sandbox root installed with option 1, its knocknoc-server running (not timed).
// Usage: node bench/exposedb.mjs [runs]   (needs `npm run build` first)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withAdminSession } from '../dist/postgres/admin.js';
import { clusterOwner, findPgBinaries, readClusterSettings, stopCluster } from '../dist/postgres/cluster.js';
import { freePort } from '../dist/system/host.js';
import { summary, timeProcess } from './lib.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const knocker = path.join(repo, 'bin', 'knocker');
const runs = Number(process.argv[2] ?? 5);
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KNOCKNOC_')));

async function installPrimary(address) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'knocker-bench-exposedb-'));
  fs.chmodSync(root, 0o755);
  const { code } = await timeProcess(
    [process.execPath, knocker, 'install', '--root', root, '--non-interactive', '--listen', `${address}:${await freePort(address)}`],
    env,
  );
  if (code !== 0) throw new Error(`install failed (${code})`);
  return root;
}

async function removeRoot(root) {
  // The install started the root's knocknoc-server and its PostgreSQL: stop both, then remove it.
  const { code } = await timeProcess([process.execPath, knocker, 'service', 'stop', '--root', root], env);
  const dataDir = path.join(root, 'var/lib/knocknoc/postgresql');
  if (code !== 0 && fs.existsSync(dataDir)) await stopCluster({ bin: await findPgBinaries(), dataDir, osUser: await clusterOwner() }, undefined, 'immediate');
  fs.rmSync(root, { recursive: true, force: true });
}

async function postmasterStart(root) {
  const dataDir = path.join(root, 'var/lib/knocknoc/postgresql');
  const { port } = await readClusterSettings(dataDir);
  const access = { socketDir: path.join(root, 'run/knocknoc/postgresql'), port, osUser: await clusterOwner() };
  return withAdminSession(access, undefined, async (s) => (await s.query('SELECT pg_postmaster_start_time()::text AS t')).rows[0].t);
}

async function exposedb(root, ...args) {
  const result = await timeProcess([process.execPath, knocker, 'exposedb', '--root', root, ...args], env);
  if (result.code !== 0) throw new Error(`exposedb ${args.join(' ')} failed (${result.code})`);
  return result.ms;
}

const init = [];
for (let i = 0; i < runs; i += 1) {
  const root = await installPrimary('127.0.0.70');
  try {
    init.push(await exposedb(root, '--init'));
  } finally {
    await removeRoot(root);
  }
}

const add = [];
const remove = [];
const list = [];
const primary = await installPrimary('127.0.0.71');
let restarted;
try {
  await exposedb(primary, '--init');
  const started = await postmasterStart(primary);
  for (let i = 0; i < runs; i += 1) add.push(await exposedb(primary, '--add', `10.20.${i}.0/24`));
  for (let i = 0; i < runs; i += 1) list.push(await exposedb(primary, '--list'));
  for (let i = 0; i < runs; i += 1) remove.push(await exposedb(primary, '--remove', `10.20.${i}.0/24`));
  restarted = (await postmasterStart(primary)) !== started;
} finally {
  await removeRoot(primary);
}
console.log(
  JSON.stringify({ init: summary(init), add: summary(add), remove: summary(remove), list: summary(list), restartedDuringAddRemove: restarted }, null, 2),
);
