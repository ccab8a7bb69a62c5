// Faults on real processes (issue 12): knocker killed with SIGKILL at every step boundary and in the
// middle of its long steps (initdb, pg_ctl, the admin session, the server's start, haproxy -c), its
// PostgreSQL killed mid-step, and a full disk, for install, exposedb and haproxy. After each, the
// next run must succeed and leave the host as wanted. Kills at boundaries use the plan runner's
// KNOCKER_TEST_KILL_AT hook; kills mid-step wait for the step's own child process to be seen.
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, test } from 'vitest';
import { KnocknocConf } from '../../src/config/knocknoc-conf.js';
import { withClient } from '../../src/postgres/connect.js';
import { freePort } from '../../src/system/host.js';
import { PATHS, Root } from '../../src/system/root.js';
import { appUrl, asNode, hbaFile, installPrimary, rootAdmin, url } from '../helpers/exposedb.js';
import { KNOCKER, cleanEnv, knocker } from '../helpers/knocker.js';
import { destroyRoot, useRoots } from '../helpers/roots.js';
import { request } from '../helpers/server.js';
import { makeTempDir } from '../helpers/temp.js';

const newRoot = useRoots();
let faults = 0;
afterEach(() => {
  if (faults > 0) console.log(`faults injected in this test: ${faults}`);
  faults = 0;
});

interface Outcome {
  exitCode: number | undefined;
  signal: string | undefined;
  stdout: string;
  stderr: string;
}

async function commandLines(): Promise<Array<{ pid: number; argv: string[] }>> {
  // Every process's command line read at once, not one after another: a scan must take far less
  // than the shortest step it looks for (pg_ctl start lasts ~0.2 s) even on a busy machine.
  const entries = (await fs.readdir('/proc')).filter((entry) => /^\d+$/.test(entry));
  const lines = await Promise.all(entries.map((entry) => fs.readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')));
  return lines.flatMap((cmdline, i) => (cmdline === '' ? [] : [{ pid: Number(entries[i]), argv: cmdline.split('\0') }]));
}

interface KillWhen {
  /** The step has started (its progress line is out)… */
  stepStarted: string;
  /** …and its child process is seen: the first word of its argv ends with this, and it names the root (unless anyRoot). */
  program: string;
  anyRoot?: boolean;
  /** Whom to kill: knocker itself (default), or the PostgreSQL postmaster of the root. */
  target?: 'knocker' | 'postmaster';
}

/** Runs bin/knocker; kills it (SIGKILL) when `when` is seen, or lets the kill hook of `env` do it. */
async function run(root: Root, args: string[], options: { env?: Record<string, string>; when?: KillWhen } = {}): Promise<Outcome> {
  const child = execa(process.execPath, [KNOCKER, ...args, '--root', root.dir], {
    env: cleanEnv(options.env),
    extendEnv: false,
    reject: false,
    input: '',
    timeout: 120_000,
  });
  const when = options.when;
  if (when) {
    // Progress goes to stderr (the output rule); both streams are watched, so a command whose
    // progress is still on stdout is watched too.
    let progress = '';
    child.stdout!.on('data', (chunk: Buffer) => (progress += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (progress += chunk.toString()));
    const watching = (async () => {
      while (child.exitCode === null && child.signalCode === null) {
        if (progress.includes(when.stepStarted)) {
          const seen = (await commandLines()).find(
            (p) => p.argv.some((a, i) => (i < 2 ? a.endsWith(when.program) : false)) && (when.anyRoot || p.argv.some((a) => a.includes(root.dir))),
          );
          if (seen) {
            faults += 1;
            if (when.target === 'postmaster') {
              const pid = Number((await fs.readFile(root.path(`${PATHS.pgData}/postmaster.pid`), 'utf8')).split('\n')[0]);
              process.kill(pid, 'SIGKILL');
            } else {
              child.kill('SIGKILL');
            }
            return;
          }
        }
        await new Promise((r) => setTimeout(r, 1));
      }
      throw new Error(`${when.program} was never seen during "${when.stepStarted}"; output:\n${progress}`);
    })();
    const [result] = await Promise.all([child, watching]);
    return { exitCode: result.exitCode, signal: result.signal, stdout: String(result.stdout), stderr: String(result.stderr) };
  }
  const result = await child;
  if (options.env?.KNOCKER_TEST_KILL_AT && result.signal === 'SIGKILL') faults += 1;
  return { exitCode: result.exitCode, signal: result.signal, stdout: String(result.stdout), stderr: String(result.stderr) };
}

function killedOutright(outcome: Outcome): void {
  expect(outcome.signal, `${outcome.stdout}\n${outcome.stderr}`).toBe('SIGKILL');
}

const KILL_AFTER_ONE = { KNOCKER_TEST_KILL_AT: 'after:1' };

/** What a run may leave only while it runs: temporary files, the lock, the half-made-cluster marker. */
async function leftovers(root: Root): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const file = path.join(dir, entry.name);
      if (file === root.path(PATHS.pgData)) continue;
      if (entry.isDirectory()) await walk(file);
      else if (/\.tmp$|\.lock\.\d+\.[0-9a-f]{8}$|^(knocker|upgrade)\.lock$|postgresql\.creating$|reload-pending$/.test(entry.name))
        found.push(path.relative(root.dir, file));
    }
  };
  await walk(root.dir);
  return found;
}

/** The host as an install with these flags wants it: a re-run changes nothing, the node serves, nothing left over. */
async function expectInstalled(root: Root, flags: string[]): Promise<void> {
  const again = await knocker(['install', '--root', root.dir, ...flags]);
  expect(again.exitCode, again.stderr).toBe(0);
  expect(again.stderr).toContain('Nothing to change: this host already matches these answers.');
  const conf = KnocknocConf.parse(await fs.readFile(root.path(PATHS.conf), 'utf8'));
  const reply = await request(`http://${conf.get('Listen')}/_status`);
  expect(reply.status).toBe(200);
  expect(JSON.parse(reply.body)).toMatchObject({ status: 'ok', server: conf.get('ServerName') });
  expect(await leftovers(root)).toEqual([]);
}

describe('knocker install killed', () => {
  test('at every step boundary: each next run goes on from there, the last finds nothing to change', async () => {
    const root = await newRoot();
    const flags = ['--listen', '127.0.0.194:8756', '--server-name', 'killed'];
    killedOutright(await run(root, ['install', ...flags], { env: { KNOCKER_TEST_KILL_AT: 'before:1' } }));
    // Six steps: each run is killed right after the first step it had left to do.
    for (let step = 1; step <= 6; step += 1) {
      const outcome = await run(root, ['install', ...flags], { env: KILL_AFTER_ONE });
      killedOutright(outcome);
      expect(outcome.stderr).toContain(`[1/${7 - step}] ✔ done`);
    }
    await expectInstalled(root, flags);
  });

  test('in the middle of its long steps (initdb, pg_ctl start, the role, the server starting), and with PostgreSQL killed under it', async () => {
    const root = await newRoot();
    const flags = ['--listen', '127.0.0.195:8756', '--server-name', 'middle'];
    const install = (when: KillWhen) => run(root, ['install', ...flags], { when });
    killedOutright(await install({ stepStarted: 'create a private cluster', program: 'initdb' }));
    // The half-made cluster is the next run's own: made again (its initdb ended first), never refused.
    killedOutright(await install({ stepStarted: 'start the private cluster', program: 'pg_ctl' }));
    killedOutright(await install({ stepStarted: 'PostgreSQL: create role', program: 'admin-helper.js', anyRoot: true }));
    // PostgreSQL itself killed as the server starts on it: a failure the run reports (4 or 5).
    const pgKilled = await install({ stepStarted: 'Knocknoc server: start it', program: 'knocknoc-server', target: 'postmaster' });
    expect([4, 5], `${pgKilled.stdout}\n${pgKilled.stderr}`).toContain(pgKilled.exitCode);
    expect(pgKilled.stderr).not.toMatch(/internal error| {4}at /);
    killedOutright(await install({ stepStarted: 'Knocknoc server: start it', program: 'knocknoc-server' }));
    const last = await run(root, ['install', ...flags]);
    expect(last.exitCode, last.stderr).toBe(0);
    await expectInstalled(root, flags);
  });
});

describe('knocker exposedb killed', () => {
  test('--init at every step boundary, --add too, and a pg_hba.conf written but never loaded: each next run finishes the job', async () => {
    const root = await newRoot();
    await installPrimary(root, '127.0.0.196');
    const exposedb = (args: string[], env?: Record<string, string>) => run(root, ['exposedb', ...args], { env });
    killedOutright(await exposedb(['--init'], { KNOCKER_TEST_KILL_AT: 'before:1' }));
    // Five steps under a sandbox root: the saved string, the role, its grants, TLS, the allow-list block.
    for (let step = 1; step <= 5; step += 1) killedOutright(await exposedb(['--init'], KILL_AFTER_ONE));
    const init = await exposedb(['--init']);
    expect(init.exitCode, init.stderr).toBe(0);
    expect(init.stderr).toContain('Nothing to change: database knocknoc of');
    const printed = init.stdout.trim();
    expect(await fs.readFile(root.path(PATHS.exposedbUrl), 'utf8')).toContain(`\n${printed}\n`);
    const remote = url(printed);

    killedOutright(await exposedb(['--add', '127.0.0.197/32'], { KNOCKER_TEST_KILL_AT: 'before:1' }));
    expect((await exposedb(['--add', '127.0.0.197/32'])).exitCode).toBe(0);
    expect(await withClient(remote, await asNode(root, '127.0.0.197'), async () => 'in')).toBe('in');

    // What a kill between writing pg_hba.conf and the reload leaves: the file right, PostgreSQL not
    // told. The same --add again must reload it, not call it done.
    const hba = hbaFile(root);
    expect((await exposedb(['--add', '127.0.0.198/32'])).exitCode).toBe(0);
    const withBoth = await fs.readFile(hba, 'utf8');
    expect((await exposedb(['--remove', '127.0.0.198/32'])).exitCode).toBe(0);
    await fs.writeFile(hba, withBoth);
    faults += 1;
    await expect(withClient(remote, await asNode(root, '127.0.0.198'), async () => 'in')).rejects.toMatchObject({ code: '28000' });
    const again = await exposedb(['--add', '127.0.0.198/32']);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stdout).toContain('Allowed 127.0.0.198/32');
    expect(await withClient(remote, await asNode(root, '127.0.0.198'), async () => 'in')).toBe('in');
    expect((await exposedb(['--add', '127.0.0.198/32'])).stdout).toContain('Unchanged: 127.0.0.198/32 is already allowed.');
    expect(await rootAdmin(root, `SELECT count(*)::int AS n FROM pg_roles WHERE rolname = 'knocknoc_remote'`)).toEqual([{ n: 1 }]);
    expect(await withClient(await appUrl(root), { sourceAddress: '127.0.0.196' }, async () => 'up')).toBe('up');
    expect(await leftovers(root)).toEqual([]);
  });
});

describe('knocker haproxy killed', () => {
  test('setup at its boundaries, add between its write and its reload: the next run reloads', async () => {
    const root = await newRoot();
    await installPrimary(root, '127.0.0.199');
    const listen = KnocknocConf.parse(await fs.readFile(root.path(PATHS.conf), 'utf8')).get('Listen')!;
    const bind = `127.0.0.199:${await freePort('127.0.0.199')}`;
    const setup = ['haproxy', 'setup', `web-1=${listen}`, '--bind', bind];
    killedOutright(await run(root, setup, { env: { KNOCKER_TEST_KILL_AT: 'before:1' } }));
    killedOutright(await run(root, setup, { env: KILL_AFTER_ONE }));
    killedOutright(await run(root, setup, { env: KILL_AFTER_ONE }));
    const done = await run(root, setup);
    expect(done.exitCode, done.stderr).toBe(0);
    expect(done.stderr).toContain('Nothing to change: HAProxy already runs this configuration.');

    // add: the new file written, HAProxy not reloaded yet; the same add again reloads it.
    const add = ['haproxy', 'add', 'web-2=127.0.0.199:9'];
    killedOutright(await run(root, add, { env: KILL_AFTER_ONE }));
    const status = async () => (await knocker(['haproxy', 'status', '--json', '--root', root.dir])).stdout;
    expect(JSON.parse(await status()).servers).toContainEqual(expect.objectContaining({ name: 'web-2', status: 'NOT LOADED' }));
    const again = await run(root, add);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stderr).toContain('cut off before its reload');
    expect(JSON.parse(await status()).servers).not.toContainEqual(expect.objectContaining({ status: 'NOT LOADED' }));
    expect((await run(root, add)).stderr).toContain('Nothing to change');
    expect(await leftovers(root)).toEqual([]);
  });
});

describe('a full disk', () => {
  test('at reconfigure: exit 3-5 with the reason, no stray file; with space again the same run converges', async () => {
    const mount = await makeTempDir('knocker-tmpfs-');
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=160m,mode=0755', 'knocker-test', mount]);
    const root = new Root(mount);
    try {
      const flags = ['--listen', '127.0.0.189:8756', '--server-name', 'full-1'];
      const first = await knocker(['install', '--root', mount, ...flags]);
      expect(first.exitCode, first.stderr).toBe(0);
      // Fill what is left, then ask for a change.
      const filler = path.join(mount, 'filler');
      await execa('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1M', 'count=200'], { reject: false });
      faults += 1;
      const changed = ['--listen', '127.0.0.189:8756', '--server-name', 'full-2'];
      const full = await knocker(['install', '--root', mount, ...changed]);
      expect([3, 4, 5], `${full.stdout}\n${full.stderr}`).toContain(full.exitCode);
      expect(full.stderr).toMatch(/no space left on device|ENOSPC/i);
      expect(full.stderr).not.toMatch(/internal error| {4}at /);
      expect(await leftovers(root)).toEqual([]);
      await fs.rm(filler);
      const recovered = await knocker(['install', '--root', mount, ...changed]);
      expect(recovered.exitCode, `${recovered.stdout}\n${recovered.stderr}`).toBe(0);
      await expectInstalled(root, changed);
    } finally {
      await destroyRoot(root).catch(() => {});
      await execa('umount', ['-l', mount], { reject: false });
      await fs.rm(mount, { recursive: true, force: true });
    }
  });
});
