// An arm64 Debian root, run on this (amd64) machine under qemu-user emulation: the libraries the
// arm64 Node is run with while the package is built (its V8 code cache must be made on arm64), and
// the arm64 host the arm64 .deb is tested on (test/package/package-arm64.test.ts): Debian 13 minbase from
// debootstrap with PostgreSQL installed (no cluster made, no service started). Built once into the
// cache (scripts/node-runtime.mjs's, outside the repository) and rebuilt when its recipe changes.
//
// It needs root, debootstrap and qemu-aarch64 registered with binfmt_misc (with the F flag, so that
// it also runs inside the root), which is what this sets up on Debian:
//   mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc   (when it is not mounted)
//   apt-get install qemu-user-static binfmt-support
// `node scripts/arm64-root.mjs` builds it if needed and prints its path.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDir } from './node-runtime.mjs';

export const RECIPE = {
  /** Bump when a step below changes meaning without changing its text. */
  revision: 1,
  arch: 'arm64',
  suite: 'trixie',
  variant: 'minbase',
  mirror: process.env.KNOCKER_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian',
  /** Written into the root before the packages: no service started, no `main` cluster made. */
  files: {
    '/usr/sbin/policy-rc.d': { mode: 0o755, text: '#!/bin/sh\nexit 101\n' },
    '/etc/postgresql-common/createcluster.conf': { mode: 0o644, text: 'create_main_cluster = false\n' },
  },
  chroot: [
    ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-qq', '--no-install-recommends', 'postgresql', 'openssl', 'procps'],
    ['apt-get', 'clean'],
  ],
};

const QEMU_BINFMT = '/proc/sys/fs/binfmt_misc/qemu-aarch64';

export function recipeHash() {
  return crypto.createHash('sha256').update(JSON.stringify(RECIPE)).digest('hex').slice(0, 12);
}

/** Why this machine cannot run arm64 programs (in the root too), or undefined when it can. */
export function emulationMissing() {
  if (process.arch === 'arm64') return undefined;
  let entry;
  try {
    entry = fs.readFileSync(QEMU_BINFMT, 'utf8');
  } catch {
    return `qemu-aarch64 is not registered with binfmt_misc (${QEMU_BINFMT}): as root, mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc (when it is not mounted) and apt-get install qemu-user-static binfmt-support`;
  }
  if (!/^enabled$/m.test(entry)) return `qemu-aarch64 is registered with binfmt_misc but disabled (${QEMU_BINFMT})`;
  if (!/^flags:.*F/m.test(entry))
    return `qemu-aarch64 is registered with binfmt_misc without the F flag, so it cannot run inside a chroot (${QEMU_BINFMT}); qemu-user-static's registration has it`;
  return undefined;
}

function run(argv, log) {
  const out = fs.openSync(log, 'a');
  fs.writeSync(out, `\n$ ${argv.join(' ')}\n`);
  const result = spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', out, out], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' } });
  fs.closeSync(out);
  if (result.status !== 0) {
    const tail = fs.readFileSync(log, 'utf8').trim().split('\n').slice(-15).join('\n');
    throw new Error(`${argv.join(' ')} failed (${result.error?.message ?? result.signal ?? `exit ${result.status}`}); the last lines of ${log}:\n${tail}`);
  }
}

/** Unmounts whatever is still mounted under dir (debootstrap mounts /proc and /sys in it), deepest first. */
export function unmountUnder(dir) {
  const mounts = fs
    .readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((point) => point && (point === dir || point.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
  for (const point of mounts) spawnSync('umount', ['--lazy', point], { stdio: 'ignore' });
}

/** Removes a root, never what is mounted in it (the host's /proc, /dev). */
function removeRoot(dir) {
  unmountUnder(dir);
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** The cached root of this recipe, built first when missing (older recipes' roots are removed). */
export function ensureArm64Root(say = (line) => process.stderr.write(`${line}\n`)) {
  const cache = cacheDir();
  const name = `debian-${RECIPE.suite}-${RECIPE.arch}`;
  const dir = path.join(cache, `${name}-${recipeHash()}`);
  const done = `${dir}.json`;
  if (fs.existsSync(done) && fs.existsSync(dir)) return { dir, built: false, seconds: 0 };
  if (process.getuid?.() !== 0) throw new Error(`the arm64 Debian root ${dir} is not built yet, and building it (debootstrap) needs root`);
  const missing = emulationMissing();
  if (missing) throw new Error(missing);
  const started = Date.now();
  fs.mkdirSync(cache, { recursive: true, mode: 0o755 });
  for (const entry of fs.readdirSync(cache)) {
    if (entry.startsWith(`${name}-`) && !entry.startsWith(path.basename(dir))) removeRoot(path.join(cache, entry));
  }
  // Its own folder per build: two builds at once do not share one half-made root.
  const partial = `${dir}.partial-${process.pid}`;
  const log = `${dir}.log`;
  fs.writeFileSync(log, `knocker arm64 root ${recipeHash()}: ${JSON.stringify(RECIPE)}\n`);
  say(`building the arm64 Debian root ${path.basename(dir)} (debootstrap from ${RECIPE.mirror} under qemu-user; a few minutes, once; log ${log})`);
  try {
    run(['debootstrap', `--arch=${RECIPE.arch}`, `--variant=${RECIPE.variant}`, RECIPE.suite, partial, RECIPE.mirror], log);
    for (const [file, { mode, text }] of Object.entries(RECIPE.files)) {
      fs.mkdirSync(path.join(partial, path.dirname(file)), { recursive: true });
      fs.writeFileSync(path.join(partial, file), text, { mode });
    }
    for (const step of RECIPE.chroot) run(['chroot', partial, ...step], log);
    // No name server: what runs in it reaches nothing by name.
    fs.writeFileSync(path.join(partial, 'etc/resolv.conf'), '');
    if (!fs.readdirSync(path.join(partial, 'usr/lib/postgresql')).length) throw new Error(`the arm64 root has no PostgreSQL after the install (see ${log})`);
    if (fs.existsSync(done) && fs.existsSync(dir)) return { dir, built: false, seconds: (Date.now() - started) / 1000 }; // another build finished first
    unmountUnder(partial);
    removeRoot(dir);
    fs.renameSync(partial, dir);
    fs.writeFileSync(done, `${JSON.stringify({ hash: recipeHash(), recipe: RECIPE, builtAt: new Date().toISOString() }, null, 2)}\n`);
  } finally {
    if (fs.existsSync(partial)) removeRoot(partial);
  }
  const seconds = (Date.now() - started) / 1000;
  say(`built ${path.basename(dir)} in ${seconds.toFixed(0)} s`);
  return { dir, built: true, seconds };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${ensureArm64Root().dir}\n`);
}
