// Facts about the host knocker runs on: its distribution family (which package manager installs
// PostgreSQL and HAProxy), whether PID 1 is systemd, and free ports.
import fs from 'node:fs/promises';
import net from 'node:net';
import { run, type RunOptions } from './run.js';

export type PackageManager = 'apt-get' | 'dnf';

export interface OsRelease {
  id: string;
  idLike: string[];
  versionId: string;
  prettyName: string;
}

export function parseOsRelease(text: string): OsRelease {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (match) values.set(match[1]!, match[2]!.replace(/^["']|["']$/g, ''));
  }
  return {
    id: values.get('ID') ?? 'unknown',
    idLike: (values.get('ID_LIKE') ?? '').split(/\s+/).filter(Boolean),
    versionId: values.get('VERSION_ID') ?? '',
    prettyName: values.get('PRETTY_NAME') ?? values.get('ID') ?? 'unknown',
  };
}

export async function readOsRelease(): Promise<OsRelease | undefined> {
  for (const file of ['/etc/os-release', '/usr/lib/os-release']) {
    try {
      return parseOsRelease(await fs.readFile(file, 'utf8'));
    } catch {
      // try the next
    }
  }
  return undefined;
}

export function packageManagerFor(os: OsRelease | undefined): PackageManager | undefined {
  if (!os) return undefined;
  const family = [os.id, ...os.idLike];
  if (family.some((id) => id === 'debian' || id === 'ubuntu')) return 'apt-get';
  if (family.some((id) => ['rhel', 'fedora', 'centos', 'rocky', 'almalinux'].includes(id))) return 'dnf';
  return undefined;
}

/** Installs packages non-interactively with the host's package manager. */
export async function installPackages(manager: PackageManager, packages: string[], options: RunOptions = {}): Promise<void> {
  if (manager === 'apt-get') {
    const env = { ...options.env, DEBIAN_FRONTEND: 'noninteractive' };
    await run('apt-get', ['update', '-qq'], { ...options, env, timeoutMs: 600_000 });
    await run('apt-get', ['install', '-y', '-qq', ...packages], { ...options, env, timeoutMs: 1_200_000 });
  } else {
    await run('dnf', ['install', '-y', ...packages], { ...options, timeoutMs: 1_200_000 });
  }
}

/** True when PID 1 is systemd (services then go through systemctl). */
export async function isSystemdHost(): Promise<boolean> {
  try {
    const comm = (await fs.readFile('/proc/1/comm', 'utf8')).trim();
    return comm === 'systemd';
  } catch {
    return false;
  }
}

/** Whether a TCP port can be bound on an address right now. Resolves with the error code if not. */
export function probeListen(host: string, port: number): Promise<{ free: true } | { free: false; code: string }> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (error: NodeJS.ErrnoException) => resolve({ free: false, code: error.code ?? 'EUNKNOWN' }));
    server.listen({ host, port, exclusive: true }, () => {
      server.close(() => resolve({ free: true }));
    });
  });
}

/** A TCP port the kernel considers free on `host` right now. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
