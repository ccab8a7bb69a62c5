// The fresh host's disk: Debian 12 (bookworm) minbase from debootstrap with systemd as init, built
// once into the cache (outside the repository) and rebuilt when its recipe changes. The hosts cannot
// reach a mirror, so the image carries in its apt cache the packages knocker installs with apt-get
// (PostgreSQL, HAProxy); knocker's own apt-get then installs them from there. Every host boots a
// copy (an overlay) of it; what makes a host itself (name, machine id, SSH host keys, address) is
// written per host by harness/host.ts.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { recordProcess, type LabConfig } from './ledger.mjs';

export const RECIPE = {
  /** Bump when a step below changes meaning without changing its text. */
  revision: 1,
  suite: 'bookworm',
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

export function recipeHash(): string {
  return crypto.createHash('sha256').update(JSON.stringify(RECIPE)).digest('hex').slice(0, 12);
}

export interface Image {
  dir: string;
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
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', out, out], detached: true, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' } });
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

/** The cached image of this recipe, built first when missing (older recipes' images are removed). */
export async function ensureImage(config: LabConfig, say: (line: string) => void = () => {}): Promise<Image> {
  const started = Date.now();
  const hash = recipeHash();
  const dir = path.join(config.cacheDir, `${RECIPE.suite}-${hash}`);
  const done = `${dir}.json`;
  if (fs.existsSync(done) && fs.existsSync(dir)) return { dir, hash, built: false, seconds: 0 };
  fs.mkdirSync(config.cacheDir, { recursive: true, mode: 0o755 });
  for (const entry of fs.readdirSync(config.cacheDir)) {
    if (entry.startsWith(`${RECIPE.suite}-`) && !entry.startsWith(path.basename(dir))) fs.rmSync(path.join(config.cacheDir, entry), { recursive: true, force: true });
  }
  const partial = `${dir}.partial`;
  const log = `${dir}.log`;
  fs.rmSync(partial, { recursive: true, force: true });
  fs.writeFileSync(log, `knocker e2e image ${hash}: ${JSON.stringify(RECIPE)}\n`);
  say(`building the fresh-host image ${path.basename(dir)} (debootstrap from ${config.mirror}; log ${log})`);
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
  const archives = fs.readdirSync(path.join(partial, 'var/cache/apt/archives'));
  for (const wanted of [/^postgresql-15_.*\.deb$/, /^haproxy_.*\.deb$/]) {
    if (!archives.some((name) => wanted.test(name))) throw new Error(`the image's apt cache lacks ${wanted} after the download (see ${log})`);
  }
  fs.rmSync(path.join(config.runDir, 'image-build.pid'), { force: true });
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(partial, dir);
  fs.writeFileSync(done, `${JSON.stringify({ hash, recipe: RECIPE, builtAt: new Date().toISOString() }, null, 2)}\n`);
  const seconds = (Date.now() - started) / 1000;
  say(`built ${path.basename(dir)} in ${seconds.toFixed(0)} s`);
  return { dir, hash, built: true, seconds };
}
