// Whole-process time of an unattended `knocker install`: option 1 on a fresh sandbox root (a new
// private cluster each time), and options 2 and 3 against an external cluster started once.
// Usage: node bench/install-unattended.mjs [runs]   (needs `npm run build` first)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withAdminSession } from '../dist/postgres/admin.js';
import { clusterOwner, findPgBinaries, initCluster, startCluster, stopCluster } from '../dist/postgres/cluster.js';
import { generatePassword, scramVerifier } from '../dist/postgres/scram.js';
import { buildDatabaseUrl } from '../dist/postgres/url.js';
import { freePort } from '../dist/system/host.js';
import { summary, timeProcess } from './lib.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const knocker = path.join(repo, 'bin', 'knocker');
const runs = Number(process.argv[2] ?? 5);
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KNOCKNOC_')));

function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755);
  return dir;
}

async function stopRootCluster(root) {
  const dataDir = path.join(root, 'var/lib/knocknoc/postgresql');
  if (fs.existsSync(dataDir)) await stopCluster({ bin: await findPgBinaries(), dataDir, osUser: await clusterOwner() }, undefined, 'immediate');
  fs.rmSync(root, { recursive: true, force: true });
}

const option1 = [];
for (let i = 0; i < runs; i += 1) {
  const root = tempDir('knocker-bench-root-');
  const { ms, code } = await timeProcess(
    [process.execPath, knocker, 'install', '--root', root, '--non-interactive', '--listen', `127.0.0.40:${await freePort('127.0.0.40')}`],
    env,
  );
  if (code !== 0) throw new Error(`option 1 failed (${code})`);
  option1.push(ms);
  await stopRootCluster(root);
}

// The external database: a cluster of its own, as a DBaaS would be.
const base = tempDir('knocker-bench-ext-');
const cluster = {
  bin: await findPgBinaries(),
  dataDir: path.join(base, 'data'),
  socketDir: path.join(base, 'sock'),
  logFile: path.join(base, 'pg.log'),
  host: '127.0.0.1',
  port: await freePort('127.0.0.1'),
  osUser: await clusterOwner(),
};
await initCluster(cluster);
await startCluster(cluster);
const access = { socketDir: cluster.socketDir, port: cluster.port, osUser: cluster.osUser };
async function newDatabase(name) {
  const password = generatePassword();
  await withAdminSession(access, undefined, async (s) => {
    const role = await s.query(`SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text) AS s`, [name, scramVerifier(password)]);
    await s.query(role.rows[0].s);
    const db = await s.query(`SELECT format('CREATE DATABASE %I OWNER %I', $1::text, $1::text) AS s`, [name]);
    await s.query(db.rows[0].s);
  });
  return buildDatabaseUrl({ host: '127.0.0.1', port: cluster.port, user: name, password, database: name });
}

const option2 = [];
const option3 = [];
try {
  for (let i = 0; i < runs; i += 1) {
    const url = await newDatabase(`bench${i}`);
    const root = tempDir('knocker-bench-root-');
    const two = await timeProcess(
      [process.execPath, knocker, 'install', '--root', root, '--non-interactive', '--listen', `127.0.0.1:${await freePort()}`, '--database-option', '2'],
      { ...env, KNOCKNOC_DATABASE_URL: url },
    );
    if (two.code !== 0) throw new Error('option 2 failed');
    option2.push(two.ms);
    const joiner = tempDir('knocker-bench-root-');
    const three = await timeProcess(
      [process.execPath, knocker, 'install', '--root', joiner, '--non-interactive', '--listen', `127.0.0.1:${await freePort()}`, '--database-option', '3'],
      { ...env, KNOCKNOC_DATABASE_URL: url },
    );
    if (three.code !== 0) throw new Error('option 3 failed');
    option3.push(three.ms);
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(joiner, { recursive: true, force: true });
  }
} finally {
  await stopCluster(cluster, undefined, 'immediate');
  fs.rmSync(base, { recursive: true, force: true });
}
console.log(JSON.stringify({ option1: summary(option1), option2: summary(option2), option3: summary(option3) }, null, 2));
