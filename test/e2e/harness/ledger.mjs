// The fresh-hosts suite's ledger: what a run started on this machine (its hosts' systemd-nspawn
// processes, their overlay mounts, the bridge, the image build), written down as it is started, so
// that whoever ends the run — the suite's teardown, its SIGINT/SIGTERM handler, test/e2e/run.mjs
// after vitest, or the next run finding leftovers — ends exactly that, by process id and path.
// Plain JavaScript (types in ledger.d.mts) and synchronous: it runs in signal handlers, where the
// process exits right after, and from test/e2e/run.mjs, which node runs without a TypeScript step.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/**
 * The run's configuration. 198.18.0.0/24 is reserved for benchmarking (RFC 2544) and routed nowhere;
 * the main run uses its lower half, a nested run (the interruption test) the upper half, its own
 * bridge and its own folder.
 */
export function labConfig(env = process.env) {
  const nested = env.KNOCKER_E2E_LAB === 'nested';
  return {
    cacheDir: env.KNOCKER_E2E_CACHE ?? '/var/cache/knocker-e2e',
    runDir: nested ? '/var/tmp/knocker-e2e-nested' : '/var/tmp/knocker-e2e',
    bridge: nested ? 'knkbr1' : 'knkbr0',
    machineAddress: nested ? '198.18.0.129' : '198.18.0.1',
    prefixLength: 25,
    mirror: env.KNOCKER_E2E_MIRROR ?? 'http://deb.debian.org/debian',
  };
}

/** systemd-nspawn wants this folder; a run that had to make it removes it again. */
const NSPAWN_RUN_DIR = '/run/systemd/nspawn';

const ownerFile = (config) => path.join(config.runDir, 'owner');
export const hostsDir = (config) => path.join(config.runDir, 'hosts');
export const hostDir = (config, name) => path.join(hostsDir(config), name);
/** The folder a host boots from (the overlay of the image and the host's own changes). */
export const hostRoot = (config, name) => path.join(hostDir(config, name), 'root');

function sleepSync(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function readPid(file) {
  const pid = Number(fs.readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 1 ? pid : undefined;
}

function cmdline(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return undefined;
  }
}

function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Records a process this run started, with what its command line must hold to still be it. */
export function recordProcess(file, pid, marker) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${pid}\n${marker}\n`);
}

/** The recorded processes still running as recorded: a reused pid never matches its marker. */
function recordedProcesses(config) {
  const found = [];
  const files = [path.join(config.runDir, 'image-build.pid')];
  for (const name of fs.existsSync(hostsDir(config)) ? fs.readdirSync(hostsDir(config)) : []) files.push(path.join(hostDir(config, name), 'nspawn.pid'));
  for (const file of files) {
    if (!fs.existsSync(file)) continue;
    const [pidText, marker] = fs.readFileSync(file, 'utf8').split('\n');
    const pid = Number(pidText);
    if (!Number.isInteger(pid) || pid <= 1 || !alive(pid)) continue;
    if (cmdline(pid)?.some((arg) => arg.includes(marker))) found.push({ pid, file, group: file.endsWith('image-build.pid') });
  }
  return found;
}

function unescapeMount(text) {
  return text.replace(/\\([0-7]{3})/g, (_, octal) => String.fromCharCode(parseInt(octal, 8)));
}

/** Mount points under the run's folder or the image cache (an image build's /proc), deepest first. */
function ourMounts(config) {
  const prefixes = [`${config.runDir}/`, `${config.cacheDir}/`];
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => unescapeMount(line.split(' ')[4]))
    .filter((point) => prefixes.some((prefix) => point.startsWith(prefix)))
    .sort((a, b) => b.length - a.length);
}

/**
 * The cgroup hierarchies systemd uses — v2's, and on a hybrid machine v1's name=systemd — with the
 * group this process is in in each. systemd-nspawn --keep-unit runs a host in the group it was
 * started in; two hosts started from one group would share (and fight over) one tree.
 */
function systemdHierarchies() {
  const mine = fs
    .readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(':'));
  const found = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)) {
    const [before, after] = line.split(' - ');
    const [type, , options = ''] = after.split(' ');
    const mount = unescapeMount(before.split(' ')[4]);
    if (type === 'cgroup2') found.push({ mount, current: mine.find((m) => m[0] === '0')?.[2] ?? '/' });
    else if (type === 'cgroup' && options.split(',').includes('name=systemd'))
      found.push({ mount, current: mine.find((m) => m[1] === 'name=systemd')?.[2] ?? '/' });
  }
  return found;
}

const labCgroups = (config) => systemdHierarchies().map((h) => path.join(h.mount, path.basename(config.runDir)));

/**
 * Starts a host's systemd-nspawn (`start` spawns it) in a cgroup of its own, the lab's group
 * `<hierarchy>/<run folder name>/<machine>`, by moving this process there for the fork and back.
 */
export function spawnInOwnCgroup(config, machine, start) {
  const hierarchies = systemdHierarchies();
  for (const h of hierarchies) {
    const group = path.join(h.mount, path.basename(config.runDir), machine);
    removeCgroupTree(group);
    fs.mkdirSync(group, { recursive: true });
  }
  try {
    for (const h of hierarchies) fs.writeFileSync(path.join(h.mount, path.basename(config.runDir), machine, 'cgroup.procs'), `${process.pid}\n`);
    return start();
  } finally {
    for (const h of hierarchies) fs.writeFileSync(path.join(h.mount, h.current, 'cgroup.procs'), `${process.pid}\n`);
  }
}

/** Removes an emptied cgroup and every group below it (the host's systemd made them), deepest first. */
function removeCgroupTree(group) {
  if (!fs.existsSync(group)) return;
  for (const entry of fs.readdirSync(group, { withFileTypes: true })) if (entry.isDirectory()) removeCgroupTree(path.join(group, entry.name));
  try {
    fs.rmdirSync(group);
  } catch {
    // still has a process: its host is still stopping
  }
}

/** Removes a host's cgroups once it has stopped. */
export function removeHostCgroups(config, machine) {
  for (const lab of labCgroups(config)) removeCgroupTree(path.join(lab, machine));
}

function bridgeExists(config) {
  return fs.existsSync(`/sys/class/net/${config.bridge}`);
}

/** Ours when this run's folder says it made it, or when it carries this run's address. */
function bridgeIsOurs(config) {
  if (!bridgeExists(config)) return false;
  if (fs.existsSync(path.join(config.runDir, 'bridge'))) return true;
  const shown = spawnSync('ip', ['-o', '-4', 'addr', 'show', 'dev', config.bridge], { encoding: 'utf8' });
  return shown.stdout.includes(` ${config.machineAddress}/`);
}

/** What a run left on this machine, in words (empty: nothing). */
export function findLeftovers(config) {
  const left = [];
  for (const p of recordedProcesses(config)) left.push(`process ${p.pid} (${path.relative(config.runDir, p.file)})`);
  for (const point of ourMounts(config)) left.push(`mount ${point}`);
  if (bridgeIsOurs(config)) left.push(`bridge ${config.bridge}`);
  for (const group of labCgroups(config)) if (fs.existsSync(group)) left.push(`cgroup ${group}`);
  if (fs.existsSync(config.runDir)) left.push(`folder ${config.runDir}`);
  for (const entry of fs.existsSync(config.cacheDir) ? fs.readdirSync(config.cacheDir) : []) {
    if (entry.includes('.partial')) left.push(`unfinished image ${path.join(config.cacheDir, entry)}`);
  }
  return left;
}

function stopProcesses(config) {
  const stopped = [];
  const running = recordedProcesses(config);
  // systemd-nspawn turns SIGTERM into an orderly shutdown of its host (--kill-signal, SIGRTMIN+3
  // with --boot); an image build is a process group of its own (debootstrap and its dpkg).
  for (const p of running) {
    try {
      process.kill(p.group ? -p.pid : p.pid, 'SIGTERM');
    } catch {
      // gone meanwhile
    }
  }
  const deadline = Date.now() + 20_000;
  while (running.some((p) => alive(p.pid)) && Date.now() < deadline) sleepSync(100);
  for (const p of running) {
    if (alive(p.pid)) {
      try {
        process.kill(p.group ? -p.pid : p.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
      stopped.push(`killed process ${p.pid}`);
    } else {
      stopped.push(`stopped process ${p.pid}`);
    }
  }
  const killDeadline = Date.now() + 5_000;
  while (running.some((p) => alive(p.pid)) && Date.now() < killDeadline) sleepSync(50);
  return stopped;
}

/**
 * Ends everything the run in `config` started: its processes (hosts powered off in order, SIGKILL
 * after 20 s), then its mounts, its bridge, its folder and unfinished images. Returns what it did.
 */
export function cleanUp(config) {
  const done = stopProcesses(config);
  for (const point of ourMounts(config)) {
    const plain = spawnSync('umount', [point], { encoding: 'utf8' });
    if (plain.status !== 0) spawnSync('umount', ['--lazy', point]);
    done.push(`unmounted ${point}`);
  }
  if (bridgeIsOurs(config)) {
    spawnSync('ip', ['link', 'del', config.bridge]);
    done.push(`removed bridge ${config.bridge}`);
  }
  for (const group of labCgroups(config)) {
    if (!fs.existsSync(group)) continue;
    removeCgroupTree(group);
    done.push(`removed cgroup ${group}`);
  }
  const madeNspawnDir = fs.existsSync(path.join(config.runDir, 'made-nspawn-dir'));
  if (fs.existsSync(config.runDir)) {
    fs.rmSync(config.runDir, { recursive: true, force: true });
    done.push(`removed ${config.runDir}`);
  }
  // Only while no container uses it (nspawn keeps a folder per running machine in propagate/).
  const propagate = path.join(NSPAWN_RUN_DIR, 'propagate');
  const inUse = fs.existsSync(propagate) && fs.readdirSync(propagate).length > 0;
  if (madeNspawnDir && !inUse) fs.rmSync(NSPAWN_RUN_DIR, { recursive: true, force: true });
  for (const entry of fs.existsSync(config.cacheDir) ? fs.readdirSync(config.cacheDir) : []) {
    if (entry.includes('.partial')) {
      fs.rmSync(path.join(config.cacheDir, entry), { recursive: true, force: true });
      done.push(`removed unfinished image ${entry}`);
    }
  }
  return done;
}

/** The pid of the run that owns `config`'s folder and bridge, while it lives. */
export function liveOwner(config) {
  const owner = fs.existsSync(ownerFile(config)) ? readPid(ownerFile(config)) : undefined;
  return owner !== undefined && alive(owner) ? owner : undefined;
}

/**
 * Makes this process the owner of the run folder and bridge of `config`. Another live owner is
 * refused (two runs would share one bridge and the same addresses); a dead owner's leftovers are
 * cleaned up first, and returned so the run can say what it found.
 */
export function takeOwnership(config, pid = process.pid) {
  const owner = liveOwner(config);
  if (owner !== undefined && owner !== pid) {
    throw new Error(`another fresh-hosts run (pid ${owner}) owns ${config.runDir} and bridge ${config.bridge}; wait for it, or end it`);
  }
  const leftovers = findLeftovers(config);
  const cleaned = leftovers.length > 0 ? cleanUp(config) : [];
  fs.mkdirSync(config.runDir, { recursive: true, mode: 0o755 });
  fs.writeFileSync(ownerFile(config), `${pid}\n`);
  if (!fs.existsSync(NSPAWN_RUN_DIR)) {
    fs.mkdirSync(NSPAWN_RUN_DIR, { recursive: true, mode: 0o755 });
    fs.writeFileSync(path.join(config.runDir, 'made-nspawn-dir'), '');
  }
  return { leftovers, cleaned };
}

/** Notes that this run made the bridge (so cleanUp removes it even without its address). */
export function recordBridge(config) {
  fs.writeFileSync(path.join(config.runDir, 'bridge'), `${config.bridge}\n`);
}
