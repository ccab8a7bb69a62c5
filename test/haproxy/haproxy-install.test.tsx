// The installer sets up HAProxy too: from the answers file's haproxy section (unattended), and from
// the optional question after the database (TUI); each install ends with HAProxy serving the node.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { render } from 'ink-testing-library';
import { expect, test } from 'vitest';
import { InstallerApp, installerServices, readBanner } from '../../src/app.js';
import { openInstaller } from '../../src/installer/index.js';
import { freePort } from '../../src/system/host.js';
import { PATHS } from '../../src/system/root.js';
import { Haproxy } from '../helpers/haproxy.js';
import { KEYS, press, text, type, waitForFrame } from '../helpers/ink.js';
import { knocker } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';
import { request } from '../helpers/server.js';

const newRoot = useRoots();

test('an unattended install with a haproxy section ends with HAProxy serving this node; a re-run changes nothing', async () => {
  const root = await newRoot();
  const listen = `127.0.0.112:${await freePort('127.0.0.112')}`;
  const bind = `127.0.0.113:${await freePort('127.0.0.113')}`;
  const file = path.join(root.dir, 'answers.yaml');
  await fs.writeFile(
    file,
    `version: 1\nlisten: "${listen}"\nserverName: web-1\ndatabase:\n  option: 1\nhaproxy:\n  bind: "${bind}"\n  nodes: ["web-1=${listen}"]\n`,
  );

  const install = await knocker(['install', '--root', root.dir, '--answers', file, '--non-interactive']);
  expect(install.stdout).toBe('');
  expect(install.exitCode).toBe(0);
  expect(install.stderr).toMatch(/✔ ok {3}HAProxy: \S*haproxy \(version/);
  expect(install.stderr).toMatch(/\[(\d+)\/\1\] Start HAProxy \(daemon\) and wait until its admin socket answers …\n\s+\[\d+\/\d+\] ✔ done/);
  expect(install.stderr).toContain(`  - HAProxy on http://${bind} spreads requests over web-1; see them with knocker haproxy status --root ${root.dir}`);
  const haproxy = new Haproxy(root, `http://${bind}`);
  await haproxy.waitFor('web-1', 'UP');
  const reply = await request(`http://${bind}/`);
  expect(reply.status).toBe(200);
  expect(reply.headers['x-knocknoc-server']).toBe('web-1');

  const again = await knocker(['install', '--root', root.dir, '--answers', file, '--non-interactive']);
  expect(again.stderr).toContain('Nothing to change: this host already matches these answers.');
  const status = await knocker(['service', 'status', '--root', root.dir]);
  expect(status.exitCode).toBe(0);
  expect(status.stdout).toMatch(new RegExp(`^haproxy   running     pid \\d+, http://${bind}: 1/1 web nodes in rotation`, 'm'));
});

test('the TUI asks "Set up HAProxy on this host?" after the database; its node list follows the listen address', async () => {
  const root = await newRoot();
  const listen = `127.0.0.114:${await freePort('127.0.0.114')}`;
  const bind = `127.0.0.115:${await freePort('127.0.0.115')}`;
  const session = await openInstaller({ root, flags: { serverName: 'web-7' }, env: {}, hostname: os.hostname() }, { dryRun: false });
  try {
    const ui = render(<InstallerApp services={installerServices(session, { skipConfirmation: false, bannerArt: readBanner() })} onExit={() => {}} />);
    await type(ui, listen);
    await press(ui, KEYS.enter);
    await press(ui, KEYS.enter);
    await press(ui, '1');
    expect(text(ui)).toContain("Enter this server's name (default: web-7):");
    await press(ui, KEYS.enter);
    expect(text(ui)).toContain('HAProxy can spread web traffic over several Knocknoc web nodes');
    await type(ui, 'maybe');
    expect(text(ui)).toContain('✗ answer yes or no');
    for (let i = 0; i < 'maybe'.length; i += 1) await press(ui, KEYS.backspace);
    await type(ui, 'y');
    await press(ui, KEYS.enter);
    expect(text(ui)).toContain('Enter IP and port for HAProxy to listen on (default: 0.0.0.0:80):');
    await type(ui, bind);
    await press(ui, KEYS.enter);
    expect(text(ui)).toContain(`Enter the web nodes (default: web-7=${listen}):`);
    await type(ui, 'web-7');
    expect(text(ui)).toContain('✗ "web-7" is not NAME=HOST:PORT');
    for (let i = 0; i < 'web-7'.length; i += 1) await press(ui, KEYS.backspace);
    await press(ui, KEYS.enter);
    await waitForFrame(ui, /Apply these \d+ changes\?/);
    const plan = text(ui);
    expect(plan).toMatch(/\+ \[file\] Write \S+\/etc\/haproxy\/haproxy\.cfg: 1 web node behind http:\/\/127\.0\.0\.115:\d+/);
    expect(plan).toContain('+ [service] Start HAProxy (daemon)');
    await press(ui, 'y');
    await waitForFrame(ui, /Knocknoc is installed/, 60_000);
    const haproxy = new Haproxy(root, `http://${bind}`);
    await haproxy.waitFor('web-7', 'UP');
    expect((await request(`http://${bind}/`)).headers['x-knocknoc-server']).toBe('web-7');
    expect(await fs.readFile(root.path(PATHS.answers), 'utf8')).toContain(`haproxy:\n  bind: ${bind}\n  nodes:\n    - web-7=${listen}\n`);
  } finally {
    await session.close();
  }
});
