// The harness itself: fresh hosts really are separate Debian machines under systemd on one private
// network that leads nowhere, a reboot keeps a host's disk, and an interrupted run leaves nothing.
import { execa } from 'execa';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { REPO } from '../helpers/knocker.js';
import { waitFor } from '../helpers/server.js';
import type { Host } from './harness/host.js';
import { Lab, type E2eImage } from './harness/lab.js';
import { findLeftovers, labConfig } from './harness/ledger.mjs';

const config = labConfig();

/** The first line a TCP server sends, read from this machine. */
function banner(address: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: address, port, timeout: 5_000 });
    socket.once('data', (data) => {
      resolve(data.toString('utf8').split('\r\n')[0]!);
      socket.destroy();
    });
    socket.once('timeout', () => socket.destroy(new Error(`no banner from ${address}:${port}`)));
    socket.once('error', reject);
  });
}

/** The live processes of a process group. */
function processesInGroup(pgid: number): number[] {
  return fs
    .readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((pid) => {
      try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return fields[0] !== 'Z' && Number(fields[2]) === pgid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

function outsideAddresses(): string[] {
  const own = Object.entries(os.networkInterfaces())
    .filter(([name]) => name !== config.bridge && name !== 'lo')
    .flatMap(([, addresses]) => (addresses ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address));
  const nameServers = [...fs.readFileSync('/etc/resolv.conf', 'utf8').matchAll(/^nameserver\s+(\d+\.\d+\.\d+\.\d+)/gm)].map((m) => m[1]!);
  return ['9.9.9.9', ...own, ...nameServers];
}

/** No such process, or only its zombie (an orphan here is reparented to a PID 1 that may not reap it). */
function gone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

/** Two hosts of one release: each its own machine, on the bridge alone, rebooting with its disk. */
function freshHosts(image: E2eImage): void {
  const lab = new Lab(image.dir);
  let a: Host;
  let b: Host;

  beforeAll(async () => {
    [a, b] = (await lab.boot([
      ['host-a', 50],
      ['host-b', 51],
    ])) as [Host, Host];
  });
  afterAll(() => lab.destroy());

  test(`each is its own ${image.name} under systemd: PID 1, name, machine id, SSH host keys`, async () => {
    for (const host of [a, b]) {
      expect((await host.exec(['cat', '/proc/1/comm'])).stdout).toBe('systemd');
      expect((await host.exec(['systemctl', 'is-system-running'])).stdout).toBe('running');
      expect((await host.exec(['hostname'])).stdout).toBe(host.name);
      expect(host.read('/etc/os-release')).toMatch(new RegExp(`^VERSION_CODENAME=${image.release}$`, 'm'));
      // No Node on a fresh host: the package must bring its own.
      expect((await host.exec(['sh', '-c', 'command -v node nodejs'], { allowFailure: true })).stdout).toBe('');
    }
    expect(a.read('/etc/machine-id')).not.toBe(b.read('/etc/machine-id'));
    expect(a.read('/etc/ssh/ssh_host_ed25519_key.pub')).not.toBe(b.read('/etc/ssh/ssh_host_ed25519_key.pub'));
  });

  test('one address each on the bridge, no default route: nothing beyond the bridge is reachable', async () => {
    for (const host of [a, b]) {
      expect((await host.exec(['ip', '-4', '-o', 'addr', 'show', 'dev', 'host0'])).stdout).toContain(`inet ${host.address}/${config.prefixLength}`);
      expect((await host.exec(['ip', 'route', 'show', 'default'])).stdout).toBe('');
      // No route (asked of the routing table: no packet is sent) to a public address, this
      // machine's own addresses off the bridge, or its name servers.
      for (const outside of outsideAddresses()) {
        const route = await host.exec(['ip', 'route', 'get', outside], { allowFailure: true });
        expect(route.exitCode, `${host.name} has a route to ${outside}: ${route.stdout}`).not.toBe(0);
        expect(route.stderr).toMatch(/unreachable/i);
      }
      expect(host.read('/etc/resolv.conf')).toBe('');
    }
  });

  test('TCP between the hosts, and from this machine to each', async () => {
    // ssh-keyscan from one host to the other: the key it gets is that host's own.
    const scanned = await a.exec(['ssh-keyscan', '-t', 'ed25519', b.address]);
    expect(scanned.stdout).toContain(b.read('/etc/ssh/ssh_host_ed25519_key.pub').split(' ')[1]);
    for (const host of [a, b]) expect(await banner(host.address, 22)).toMatch(/^SSH-2\.0-OpenSSH/);
  });

  test('a reboot from inside brings the host back by itself, with its disk and its address', async () => {
    b.write('/var/lib/e2e/marker', 'before the reboot\n');
    // /run is a tmpfs of the running system: gone after a reboot, unlike the disk.
    await b.exec(['touch', '/run/e2e-this-boot']);
    await b.reboot();
    expect(b.boots).toBe(2);
    expect((await b.exec(['test', '-e', '/run/e2e-this-boot'], { allowFailure: true })).exitCode).not.toBe(0);
    expect(b.read('/var/lib/e2e/marker')).toBe('before the reboot\n');
    expect((await b.exec(['ip', '-4', '-o', 'addr', 'show', 'dev', 'host0'])).stdout).toContain(`inet ${b.address}/`);
    await waitFor('host-b to answer on port 22 again', () => banner(b.address, 22));
    expect((await a.exec(['ssh-keyscan', '-t', 'ed25519', b.address])).stdout).toContain('ssh-ed25519');
  });
}

// One release after the other: its hosts are powered off before the next release's boot.
for (const image of inject('e2eImages')) describe(`fresh ${image.name} hosts (${image.release})`, () => freshHosts(image));

describe('an interrupted run', () => {
  test.each([
    ['Ctrl-C (SIGINT to its process group)', 'SIGINT', true],
    ['SIGTERM to vitest alone', 'SIGTERM', false],
  ] as const)('a run interrupted with %s powers off its hosts and removes their mounts, cgroups, the bridge and the folders', async (_how, signal, group) => {
    const nested = labConfig({ ...process.env, KNOCKER_E2E_LAB: 'nested' });
    const ready = path.join(config.runDir, `nested-ready-${signal}.json`);
    const run = execa(process.execPath, [path.join(REPO, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--config', 'test/e2e/fixtures/vitest.config.ts'], {
      cwd: REPO,
      env: { KNOCKER_E2E_LAB: 'nested', KNOCKER_E2E_PACKAGES: 'none', KNOCKER_E2E_READY: ready },
      // Its own process group, as a terminal's foreground job: Ctrl-C reaches every process of it.
      detached: true,
      reject: false,
      all: true,
    });
    try {
      const started = await waitFor(
        'the nested run to boot its host',
        () =>
          fs.existsSync(ready) ? (JSON.parse(fs.readFileSync(ready, 'utf8')) as { address: string; root: string; nspawn: number; init: number }) : undefined,
        180_000,
      );
      expect(await banner(started.address, 22)).toMatch(/^SSH-2\.0/);
      expect(findLeftovers(nested)).toEqual(expect.arrayContaining([`bridge ${nested.bridge}`, `mount ${started.root}`, `folder ${nested.runDir}`]));
      process.kill(group ? -run.pid! : run.pid!, signal);
      const result = await run;
      expect(result.exitCode, result.all).not.toBe(0);
      expect(result.all).toContain(`${signal}: powering off the hosts`);
      // Nothing of the run goes on: its worker neither (it would boot what its test boots next).
      await waitFor('every process of the nested run to end', () => (processesInGroup(run.pid!).length === 0 ? true : undefined), 30_000);
      expect(findLeftovers(nested)).toEqual([]);
      expect(gone(started.nspawn)).toBe(true);
      expect(gone(started.init)).toBe(true);
      expect(fs.existsSync(`/sys/class/net/${nested.bridge}`)).toBe(false);
      expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(nested.runDir);
      // It was powered off in order (systemd's own shutdown), not killed.
      expect(result.all).not.toContain('killed process');
    } finally {
      if (run.exitCode === undefined && run.pid) process.kill(-run.pid, 'SIGKILL');
    }
  });
});
