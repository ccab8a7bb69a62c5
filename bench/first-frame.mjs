// Time to the first frame of the interactive installer (the first question on screen) in a real
// terminal: tmux, 120×40, one private tmux server. The clock runs from asking tmux for a new
// window running the command until tmux has received the question from it (tmux's control mode
// reports a pane's output as it arrives, so nothing is polled). Every command runs in turn
// (round-robin), one warm-up round is thrown away, the median of the rest is reported, and each
// median is divided by the baselines of the same run: a node that prints the question and waits
// (what `node -e 0` costs, measured the same way), for this Node and for the one the package carries.
// Usage: flock /tmp/knocker-tests.lock node bench/first-frame.mjs [runs] [label=command …]
//   (the lock keeps test runs of other checkouts off the CPUs meanwhile)
//   Without commands: the baseline and bin/knocker on this Node, the same on the Node the package
//   carries (when it is in the cache), and the packaged binary (when release/ has it).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from './lib.mjs';
import { cachedNode, carriedNodeVersion } from '../scripts/node-runtime.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NEEDLE = 'Enter IP and port to listen on';
const runs = Number(process.argv[2] ?? 9);
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'knocker-bench-'));
fs.chmodSync(root, 0o755);
const version = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')).version;

const baselineOf = (node) => [node, '-e', `process.stdout.write(${JSON.stringify(NEEDLE)}); setInterval(() => {}, 1e6)`];
const install = ['install', '--root', root];
const commands = [];
const extra = process.argv.slice(3);
if (extra.length > 0) {
  for (const spec of extra) {
    const at = spec.indexOf('=');
    const words = spec.slice(at + 1);
    // A command is words split at spaces, or a JSON array; ROOT stands for the bench's sandbox
    // root, and `NODE BASELINE` for the baseline run by that node.
    const argv = words.startsWith('[') ? JSON.parse(words) : words.split(' ');
    if (argv[1] === 'BASELINE') commands.push({ label: spec.slice(0, at), argv: baselineOf(argv[0]), baseline: true });
    else commands.push({ label: spec.slice(0, at), argv: argv.map((w) => (w === 'ROOT' ? root : w)) });
  }
} else {
  const machine = `node ${process.version}`;
  commands.push({ label: `baseline, ${machine}`, argv: baselineOf(process.execPath), baseline: true });
  commands.push({ label: `bin/knocker, ${machine}`, argv: [process.execPath, path.join(repo, 'bin', 'knocker'), ...install] });
  const carried = cachedNode(carriedNodeVersion());
  if (carried && carriedNodeVersion() !== process.version.slice(1)) {
    commands.push({ label: `baseline, node v${carriedNodeVersion()}`, argv: baselineOf(carried), baseline: true });
    commands.push({ label: `bin/knocker, node v${carriedNodeVersion()}`, argv: [carried, path.join(repo, 'bin', 'knocker'), ...install] });
  }
  const binary = path.join(repo, 'release', `knocker-${version}-linux-x64`);
  if (fs.existsSync(binary)) commands.push({ label: `release/knocker-${version}-linux-x64`, argv: [binary, ...install] });
}
if (!commands.some((c) => c.baseline)) commands[0].baseline = true;

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A tmux server in control mode: commands in, their replies and every pane's output back as events. */
function controlTmux() {
  const socket = `knocker-bench-${process.pid}`;
  // Even when the bench dies, its tmux server (and what runs in it) goes with it.
  process.on('exit', () => spawnSync('tmux', ['-L', socket, 'kill-server'], { stdio: 'ignore' }));
  const child = spawn('tmux', ['-L', socket, '-C', 'new-session', '-x', '120', '-y', '40', 'sleep 100000'], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, TERM: 'xterm-256color' },
  });
  const replies = [];
  let reply;
  const output = new Map();
  const listeners = new Set();
  let buffered = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    buffered += chunk;
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).replace(/\r$/, '');
      buffered = buffered.slice(nl + 1);
      if (reply) {
        if (/^%(end|error) /.test(line)) {
          const done = replies.shift();
          if (done) (line.startsWith('%error') ? done.reject : done.resolve)(reply.join('\n'));
          reply = undefined;
        } else reply.push(line);
        // Only blocks flagged 1 answer this client's commands (the first one is the session's own).
      } else if (/^%begin \S+ \S+ 1$/.test(line)) reply = [];
      else if (line.startsWith('%output ')) {
        const space = line.indexOf(' ', 8);
        const pane = line.slice(8, space);
        const text = line.slice(space + 1).replace(/\\([0-7]{3})/g, (_, octal) => String.fromCharCode(parseInt(octal, 8)));
        output.set(pane, (output.get(pane) ?? '') + text);
        for (const listener of listeners) listener(pane);
      }
    }
  });
  const send = (command) =>
    new Promise((resolve, reject) => {
      replies.push({ resolve, reject });
      child.stdin.write(`${command}\n`);
    });
  const quote = (word) => `'${word.replace(/'/g, `'\\''`)}'`;
  return {
    ready: send('refresh-client -C 120x40'),
    /** Milliseconds from asking for the window until the pane has shown `needle`. */
    async time(argv, needle) {
      let pane;
      let pid;
      let started;
      const seen = new Promise((resolve) => {
        const check = (p) => {
          if (pane && p === pane && (output.get(pane) ?? '').includes(needle)) {
            listeners.delete(check);
            resolve(Number(process.hrtime.bigint() - started) / 1e6);
          }
        };
        listeners.add(check);
        started = process.hrtime.bigint();
        void send(`new-window -d -P -F '#{pane_id} #{pane_pid}' -- ${argv.map(quote).join(' ')}`).then((reply) => {
          [pane, pid] = reply.trim().split(' ');
          check(pane);
        });
      });
      const timeout = new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`no "${needle}" within 30 s from ${argv.join(' ')}:\n${(output.get(pane) ?? '').slice(-2000)}`)), 30_000).unref(),
      );
      const ms = await Promise.race([seen, timeout]);
      await send(`kill-pane -t ${pane}`);
      output.delete(pane);
      // The next command starts only once this one has gone, so its exit does not share the CPUs.
      while (alive(Number(pid))) await new Promise((resolve) => setTimeout(resolve, 5));
      return ms;
    },
    async close() {
      await send('kill-server').catch(() => {});
      child.kill();
    },
  };
}

const tmux = controlTmux();
await tmux.ready;
const times = commands.map(() => []);
try {
  for (let round = 0; round <= runs; round += 1) {
    for (const [i, command] of commands.entries()) {
      const ms = await tmux.time(command.argv, NEEDLE);
      if (round > 0) times[i].push(ms);
    }
  }
} finally {
  await tmux.close();
  fs.rmSync(root, { recursive: true, force: true });
}

const baselines = commands.flatMap((command, i) => (command.baseline ? [{ label: command.label.replace(/^baseline, /, ''), ms: median(times[i]) }] : []));
console.log(`${runs} runs each (after one warm-up round), ${os.loadavg()[0].toFixed(2)} load average at the end`);
console.log(`| command | median ms | min–max | ${baselines.map((b) => `÷ baseline ${b.label}`).join(' | ')} |`);
console.log(`|---|---|---|${baselines.map(() => '---|').join('')}`);
for (const [i, command] of commands.entries()) {
  const sorted = [...times[i]].sort((a, b) => a - b);
  const ms = median(sorted);
  console.log(
    `| ${command.label} | ${Math.round(ms)} | ${Math.round(sorted[0])}–${Math.round(sorted.at(-1))} | ${baselines.map((b) => (ms / b.ms).toFixed(2)).join(' | ')} |`,
  );
}
