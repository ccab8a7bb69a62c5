// The output rule (CONTRACTS.md, "Output channels"): stdout carries only the result a script would
// capture; progress, notes, warnings and hints go to stderr. Each host-changing command of install,
// exposedb, service, server and uninstall is run here as a script would, stdout piped apart, and
// its stdout holds its result and nothing else; every --dry-run --json has the same top-level keys.
import { expect, test } from 'vitest';
import { DRY_RUN_KEYS } from '../../src/system/runner.js';
import { freePort } from '../../src/system/host.js';
import { knocker } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';

const newRoot = useRoots();

/** A --dry-run --json answer: one JSON object with the keys every command shares, nothing else on stdout. */
function dryRunJson(result: { exitCode: number; stdout: string; stderr: string }, exitCode = 0): Record<string, unknown> {
  expect(result.exitCode, result.stderr).toBe(exitCode);
  const json = JSON.parse(result.stdout) as Record<string, unknown>;
  expect(Object.keys(json)).toEqual([...DRY_RUN_KEYS]);
  return json;
}

test('stdout of install, exposedb, service, server forget and uninstall: the result alone', async () => {
  const root = await newRoot();
  const run = (...args: string[]) => knocker([...args, '--root', root.dir]);
  const listen = `127.0.0.230:${await freePort('127.0.0.230')}`;

  const planned = dryRunJson(await run('install', '--listen', listen, '--server-name', 'web-out', '--dry-run', '--json'));
  expect(planned).toMatchObject({ dryRun: true, command: 'knocker install', details: { answers: { listen, serverName: 'web-out' } }, error: null });
  const install = await run('install', '--listen', listen, '--server-name', 'web-out');
  expect(install.exitCode, install.stderr).toBe(0);
  expect(install.stdout).toBe('');
  expect(install.stderr).toMatch(/Installed in/);

  dryRunJson(await run('exposedb', '--init', '--dry-run', '--json'));
  const init = await run('exposedb', '--init');
  expect(init.exitCode, init.stderr).toBe(0);
  expect(init.stdout).toMatch(/^postgres:\/\/knocknoc_remote:\S+@127\.0\.0\.230:\d+\/knocknoc\?sslmode=verify-full$/);
  expect(init.stderr).toMatch(/✔ done/);
  // Planned again, the kept string's password is masked in the plan (its diff) and the details.
  const again = await run('exposedb', '--init', '--dry-run', '--json');
  const password = new URL(init.stdout).password;
  expect(dryRunJson(again)).toMatchObject({ plan: { changes: 0 }, details: { connectionString: expect.stringContaining('****') } });
  expect(again.stdout).not.toContain(password);

  const addPlan = dryRunJson(await run('exposedb', '--add', '127.0.0.231/32', '--dry-run', '--json'));
  expect(addPlan).toMatchObject({ command: 'knocker exposedb --add', plan: { changes: 1 }, details: { cidr: '127.0.0.231/32' } });
  const refused = dryRunJson(await run('exposedb', '--add', '0.0.0.0/0', '--dry-run', '--json'), 2);
  expect(refused).toMatchObject({ plan: null, error: { exitCode: 2 } });
  const add = await run('exposedb', '--add', '127.0.0.231/32');
  expect(add.exitCode, add.stderr).toBe(0);
  expect(add.stdout).toMatch(/^Allowed 127\.0\.0\.231\/32: [^\n]*$/);
  const remove = await run('exposedb', '--remove', '127.0.0.231/32');
  expect(remove.exitCode, remove.stderr).toBe(0);
  expect(remove.stdout).toMatch(/^Removed 127\.0\.0\.231\/32: [^\n]*$/);

  const stop = await run('service', 'stop', 'server');
  expect(stop.exitCode, stop.stderr).toBe(0);
  expect(stop.stdout).toBe('');
  expect(stop.stderr).toMatch(/Stop the Knocknoc server/);

  const forgetPlan = dryRunJson(await run('server', 'forget', 'web-out', '--dry-run', '--json'));
  expect(forgetPlan).toMatchObject({ command: 'knocker server forget web-out', plan: { changes: 1 }, details: { server: 'web-out', haproxy: null } });
  const forget = await run('server', 'forget', 'web-out');
  expect(forget.exitCode, forget.stderr).toBe(0);
  expect(forget.stdout).toBe('');
  expect(forget.stderr).toContain('Removed "web-out" from the registry of');

  const start = await run('service', 'start');
  expect(start.exitCode, start.stderr).toBe(0);
  expect(start.stdout).toBe('');

  dryRunJson(await run('uninstall', '--dry-run', '--json'));
  const uninstall = await run('uninstall', '--yes', '--purge-data');
  expect(uninstall.exitCode, uninstall.stderr).toBe(0);
  expect(uninstall.stdout).toBe('');
  expect(uninstall.stderr).toContain('Uninstalled.');
});
