// One fresh Debian host: a copy of the image (an overlay: the image below, the host's own changes
// above, so a reboot keeps them), booted with systemd-nspawn --boot (systemd as its PID 1) in its own
// network namespace, its veth on the lab's bridge with one address, no default route. Commands run
// inside as root through nsenter into all its namespaces, with a clean environment as on a fresh
// login. Files copied in go where the host sees them (never /tmp or /run: tmpfs inside).
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { hostDir, hostRoot, recordProcess, removeHostCgroups, spawnInOwnCgroup, type LabConfig } from './ledger.mjs';

export const HOST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Folders the host mounts over (tmpfs, virtual): a file put there from outside is hidden inside. */
const HIDDEN_INSIDE = ['/tmp', '/run', '/dev', '/proc', '/sys'];
const BOOT_TIMEOUT_MS = 90_000;
const SHUTDOWN_TIMEOUT_MS = 60_000;
/** systemd-nspawn's exit status when the host rebooted itself. */
const REBOOTED = 133;

export interface ExecOptions {
  input?: string;
  env?: Record<string, string>;
  /** Do not throw on a non-zero exit. */
  allowFailure?: boolean;
  timeoutMs?: number;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

function childrenOf(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export class Host {
  readonly dir: string;
  /** Its disk as this machine sees it. */
  readonly root: string;
  readonly machine: string;
  private nspawn: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;
  /** PID (on this machine) of the host's systemd while it runs. */
  init: number | undefined;
  boots = 0;

  constructor(
    readonly config: LabConfig,
    readonly name: string,
    readonly address: string,
  ) {
    this.dir = hostDir(config, name);
    this.root = hostRoot(config, name);
    // The bridge's end of the host's veth is "vb-<machine>", at most 15 characters.
    this.machine = `knk-${name}`;
    if (this.machine.length > 12) throw new Error(`host name ${name} is too long for its link name`);
  }

  /** Makes its disk from the image and what makes it this host: name, machine id, SSH host keys, address. */
  async create(imageDir: string): Promise<void> {
    for (const sub of ['upper', 'work', 'root']) fs.mkdirSync(path.join(this.dir, sub), { recursive: true, mode: 0o755 });
    await execa('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${imageDir},upperdir=${this.dir}/upper,workdir=${this.dir}/work`, this.root]);
    this.write('/etc/hostname', `${this.name}\n`);
    // As Debian's installer writes it: the host's own name on 127.0.1.1.
    this.write('/etc/hosts', `127.0.0.1\tlocalhost\n127.0.1.1\t${this.name}\n\n::1\tlocalhost ip6-localhost ip6-loopback\n`);
    this.write('/etc/machine-id', `${crypto.randomBytes(16).toString('hex')}\n`, 0o444);
    this.write(
      '/etc/systemd/network/10-host0.network',
      ['[Match]', 'Name=host0', '', '[Network]', `Address=${this.address}/${this.config.prefixLength}`, 'LinkLocalAddressing=no', 'IPv6AcceptRA=no', ''].join(
        '\n',
      ),
    );
    await execa('chroot', [this.root, 'ssh-keygen', '-A'], { env: { PATH: HOST_PATH } });
  }

  /** Writes a file into the host's disk (from outside; visible inside at once). */
  write(file: string, content: string | Buffer, mode = 0o644): void {
    const real = this.real(file);
    fs.mkdirSync(path.dirname(real), { recursive: true });
    fs.writeFileSync(real, content, { mode });
    fs.chmodSync(real, mode);
  }

  read(file: string): string {
    return fs.readFileSync(this.real(file), 'utf8');
  }

  /** Copies a file of this machine into the host. */
  copyIn(local: string, file: string): void {
    const real = this.real(file);
    fs.mkdirSync(path.dirname(real), { recursive: true });
    fs.copyFileSync(local, real);
  }

  private real(file: string): string {
    if (!path.isAbsolute(file)) throw new Error(`not an absolute path: ${file}`);
    if (HIDDEN_INSIDE.some((dir) => file === dir || file.startsWith(`${dir}/`)))
      throw new Error(`${file} would be hidden inside the host (${file.split('/')[1]} is mounted over there)`);
    return path.join(this.root, file);
  }

  get running(): boolean {
    return this.nspawn !== undefined;
  }

  /** Boots it and waits until systemd says the system is running (every unit started). */
  async boot(): Promise<void> {
    if (this.nspawn) throw new Error(`${this.name} is already running`);
    const consoleLog = fs.openSync(path.join(this.dir, 'console.log'), 'a');
    const child = spawnInOwnCgroup(this.config, this.machine, () =>
      spawn(
        'systemd-nspawn',
        [
          '--boot',
          `--directory=${this.root}`,
          `--machine=${this.machine}`,
          `--network-bridge=${this.config.bridge}`,
          // PID 1 of this machine is not systemd: nothing to register with, no unit to move into.
          '--register=no',
          '--keep-unit',
          '--resolv-conf=off',
          '--timezone=off',
          '--link-journal=no',
          '--console=read-only',
        ],
        // Its own process group: a Ctrl-C in the terminal reaches the suite, which powers it off in order.
        { stdio: ['ignore', consoleLog, consoleLog], detached: true },
      ),
    );
    fs.closeSync(consoleLog);
    recordProcess(path.join(this.dir, 'nspawn.pid'), child.pid!, `--directory=${this.root}`);
    this.nspawn = child;
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    void this.exited.then(() => {
      if (this.nspawn === child) {
        this.nspawn = undefined;
        this.init = undefined;
      }
    });
    this.boots += 1;
    const deadline = Date.now() + BOOT_TIMEOUT_MS;
    this.init = await this.findInit(child.pid!, deadline);
    let state = '';
    while (Date.now() < deadline) {
      const result = await this.exec(['systemctl', 'is-system-running', '--wait'], { allowFailure: true, timeoutMs: Math.max(1_000, deadline - Date.now()) });
      state = result.stdout.trim();
      if (state === 'running') return;
      if (state === 'degraded') {
        const failed = await this.exec(['systemctl', '--failed', '--no-legend', '--plain'], { allowFailure: true });
        throw new Error(`${this.name} booted degraded; failed units:\n${failed.stdout}`);
      }
      // "Failed to connect to bus" while systemd is still setting itself up: ask again.
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${this.name} did not finish booting within ${BOOT_TIMEOUT_MS / 1000} s (state: ${state || 'no answer'}); console:\n${this.consoleTail()}`);
  }

  consoleTail(lines = 30): string {
    return fs.readFileSync(path.join(this.dir, 'console.log'), 'utf8').split('\n').slice(-lines).join('\n');
  }

  /** The host's systemd: nspawn's child in the host's PID namespace, PID 1 there, once it is systemd. */
  private async findInit(nspawn: number, deadline: number): Promise<number> {
    while (Date.now() < deadline) {
      if (!this.nspawn) throw new Error(`systemd-nspawn for ${this.name} exited while booting; console:\n${this.consoleTail()}`);
      for (const pid of childrenOf(nspawn)) {
        try {
          const nsPid = /^NSpid:\s+(.*)$/m
            .exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
            ?.trim()
            .split(/\s+/)
            .pop();
          if (nsPid === '1' && fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'systemd') return pid;
        } catch {
          // that child is gone (nspawn's intermediate process)
        }
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`${this.name}: systemd did not start; console:\n${this.consoleTail()}`);
  }

  private nsenter(argv: string[]): string[] {
    if (this.init === undefined) throw new Error(`${this.name} is not running`);
    return ['-t', String(this.init), '-a', '--wdns=/root', '--', ...argv];
  }

  /** A fresh root login's environment; the variables travel in the environment, never in argv. */
  private environment(env: Record<string, string> = {}): Record<string, string> {
    return { PATH: HOST_PATH, HOME: '/root', USER: 'root', LOGNAME: 'root', LANG: 'C.UTF-8', ...env };
  }

  /** Runs a program inside as root (argv, never a shell string), in a clean environment. */
  async exec(argv: string[], options: ExecOptions = {}): Promise<ExecResult> {
    const result = await execa('nsenter', this.nsenter(argv), {
      env: this.environment(options.env),
      extendEnv: false,
      input: options.input ?? '',
      reject: false,
      timeout: options.timeoutMs ?? 300_000,
      stripFinalNewline: true,
    });
    const out = { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
    if (out.exitCode !== 0 && !options.allowFailure) {
      throw new Error(`${this.name}: ${argv.join(' ')} exited ${result.timedOut ? 'on its timeout' : out.exitCode}\n${out.stderr || out.stdout}`);
    }
    return out;
  }

  /** Starts a program inside and leaves it running; `stop()` ends it (by its pid). */
  start(argv: string[], env: Record<string, string> = {}): { child: ChildProcess; stop(): void } {
    const child = spawn('nsenter', this.nsenter(argv), { stdio: ['ignore', 'pipe', 'pipe'], env: this.environment(env) });
    return {
      child,
      stop: () => {
        // nsenter forks the program (it enters a PID namespace) and waits: end the program itself.
        for (const pid of child.pid === undefined ? [] : childrenOf(child.pid)) process.kill(pid, 'SIGTERM');
      },
    };
  }

  /** The command line for a terminal on this machine that runs `argv` inside (tmux). */
  terminalCommand(argv: string[]): string[] {
    const env = this.environment({ TERM: 'xterm-256color' });
    return ['nsenter', ...this.nsenter(['env', '-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv])];
  }

  /** What the host's systemd exits with, once it has stopped. */
  private async stopped(): Promise<number | null> {
    const exited = this.exited;
    if (!exited) return null;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.name} did not stop within ${SHUTDOWN_TIMEOUT_MS / 1000} s; console:\n${this.consoleTail()}`)),
        SHUTDOWN_TIMEOUT_MS,
      );
    });
    try {
      return await Promise.race([exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** `systemctl poweroff` inside: every unit stopped in order, then the host is gone from the network. */
  async powerOff(): Promise<void> {
    if (!this.nspawn) return;
    await this.exec(['systemctl', 'poweroff'], { allowFailure: true });
    const code = await this.stopped();
    if (code !== 0) throw new Error(`${this.name}: systemd-nspawn exited ${code} on power-off; console:\n${this.consoleTail()}`);
  }

  /** Pulls the plug: the host's systemd and everything under it killed at once, nothing stopped in order. */
  async powerCut(): Promise<void> {
    if (this.init === undefined) throw new Error(`${this.name} is not running`);
    process.kill(this.init, 'SIGKILL');
    await this.stopped();
  }

  /** `systemctl reboot` inside, then the machine comes up again from the same disk. */
  async reboot(): Promise<void> {
    if (!this.nspawn) throw new Error(`${this.name} is not running`);
    await this.exec(['systemctl', 'reboot'], { allowFailure: true });
    const code = await this.stopped();
    if (code !== REBOOTED) throw new Error(`${this.name}: systemd-nspawn exited ${code} instead of rebooting; console:\n${this.consoleTail()}`);
    await this.boot();
  }

  /** Powers it off if it runs (SIGTERM to nspawn when it does not answer), unmounts and removes its disk. */
  async destroy(): Promise<void> {
    if (this.nspawn) {
      await this.powerOff().catch(async () => {
        this.nspawn?.kill('SIGKILL');
        await this.exited;
      });
    }
    removeHostCgroups(this.config, this.machine);
    if (fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${this.root} `)) await execa('umount', [this.root]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
