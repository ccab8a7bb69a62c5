// The fresh host's disk, one per Debian release the suite runs on (Debian 12 bookworm, Debian 13
// trixie): minbase from debootstrap with systemd as init, built once into the cache (outside the
// repository) and rebuilt when its recipe changes. The hosts cannot
// reach a mirror, so the image carries in its apt cache the packages knocker installs with apt-get
// (PostgreSQL, HAProxy); knocker's own apt-get then installs them from there. Every host boots a
// copy (an overlay) of it; what makes a host itself (name, machine id, SSH host keys, address) is
// written per host by harness/host.ts.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { recordProcess, type LabConfig } from './ledger.mjs';

/** The Debian releases the suite knows, oldest first; KNOCKER_E2E_RELEASES picks among them. */
export const RELEASES = {
  bookworm: 'Debian 12',
  trixie: 'Debian 13',
} as const;
export type Release = keyof typeof RELEASES;

/** KNOCKER_E2E_RELEASES (comma-separated codenames), by default every release above, in that order. */
export function e2eReleases(env: NodeJS.ProcessEnv = process.env): Release[] {
  const asked = (env.KNOCKER_E2E_RELEASES ?? '')
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean);
  if (asked.length === 0) return Object.keys(RELEASES) as Release[];
  const unknown = asked.filter((r) => !(r in RELEASES));
  if (unknown.length > 0) throw new Error(`KNOCKER_E2E_RELEASES: unknown release ${unknown.join(', ')} (known: ${Object.keys(RELEASES).join(', ')})`);
  return [...new Set(asked)] as Release[];
}

/** What every release's image is made of; only the suite differs. */
const BASE = {
  /** Bump when a step below changes meaning without changing its text. */
  revision: 1,
  variant: 'minbase',
  include: ['systemd', 'systemd-sysv', 'dbus', 'openssh-server', 'curl', 'ca-certificates', 'procps', 'iproute2'],
  /** What knocker installs with apt-get on a host: downloaded into the image's apt cache only. */
  cached: ['postgresql', 'haproxy'],
  chroot: [
    // debootstrap leaves the packages it installed in the cache: not wanted there.
    ['apt-get', 'clean'],
    ['apt-get', 'update', '-qq'],
    ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '--download-only', '-y', '-qq', 'postgresql', 'haproxy'],
    // Each host's address is a systemd-networkd file of its own (it survives a reboot, as a real one).
    ['systemctl', 'enable', 'systemd-networkd'],
  ],
  /** Made per host, so never shared by copies: removed from the image. */
  perHost: ['/etc/ssh/ssh_host_*', '/etc/machine-id', '/etc/hostname'],
} as const;

export function recipe(release: Release) {
  // The suite after the revision: bookworm's recipe (and so its cached image's hash) is unchanged.
  const { revision, ...rest } = BASE;
  return { revision, suite: release, ...rest };
}
export type Recipe = ReturnType<typeof recipe>;

export function recipeHash(release: Release): string {
  return crypto
    .createHash('sha256')
    .update(JSON.stringify(recipe(release)))
    .digest('hex')
    .slice(0, 12);
}

export interface Image {
  release: Release;
  dir: string;
  /** PostgreSQL's major version and HAProxy's version in the image's apt cache (from the archives' names). */
  postgres: string;
  haproxy: string;
  hash: string;
  /** Whether this run built it (else it came from the cache). */
  built: boolean;
  seconds: number;
}

function run(argv: string[], options: { log: string; ledger: string; marker: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const out = fs.openSync(options.log, 'a');
    fs.writeSync(out, `\n$ ${argv.join(' ')}\n`);
    // Its own process group: an interrupted run ends it and its children (dpkg) by that id.
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ['ignore', out, out],
      detached: true,
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' },
    });
    fs.closeSync(out);
    recordProcess(options.ledger, child.pid!, options.marker);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) return resolve();
      const tail = fs.readFileSync(options.log, 'utf8').trim().split('\n').slice(-15).join('\n');
      reject(new Error(`${argv.join(' ')} failed (${signal ?? `exit ${code}`}); the last lines of ${options.log}:\n${tail}`));
    });
  });
}

/** PostgreSQL's major version and HAProxy's version, read from the names of the cached archives. */
function cachedVersions(archivesDir: string, log: string): { postgres: string; haproxy: string } {
  const archives = fs.readdirSync(archivesDir);
  // postgresql-15 on Debian 12, postgresql-17 on Debian 13: whatever the release's `postgresql` depends on.
  const postgres = archives.map((name) => /^postgresql-(\d+)_.*\.deb$/.exec(name)?.[1]).find(Boolean);
  const haproxy = archives.map((name) => /^haproxy_(?:\d+:)?([^_-]+)[^_]*_.*\.deb$/.exec(decodeURIComponent(name))?.[1]).find(Boolean);
  if (!postgres) throw new Error(`the image's apt cache has no postgresql-<major> package after the download (see ${log})`);
  if (!haproxy) throw new Error(`the image's apt cache has no haproxy package after the download (see ${log})`);
  return { postgres, haproxy };
}

/** The cached image of a release's recipe, built first when missing (older recipes' images of it are removed). */
export async function ensureImage(config: LabConfig, release: Release, say: (line: string) => void = () => {}): Promise<Image> {
  const started = Date.now();
  const RECIPE = recipe(release);
  const hash = recipeHash(release);
  const dir = path.join(config.cacheDir, `${RECIPE.suite}-${hash}`);
  const done = `${dir}.json`;
  if (fs.existsSync(done) && fs.existsSync(dir)) {
    const versions = cachedVersions(path.join(dir, 'var/cache/apt/archives'), done);
    return { release, dir, hash, ...versions, built: false, seconds: 0 };
  }
  fs.mkdirSync(config.cacheDir, { recursive: true, mode: 0o755 });
  for (const entry of fs.readdirSync(config.cacheDir)) {
    if (entry.startsWith(`${RECIPE.suite}-`) && !entry.startsWith(path.basename(dir)))
      fs.rmSync(path.join(config.cacheDir, entry), { recursive: true, force: true });
  }
  const partial = `${dir}.partial`;
  const log = `${dir}.log`;
  fs.rmSync(partial, { recursive: true, force: true });
  fs.writeFileSync(log, `knocker e2e image ${hash}: ${JSON.stringify(RECIPE)}\n`);
  say(`building the ${RELEASES[release]} fresh-host image ${path.basename(dir)} (debootstrap from ${config.mirror}; log ${log})`);
  const ledger = { log, ledger: path.join(config.runDir, 'image-build.pid'), marker: partial };
  await run(['debootstrap', `--variant=${RECIPE.variant}`, `--include=${RECIPE.include.join(',')}`, RECIPE.suite, partial, config.mirror], ledger);
  for (const step of RECIPE.chroot) await run(['chroot', partial, ...step], ledger);
  for (const pattern of RECIPE.perHost) {
    const folder = path.join(partial, path.dirname(pattern));
    const match = new RegExp(`^${path.basename(pattern).replace(/\*/g, '.*')}$`);
    for (const name of fs.readdirSync(folder)) if (match.test(name)) fs.rmSync(path.join(folder, name));
  }
  // No name server: the hosts resolve nothing and reach nothing beyond their bridge.
  fs.writeFileSync(path.join(partial, 'etc/resolv.conf'), '');
  const versions = cachedVersions(path.join(partial, 'var/cache/apt/archives'), log);
  fs.rmSync(path.join(config.runDir, 'image-build.pid'), { force: true });
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(partial, dir);
  fs.writeFileSync(done, `${JSON.stringify({ hash, recipe: RECIPE, ...versions, builtAt: new Date().toISOString() }, null, 2)}\n`);
  const seconds = (Date.now() - started) / 1000;
  say(`built ${path.basename(dir)} (PostgreSQL ${versions.postgres}, HAProxy ${versions.haproxy}) in ${seconds.toFixed(0)} s`);
  return { release, dir, hash, ...versions, built: true, seconds };
}
