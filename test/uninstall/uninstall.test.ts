// knocker uninstall on a sandbox root, as installed with option 1 and HAProxy: the plan first
// (--dry-run changes nothing), then everything stopped and removed but the database's data, then
// with --purge-data an empty root.
import fs from 'node:fs/promises';
import path from 'node:path';
import { expect, test } from 'vitest';
import { freePort } from '../../src/system/host.js';
import { bootFenceStep, dropInFile } from '../../src/standby/boot-unit.js';
import { PATHS } from '../../src/system/root.js';
import { knocker } from '../helpers/knocker.js';
import { snapshotTree, useRoots } from '../helpers/roots.js';
import { request } from '../helpers/server.js';

const newRoot = useRoots();

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => !e.isDirectory()).map((e) => path.join(e.parentPath, e.name));
}

test('uninstall: the reverse plan, shown first; the data kept; then --purge-data leaves the root empty', async () => {
  const root = await newRoot();
  const listen = `127.0.0.161:${await freePort('127.0.0.161')}`;
  const bind = `127.0.0.162:${await freePort('127.0.0.162')}`;
  const answers = path.join(await fs.mkdtemp('/tmp/knocker-uninstall-answers-'), 'answers.yaml');
  await fs.writeFile(
    answers,
    `version: 1\nlisten: "${listen}"\nserverName: web-u\ndatabase:\n  option: 1\nhaproxy:\n  bind: "${bind}"\n  nodes: ["web-u=${listen}"]\n`,
  );
  const install = await knocker(['install', '--root', root.dir, '--answers', answers, '--non-interactive']);
  expect(install.exitCode, install.stderr).toBe(0);
  expect((await request(`http://${bind}/_status`)).status).toBe(200);

  // As exposedb --add-standby leaves it on a Debian host: systemd's check before the cluster starts.
  const instance = { version: '15', name: 'main' };
  await (await bootFenceStep(root, instance)).apply();
  // The running cluster writes its own WAL and state (the node's heartbeat): its settings files are kept still, the rest is PostgreSQL's.
  const live = (relative: string) =>
    relative.startsWith(`${PATHS.pgData.slice(1)}/`) && !/^[^/]+\.(conf|signal)$/.test(path.relative(PATHS.pgData.slice(1), relative));
  const before = await snapshotTree(root.dir, { live });
  const dry = await knocker(['uninstall', '--dry-run', '--root', root.dir]);
  expect(dry.exitCode, dry.stderr).toBe(0);
  expect(dry.stdout).toMatch(/^knocker uninstall: \d+ changes$/m);
  expect(dry.stdout).toMatch(/\+ \[service\] Stop HAProxy/);
  expect(dry.stdout).toMatch(/\+ \[service\] Stop the Knocknoc server/);
  expect(dry.stdout).toContain('+ [database] Take "web-u" out of the servers registry of');
  expect(dry.stdout).toMatch(/\+ \[service\] Stop PostgreSQL/);
  expect(dry.stdout).toContain(`+ [file] Remove ${root.path(PATHS.conf)}`);
  expect(dry.stdout).toContain(`+ [file] Remove ${root.path(PATHS.haproxyConf)}`);
  expect(dry.stdout).toContain(`+ [file] Remove ${dropInFile(root, instance)}: systemd no longer asks the other host`);
  expect(dry.stdout).toContain(
    `warning: kept (the database and its data): ${root.path(PATHS.pgData)}; knocker uninstall --purge-data --root ${root.dir} deletes them`,
  );
  expect(dry.stdout).toContain('Dry run: nothing was changed.');
  const json = JSON.parse((await knocker(['uninstall', '--dry-run', '--json', '--root', root.dir])).stdout);
  expect(json).toMatchObject({
    dryRun: true,
    command: 'knocker uninstall',
    root: root.dir,
    details: { purgeData: false },
    plan: { title: 'knocker uninstall' },
  });
  expect(await snapshotTree(root.dir, { live })).toEqual(before);

  const unasked = await knocker(['uninstall', '--root', root.dir]);
  expect(unasked.exitCode).toBe(2);
  expect(unasked.stderr).toContain('without a terminal, knocker uninstall needs --yes');

  const done = await knocker(['uninstall', '--yes', '--root', root.dir]);
  expect(done.exitCode, done.stderr).toBe(0);
  await expect(request(`http://${listen}/_status`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  await expect(request(`http://${bind}/`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  const left = await filesUnder(root.dir);
  expect(left.length).toBeGreaterThan(0);
  // Left: the database's data, and the log of this uninstall (what it removed); not the drop-in.
  for (const file of left) expect(file.startsWith(`${root.path(PATHS.pgData)}/`) || file === root.path(PATHS.opsLog), file).toBe(true);
  expect(await fs.readFile(root.path(PATHS.opsLog), 'utf8')).toMatch(/step \d+: Stop the Knocknoc server/);
  expect(done.stdout).toBe('');
  expect(done.stderr).toContain(`Uninstalled. Left in ${root.dir}: var.`);
  // The kept cluster is knocker's own record (its data directory): shown, stopped; nothing else is set up.
  const after = await knocker(['service', 'status', '--root', root.dir]);
  expect(after.exitCode).toBe(1);
  expect(after.stdout).toMatch(/^postgres +stopped /m);
  expect(after.stdout).toMatch(/^server +not set up /m);

  const purged = await knocker(['uninstall', '--yes', '--purge-data', '--root', root.dir]);
  expect(purged.exitCode, purged.stderr).toBe(0);
  expect(purged.stderr).toContain(`Delete ${root.path(PATHS.pgData)} (the database's data)`);
  expect(purged.stdout).toBe('');
  expect(purged.stderr).toContain(`Uninstalled. ${root.dir} is empty.`);
  expect(await fs.readdir(root.dir)).toEqual([]);

  const again = await knocker(['uninstall', '--yes', '--root', root.dir]);
  expect(again.exitCode).toBe(0);
  expect(again.stderr).toContain('Nothing to uninstall');
  expect(await fs.readdir(root.dir)).toEqual([]);
  await fs.rm(path.dirname(answers), { recursive: true, force: true });
});
