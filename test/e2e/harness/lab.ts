// The hosts of one test file, on the run's bridge (made by test/e2e/global-setup.ts): each a fresh
// copy of the image with its own address, all powered off and removed by `destroy()` (afterAll).
// What the run made beyond them (bridge, folder) its global teardown removes; a host left running
// by a worker that died is ended from the ledger.
import { inject } from 'vitest';
import { Host } from './host.js';
import type { Release } from './image.js';
import { labConfig, type LabConfig } from './ledger.mjs';

export class Lab {
  readonly config: LabConfig;
  readonly hosts: Host[] = [];

  constructor(
    /** By default the first release's image (KNOCKER_E2E_RELEASES). */
    readonly imageDir: string = inject('e2eImages')[0]!.dir,
    config: LabConfig = labConfig(),
  ) {
    this.config = config;
  }

  /** This lab's address `offset` places after the machine's own on the bridge (10 → 198.18.0.11). */
  address(offset: number): string {
    const parts = this.config.machineAddress.split('.').map(Number);
    const size = 2 ** (32 - this.config.prefixLength);
    const last = parts[3]! + offset;
    if (offset <= 0 || last % size >= size - 1) throw new Error(`offset ${offset} is outside ${this.config.machineAddress}/${this.config.prefixLength}`);
    return [...parts.slice(0, 3), last].join('.');
  }

  /** A fresh host, not yet booted. */
  async host(name: string, offset: number): Promise<Host> {
    const host = new Host(this.config, name, this.address(offset));
    this.hosts.push(host);
    await host.create(this.imageDir);
    return host;
  }

  /** Fresh hosts, booted together. */
  async boot(specs: Array<[name: string, offset: number]>): Promise<Host[]> {
    const hosts = await Promise.all(specs.map(([name, offset]) => this.host(name, offset)));
    await Promise.all(hosts.map((h) => h.boot()));
    return hosts;
  }

  /**
   * Lets root on `from` log in as root on each of `to` with SSH: a key made on `from` (as an operator
   * would), its public half in their authorized_keys, their host keys in `from`'s known_hosts.
   */
  async trustSsh(from: Host, to: Host[]): Promise<void> {
    const key = '/root/.ssh/id_ed25519';
    if ((await from.exec(['test', '-e', key], { allowFailure: true })).exitCode !== 0) {
      await from.exec(['install', '-d', '-m', '0700', '/root/.ssh']);
      await from.exec(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `root@${from.name}`, '-f', key]);
    }
    const publicKey = from.read(`${key}.pub`);
    for (const host of to) {
      await host.exec(['install', '-d', '-m', '0700', '/root/.ssh']);
      await host.exec(['tee', '-a', '/root/.ssh/authorized_keys'], { input: publicKey });
      await host.exec(['chmod', '0600', '/root/.ssh/authorized_keys']);
      const hostKey = host.read('/etc/ssh/ssh_host_ed25519_key.pub').split(' ').slice(0, 2).join(' ');
      await from.exec(['tee', '-a', '/root/.ssh/known_hosts'], { input: `${host.address} ${hostKey}\n` });
    }
  }

  async destroy(): Promise<void> {
    const results = await Promise.allSettled(this.hosts.map((h) => h.destroy()));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length > 0)
      throw new AggregateError(
        failed.map((f) => f.reason),
        `${failed.length} hosts could not be removed`,
      );
  }
}

export interface E2eImage {
  /** Debian's codename: bookworm, trixie. */
  release: Release;
  /** "Debian 12". */
  name: string;
  dir: string;
  /** PostgreSQL's major version ("15") and HAProxy's version ("2.6.12") its apt cache holds. */
  postgres: string;
  haproxy: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    /**
     * The fresh-host images, one per release the run covers (KNOCKER_E2E_RELEASES), in that order;
     * every host is a copy of one (harness/image.ts). Hosts of two releases never run at once.
     */
    e2eImages: E2eImage[];
    /** The package under test: release/knocker_<version>_amd64.deb from `npm run package`. */
    e2eDeb: string;
    e2eVersion: string;
    /** "The next release": the same package built with a higher version and one more migration. */
    e2eNextDeb: string;
    e2eNextVersion: string;
  }
}
