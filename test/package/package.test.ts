// The package as an operator gets it: `scripts/package.mjs` builds the single executable and the
// .deb (into a temporary folder), the .deb is unpacked as dpkg would lay it out, and the installed
// /opt/knocknoc/knocker/knocker is run with no Node at all: its help, an unattended option-1
// install on a sandbox root (real PostgreSQL, the web node started from the executable through its
// knocknoc-server link), exposedb through the administrator helper, status, and the installer's
// first screen in tmux. The package's .deb on a booted Debian 12 is the e2e suite's (test/e2e).
// The arm64 package is test/package/package-arm64.test.ts's.
import { execa } from 'execa';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { fetchStatus } from '../../src/server/probe.js';
import { freePort } from '../../src/system/host.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { cleanEnv, knocker, REPO, type RunResult } from '../helpers/knocker.js';
import { destroyRoot, makeRoot } from '../helpers/roots.js';
import { makeTempDir } from '../helpers/temp.js';
import { openTerminal } from '../helpers/tmux.js';

const VERSION = (JSON.parse(await fs.readFile(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const ADDRESS = '127.0.0.180';

let out: string;
let host: string;
let executable: string;
const roots: Root[] = [];

beforeAll(async () => {
  out = await makeTempDir('knocker-package-');
  await execa(process.execPath, [path.join(REPO, 'scripts', 'package.mjs'), '--arch', 'amd64', '--out', out], { cwd: REPO });
  // Unpacked as dpkg installs it (links included), into a folder standing for the host's /.
  host = await makeTempDir('knocker-host-');
  await execa('dpkg-deb', ['-x', path.join(out, `knocker_${VERSION}_amd64.deb`), host]);
  executable = path.join(host, 'opt/knocknoc/knocker/knocker');
}, 180_000);

afterAll(async () => {
  for (const root of roots) {
    await knocker(['service', 'stop', '--root', root.dir], { executable }).catch(() => undefined);
    await destroyRoot(root);
  }
  for (const dir of [out, host]) if (dir) await fs.rm(dir, { recursive: true, force: true });
});

const packaged = (args: string[]) => knocker(args, { executable });
const same = (result: RunResult) => ({ exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr });

describe('the .deb', () => {
  test('holds the executable, its knocknoc-server link and /usr/sbin/knocker, and depends on no nodejs', async () => {
    expect(await fs.readlink(path.join(host, 'opt/knocknoc/knocker/knocknoc-server'))).toBe('knocker');
    expect(await fs.readlink(path.join(host, 'usr/sbin/knocker'))).toBe('/opt/knocknoc/knocker/knocker');
    const deb = path.join(out, `knocker_${VERSION}_amd64.deb`);
    const fields = (await execa('dpkg-deb', ['--field', deb, 'Package', 'Version', 'Architecture', 'Depends'])).stdout;
    expect(fields).toBe(`Package: knocker\nVersion: ${VERSION}\nArchitecture: amd64\nDepends: libc6 (>= 2.28), libstdc++6 (>= 7), libgcc-s1`);
    // The bare executable beside it is the same file.
    const sha256 = async (file: string) =>
      crypto
        .createHash('sha256')
        .update(await fs.readFile(file))
        .digest('hex');
    expect(await sha256(path.join(out, `knocker-${VERSION}-linux-x64`))).toBe(await sha256(executable));
  });

  test("rotates the logs in /var/log/knocknoc with the host's logrotate: a conffile, copied and truncated in place", async () => {
    const rotate = await fs.readFile(path.join(host, 'etc/logrotate.d/knocknoc'), 'utf8');
    expect(rotate).toMatch(/^\/var\/log\/knocknoc\/\*\.log \{$/m);
    expect(rotate).toMatch(/^\s+copytruncate$/m);
    expect(rotate).toMatch(/^\s+maxsize 10M$/m);
    const deb = path.join(out, `knocker_${VERSION}_amd64.deb`);
    const control = await makeTempDir('knocker-control-');
    try {
      await execa('dpkg-deb', ['--control', deb, control]);
      expect(await fs.readFile(path.join(control, 'conffiles'), 'utf8')).toBe('/etc/logrotate.d/knocknoc\n');
    } finally {
      await fs.rm(control, { recursive: true, force: true });
    }
  });
});

describe('the executable', () => {
  test("--version, and every command's --help exactly as from the checkout", async () => {
    expect(same(await packaged(['--version']))).toEqual({ exitCode: 0, stdout: VERSION, stderr: '' });
    const top = await packaged(['--help']);
    expect(same(top)).toEqual(same(await knocker(['--help'])));
    const commands = [...top.stdout.split('Commands:')[1]!.matchAll(/^ {2}(\w+)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    expect(commands).toEqual(expect.arrayContaining(['install', 'service', 'exposedb', 'status', 'upgrade', 'haproxy']));
    const haproxy = (await knocker(['haproxy', '--help'])).stdout;
    const haproxyCommands = [...haproxy.split('Commands:')[1]!.matchAll(/^ {2}(\w+)/gm)].map((m) => ['haproxy', m[1]!]).filter(([, c]) => c !== 'help');
    expect(haproxyCommands.length).toBeGreaterThan(3);
    for (const words of [...commands.map((c) => [c]), ...haproxyCommands]) {
      expect(same(await packaged([...words, '--help'])), words.join(' ')).toEqual(same(await knocker([...words, '--help'])));
    }
  });

  test('is knocknoc-server when started through its link, or as `knocker __server`', async () => {
    const server = path.join(host, 'opt/knocknoc/knocker/knocknoc-server');
    const viaLink = await execa(server, ['--help'], { env: cleanEnv(), extendEnv: false, reject: false });
    const fromCheckout = await execa(process.execPath, [path.join(REPO, 'bin', 'knocknoc-server'), '--help'], {
      env: cleanEnv(),
      extendEnv: false,
      reject: false,
    });
    expect(viaLink.stdout).toBe(fromCheckout.stdout);
    expect(viaLink.stdout).toMatch(/^Usage: knocknoc-server/);
    expect(same(await packaged(['__server', '--version']))).toEqual({ exitCode: 0, stdout: VERSION, stderr: '' });
  });

  test('installs option 1 unattended on a sandbox root, runs the web node from itself, exposes the database through the admin helper, and reports status', async () => {
    const root = await makeRoot();
    roots.push(root);
    const port = await freePort(ADDRESS);
    const install = await packaged(['install', '--root', root.dir, '--listen', `${ADDRESS}:${port}`, '--server-name', 'web-sea']);
    expect(install.stdout).toBe('');
    expect(install.exitCode).toBe(0);

    // The web node is the packaged executable, started as knocknoc-server (no node, no checkout).
    const pid = Number((await fs.readFile(root.path(PATHS.serverPid), 'utf8')).trim());
    expect(await fs.realpath(`/proc/${pid}/exe`)).toBe(await fs.realpath(executable));
    const argv = (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    expect(argv[0]).toBe(path.join(host, 'opt/knocknoc/knocker/knocknoc-server'));
    const status = await fetchStatus({ host: ADDRESS, port, family: 4 }, 5_000);
    expect(status.http).toBe(200);
    expect(status.body).toMatchObject({ status: 'ok', server: 'web-sea', version: VERSION, schemaVersion: 2, versionMatch: true });

    // As root, exposedb opens its administrator session through `knocker __admin-helper`.
    const init = await packaged(['exposedb', '--root', root.dir, '--init']);
    expect(init.exitCode).toBe(0);
    expect(init.stdout).toMatch(
      new RegExp(`^postgres://knocknoc_remote:[A-Za-z0-9_-]{32}@${ADDRESS.replace(/\./g, '\\.')}:\\d+/knocknoc\\?sslmode=verify-full$`),
    );
    const add = await packaged(['exposedb', '--root', root.dir, '--add', '127.0.0.181/32']);
    expect(add.exitCode).toBe(0);
    expect(add.stdout).toContain('Allowed 127.0.0.181/32');
    expect((await packaged(['exposedb', '--root', root.dir, '--list'])).stdout).toBe('127.0.0.181/32');

    const once = await packaged(['status', '--once', '--root', root.dir]);
    expect(once.stderr).toBe('');
    expect(once.exitCode).toBe(0);
    expect(once.stdout).toMatch(new RegExp(`^✔\\s+web-sea\\s+ok\\s+${VERSION.replace(/\./g, '\\.')}\\s+200`, 'm'));
  });

  test("draws the installer's first screen in a real terminal as the checkout does", async () => {
    const root = await makeRoot();
    roots.push(root);
    const env = cleanEnv({ TERM: 'xterm-256color' });
    const screens: string[] = [];
    for (const command of [[executable], [process.execPath, path.join(REPO, 'bin', 'knocker')]]) {
      const terminal = await openTerminal([...command, 'install', '--root', root.dir], { env });
      try {
        screens.push(await terminal.waitFor('Enter IP and port to listen on (default: 127.0.0.1:8756):'));
      } finally {
        await terminal.close();
      }
    }
    expect(screens[0]).toContain('Please answer the following questions to configure Knocknoc correctly.');
    expect(screens[0]).toBe(screens[1]);
  });
});
