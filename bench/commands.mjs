// Whole-process times of `knocker --version` and `knocker status --once` (on a sandbox root
// installed with option 1: its private PostgreSQL and its running web node), for bin/knocker on
// this Node and on the Node the package carries, and for the packaged binary (when release/ has
// it), against `node -e 0`. Commands run in turn, one warm-up round is thrown away; medians.
// Usage: flock /tmp/knocker-tests.lock node bench/commands.mjs [runs]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../dist/system/host.js';
import { median, timeProcess } from './lib.mjs';
import { cachedNode, carriedNodeVersion } from '../scripts/node-runtime.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const runs = Number(process.argv[2] ?? 11);
const version = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')).version;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'knocker-bench-'));
fs.chmodSync(root, 0o755);
const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('KNOCKNOC_')));

const knockers = [{ label: `bin/knocker, node ${process.version}`, argv: [process.execPath, path.join(repo, 'bin', 'knocker')], node: process.execPath }];
const carried = cachedNode(carriedNodeVersion());
if (carried && carriedNodeVersion() !== process.version.slice(1))
  knockers.push({ label: `bin/knocker, node v${carriedNodeVersion()}`, argv: [carried, path.join(repo, 'bin', 'knocker')], node: carried });
const binary = path.join(repo, 'release', `knocker-${version}-linux-x64`);
if (fs.existsSync(binary)) knockers.push({ label: `release/knocker-${version}-linux-x64`, argv: [binary] });

const address = '127.0.0.182';
const installed = await timeProcess(
  [...knockers[0].argv, 'install', '--root', root, '--non-interactive', '--listen', `${address}:${await freePort(address)}`],
  env,
);
if (installed.code !== 0) throw new Error('the install for the bench failed');

const rows = [
  ...knockers.filter((k) => k.node).map((k) => ({ label: `node -e 0 (${k.label.split(', ')[1]})`, argv: [k.node, '-e', '0'] })),
  ...knockers.flatMap((k) => [
    { label: `${k.label}: --version`, argv: [...k.argv, '--version'] },
    { label: `${k.label}: status --once`, argv: [...k.argv, 'status', '--once', '--root', root] },
  ]),
];
const times = rows.map(() => []);
try {
  for (let round = 0; round <= runs; round += 1) {
    for (const [i, row] of rows.entries()) {
      const { ms, code } = await timeProcess(row.argv, env);
      if (code !== 0) throw new Error(`${row.label} exited ${code}`);
      if (round > 0) times[i].push(ms);
    }
  }
} finally {
  await timeProcess([...knockers[0].argv, 'service', 'stop', '--root', root], env);
  fs.rmSync(root, { recursive: true, force: true });
}
console.log(`${runs} runs each (after one warm-up round), ${os.loadavg()[0].toFixed(2)} load average at the end`);
console.log('| command | median ms | min–max |');
console.log('|---|---|---|');
for (const [i, row] of rows.entries()) {
  const sorted = [...times[i]].sort((a, b) => a - b);
  console.log(`| ${row.label} | ${Math.round(median(sorted))} | ${Math.round(sorted[0])}–${Math.round(sorted.at(-1))} |`);
}
