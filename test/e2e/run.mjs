#!/usr/bin/env node
// `npm run test:e2e` runs the fresh-hosts suite (test/e2e/vitest.config.ts); `npm test` runs it with
// --if-possible: on a machine that cannot (not root, no systemd-nspawn or debootstrap, no overlay
// file system) it says loudly why and skips, unless KNOCKER_E2E=required (CI), which makes that a
// failure. KNOCKER_E2E=skip skips it on purpose, as loudly. After vitest, whatever way it ended,
// anything the run left on this machine is reported (a failure) and removed.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanUp, findLeftovers, labConfig, liveOwner } from './harness/ledger.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const ifPossible = args[0] === '--if-possible';
const vitestArgs = ifPossible ? args.slice(1) : args;
const mode = process.env.KNOCKER_E2E ?? '';

function banner(lines) {
  const width = Math.max(...lines.map((l) => l.length)) + 4;
  const rule = '#'.repeat(width);
  process.stderr.write(`\n${rule}\n${lines.map((l) => `# ${l.padEnd(width - 4)} #`).join('\n')}\n${rule}\n\n`);
}

function onPath(program) {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin')
    .split(':')
    .concat(['/usr/sbin', '/sbin'])
    .some((dir) => {
      try {
        fs.accessSync(path.join(dir, program), fs.constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}

/** Why this machine cannot run the suite (empty: it can). */
function missing() {
  const why = [];
  if (process.getuid?.() !== 0) why.push('it needs root (network namespaces, a bridge, mounts)');
  for (const [program, pkg] of [
    ['systemd-nspawn', 'systemd-container'],
    ['debootstrap', 'debootstrap'],
    ['nsenter', 'util-linux'],
    ['ip', 'iproute2'],
    ['tmux', 'tmux'],
  ]) {
    if (!onPath(program)) why.push(`no ${program} (apt-get install ${pkg})`);
  }
  const filesystems = fs.existsSync('/proc/filesystems') ? fs.readFileSync('/proc/filesystems', 'utf8') : '';
  if (!/\soverlay$/m.test(filesystems)) why.push('the kernel has no overlay file system');
  return why;
}

if (mode === 'skip') {
  if (ifPossible) {
    banner(['FRESH-HOSTS SUITE SKIPPED: KNOCKER_E2E=skip', 'npm run test:e2e runs it (root, systemd-nspawn, debootstrap; README "Development")']);
    process.exit(0);
  }
}
const why = missing();
if (why.length > 0) {
  const lines = ['FRESH-HOSTS SUITE (test/e2e) CANNOT RUN ON THIS MACHINE:', ...why.map((w) => `  - ${w}`)];
  if (ifPossible && mode !== 'required') {
    banner([...lines, 'SKIPPED. Set KNOCKER_E2E=required to make this a failure (CI does).']);
    process.exit(0);
  }
  banner([...lines, mode === 'required' ? 'KNOCKER_E2E=required: FAILING.' : 'FAILING.']);
  process.exit(1);
}

const config = labConfig();
const started = Date.now();
const vitest = spawn(
  process.execPath,
  [path.join(REPO, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--config', 'test/e2e/vitest.config.ts', ...vitestArgs],
  {
    cwd: REPO,
    stdio: 'inherit',
  },
);
// A signal to this process alone (not the terminal's Ctrl-C, which reaches vitest too) is passed on.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => vitest.kill(signal));
vitest.on('exit', (code, signal) => {
  let status = code ?? 1;
  // Another run's live hosts (this one refused to start beside it) are not leftovers.
  const left = liveOwner(config) === undefined ? findLeftovers(config) : [];
  if (left.length > 0) {
    const done = cleanUp(config);
    banner(['THE FRESH-HOSTS SUITE LEFT THINGS ON THIS MACHINE:', ...left.map((l) => `  - ${l}`), 'removed now:', ...done.map((d) => `  - ${d}`)]);
    status = status || 1;
  }
  if (signal) process.stderr.write(`vitest ended by ${signal}\n`);
  process.stderr.write(`[e2e] the fresh-hosts suite took ${Math.round((Date.now() - started) / 1000)} s\n`);
  process.exit(signal ? 1 : status);
});
