// Runs a script on the Node the package carries when this machine's Node is older (a fresh Debian
// or this kind of machine has Node 20, past its end of life), else on this one: `npm start` and
// `npm test` then work on any machine with npm. The carried Node is fetched once from the npm
// registry (scripts/node-runtime.mjs) and put first on PATH, so programs the script starts by their
// `#!/usr/bin/env node` line (bin/knocker under tmux) run on it too.
// Usage: node scripts/on-carried-node.mjs SCRIPT [ARGS...]
import { spawn } from 'node:child_process';
import path from 'node:path';
import { carriedNodeVersion, ensureNode } from './node-runtime.mjs';

function older(a, b) {
  const [x, y] = [a, b].map((v) => v.split('.').map(Number));
  for (let i = 0; i < 3; i += 1) if (x[i] !== y[i]) return x[i] < y[i];
  return false;
}

const carried = carriedNodeVersion();
const node = older(process.versions.node, carried) ? ensureNode(carried) : process.execPath;
if (node !== process.execPath) process.stderr.write(`(this machine's Node is ${process.versions.node}: running on the package's Node ${carried}, ${node})\n`);
const child = spawn(node, process.argv.slice(2), {
  stdio: 'inherit',
  env: { ...process.env, PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH ?? ''}` },
});
// Ctrl-C on a terminal reaches the child from the terminal itself: passing it on would make it two.
process.on('SIGINT', () => {});
for (const signal of ['SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => {
  if (!signal) process.exit(code ?? 1);
  process.removeAllListeners(signal);
  process.kill(process.pid, signal);
});
