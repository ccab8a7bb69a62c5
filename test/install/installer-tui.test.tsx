// The installer's screens with ink-testing-library: the questions as a person answers them, and
// the whole flow against a real sandbox root and real PostgreSQL.
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import { useReducer } from 'react';
import { render } from 'ink-testing-library';
import { afterEach, describe, expect, test } from 'vitest';
import { InstallerApp, installerServices, readBanner } from '../../src/app.js';
import { openInstaller } from '../../src/installer/index.js';
import { flowReducer, initialFlow, type Values } from '../../src/installer/questions.js';
import { QuestionsScreen } from '../../src/screens/questions-screen.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { serverNameFromHostname } from '../../src/config/values.js';
import { frame, KEYS, press, text, type, waitForFrame } from '../helpers/ink.js';
import { destroyRoot, makeRoot } from '../helpers/roots.js';

const DEFAULTS: Values = {
  listen: '127.0.0.1:8756',
  trustedForwarders: '127.0.0.1/32',
  databaseOption: '1',
  databaseUrl: '',
  databaseCa: '',
  serverName: 'web-1',
  haproxy: 'no',
  haproxyBind: '0.0.0.0:80',
  haproxyNodes: 'web-1=127.0.0.1:8756',
};

function Questions({ defaults = DEFAULTS, existingConf }: { defaults?: Values; existingConf?: string }) {
  const [flow, dispatch] = useReducer(flowReducer, defaults, initialFlow);
  return <QuestionsScreen bannerArt={readBanner()} existingConf={existingConf} flow={flow} dispatch={dispatch} isActive />;
}

describe('questions', () => {
  test('banner, intro, and the first question with its default', () => {
    const ui = render(<Questions />);
    const lines = frame(ui).split('\n');
    expect(lines.slice(0, 5)).toEqual(
      readBanner()
        .split('\n')
        .slice(0, 5)
        .map((l) => l.trimEnd()),
    );
    expect(text(ui)).toContain('Please answer the following questions to configure Knocknoc correctly. (No existing configuration detected, starting fresh)');
    expect(text(ui)).toContain('❯ Enter IP and port to listen on (default: 127.0.0.1:8756):');
  });

  test('an existing configuration is named as the defaults', () => {
    const ui = render(<Questions existingConf="/opt/knocknoc/etc/knocknoc.conf" />);
    expect(text(ui)).toContain('(Existing configuration found in /opt/knocknoc/etc/knocknoc.conf: its values are the defaults)');
  });

  test('validated as typed, the error under the field; answered questions collapse to one line', async () => {
    const ui = render(<Questions />);
    await type(ui, '0.0.0.0');
    expect(text(ui)).toContain('✗ "0.0.0.0" has no port; write it as IP:port, e.g. 0.0.0.0:8756');
    await press(ui, KEYS.enter, { expectChange: false });
    expect(text(ui)).toContain('❯ Enter IP and port to listen on');
    await type(ui, ':8756');
    expect(text(ui)).not.toContain('✗');
    await press(ui, KEYS.enter);
    expect(frame(ui)).toMatch(/✔ Listen\s+0\.0\.0\.0:8756/);
    expect(text(ui)).toContain("If you're running behind a reverse-proxy, set the trusted forwarders.");
    await type(ui, '10.1.2.3/24,192.168.100.1');
    await press(ui, KEYS.enter);
    expect(frame(ui)).toMatch(/✔ TrustedForwarders\s+10\.1\.2\.0\/24, 192\.168\.100\.1\/32/);
    expect(text(ui)).toContain('1) Use a local PostgreSQL installation (default)');
    expect(text(ui)).toContain('Option 1, 2, or 3? (default is 1):');
  });

  test('keys that arrive before the screen re-renders are all kept (fast typing, a paste in pieces)', async () => {
    const ui = render(<Questions />);
    // Three chunks in one tick: no render happens between them.
    ui.stdin.write('127.0.0.25:87');
    ui.stdin.write('x');
    ui.stdin.write('\u007F56');
    await waitForFrame(ui, '127.0.0.25:8756');
    ui.stdin.write('\r');
    await waitForFrame(ui, /✔ Listen\s+127\.0\.0\.25:8756/);
  });

  test('Esc goes back one question, with the answer given as the new default', async () => {
    const ui = render(<Questions />);
    await press(ui, KEYS.enter);
    await type(ui, '10.0.0.0/8');
    await press(ui, KEYS.enter);
    expect(text(ui)).toContain('Option 1, 2, or 3?');
    await press(ui, KEYS.escape);
    expect(text(ui)).toContain('Enter TrustedForwarders (default: 10.0.0.0/8):');
    expect(text(ui)).not.toContain('✔ TrustedForwarders');
    await press(ui, KEYS.escape);
    expect(text(ui)).toContain('Enter IP and port to listen on (default: 127.0.0.1:8756):');
  });

  test('option by digit; option 3 asks for the connection string and masks its password', async () => {
    const ui = render(<Questions />);
    await press(ui, KEYS.enter);
    await press(ui, KEYS.enter);
    await press(ui, '3');
    expect(frame(ui)).toMatch(/✔ Database option\s+3/);
    expect(text(ui)).toContain('❯ Enter pre-existing external Knocknoc database connection string:');
    // No default here: the footer does not offer one.
    expect(text(ui)).toContain('Enter accepts (an answer is required)');
    expect(text(ui)).not.toContain('empty = default');
    await type(ui, 'postgres://knocknoc:hunter2@192.0.2.10:5432/knocknoc');
    expect(text(ui)).toContain('postgres://knocknoc:*******@192.0.2.10:5432/knocknoc');
    expect(text(ui)).not.toContain('hunter2');
    await press(ui, KEYS.enter);
    expect(frame(ui)).toMatch(/✔ Connection string\s+postgres:\/\/knocknoc:\*\*\*\*@192\.0\.2\.10:5432\/knocknoc/);
    expect(text(ui)).toContain('If a node cannot reach the database, confirm its IP has been added with exposedb --add on the primary.');
  });

  test('a connection string that verifies its server (as exposedb prints it) asks for the CA; one that does not, does not', async () => {
    const ui = render(<Questions />);
    await press(ui, KEYS.enter);
    await press(ui, KEYS.enter);
    await press(ui, '3');
    await type(ui, 'postgres://n:pw@192.0.2.10:5432/knocknoc?sslmode=verify-full');
    await press(ui, KEYS.enter);
    expect(text(ui)).toContain("The connection string asks to verify the database server's certificate: give the CA that issued it.");
    expect(text(ui)).toContain('❯ Enter the CA certificate file (knocker exposedb --init on the primary names it):');
    await press(ui, KEYS.enter);
    expect(text(ui)).toContain('✗ this answer is required');
    await type(ui, '/root/knocknoc-ca.pem');
    await press(ui, KEYS.enter);
    expect(frame(ui)).toMatch(/✔ Database CA\s+\/root\/knocknoc-ca\.pem/);
    expect(text(ui)).toContain("Enter this server's name (default: web-1):");

    const plain = render(<Questions />);
    await press(plain, KEYS.enter);
    await press(plain, KEYS.enter);
    await press(plain, '3');
    await type(plain, 'postgres://n:pw@192.0.2.10:5432/knocknoc?sslmode=require');
    await press(plain, KEYS.enter);
    expect(text(plain)).not.toContain('CA certificate');
    expect(text(plain)).toContain("Enter this server's name (default: web-1):");
  });

  test('the server name is asked after the database, and the default HAProxy node list follows it', async () => {
    const ui = render(<Questions />);
    await press(ui, KEYS.enter);
    await press(ui, KEYS.enter);
    await press(ui, '1');
    expect(text(ui)).toContain("❯ Enter this server's name (default: web-1):");
    await type(ui, 'web-5');
    await press(ui, KEYS.enter);
    expect(frame(ui)).toMatch(/✔ Server name\s+web-5/);
    await type(ui, 'y');
    await press(ui, KEYS.enter);
    await press(ui, KEYS.enter);
    expect(text(ui)).toContain('Enter the web nodes (default: web-5=127.0.0.1:8756):');
  });

  test('arrows choose an option too; a bad connection string is refused under the field', async () => {
    const ui = render(<Questions />);
    await press(ui, KEYS.enter);
    await press(ui, KEYS.enter);
    await press(ui, KEYS.down);
    await press(ui, KEYS.enter);
    expect(text(ui)).toContain('Enter the new external PostgreSQL database connection string:');
    await type(ui, 'mysql://x');
    expect(text(ui)).toContain('✗ a connection string starts with postgres:// or postgresql://');
    await press(ui, KEYS.ctrlU);
    await press(ui, KEYS.enter);
    expect(text(ui)).toContain('✗ this answer is required');
  });
});

describe('the whole flow on a sandbox root', () => {
  const roots: Root[] = [];
  afterEach(async () => {
    await Promise.all(roots.splice(0).map(destroyRoot));
  });

  async function app(root: Root, yes = false) {
    const session = await openInstaller({ root, flags: {}, env: {}, hostname: os.hostname() }, { dryRun: false });
    let exitCode: number | undefined;
    const ui = render(
      <InstallerApp services={installerServices(session, { skipConfirmation: yes, bannerArt: readBanner() })} onExit={(code) => (exitCode = code)} />,
    );
    return { ui, session, exitCode: () => exitCode };
  }

  test('questions, plan, apply with progress, result; answers saved 0600 without a password', async () => {
    const root = await makeRoot();
    roots.push(root);
    const { ui, session, exitCode } = await app(root);
    try {
      await type(ui, '127.0.0.21:8756');
      await press(ui, KEYS.enter);
      await press(ui, KEYS.enter);
      await press(ui, '1');
      // The name defaults to the host name, which cloned hosts share: it is asked, and can change.
      expect(text(ui)).toContain('Every web node sharing the database needs a name of its own');
      expect(text(ui)).toContain(`Enter this server's name (default: ${serverNameFromHostname(os.hostname())}):`);
      await type(ui, 'tui-node');
      await press(ui, KEYS.enter);
      expect(frame(ui)).toMatch(/✔ Server name\s+tui-node/);
      expect(text(ui)).toContain('Set up HAProxy on this host? (default: no):');
      await press(ui, KEYS.enter);
      const plan = await waitForFrame(ui, 'Apply these 7 changes?');
      expect(plan).toContain('✔ ok   listen address 127.0.0.21:8756: free');
      expect(plan).toContain('✔ ok   server name "tui-node"');
      expect(plan).toContain('+ServerName = tui-node');
      expect(plan).toMatch(/\+ \[database\] PostgreSQL \d+: create a private cluster/);
      expect(plan).toMatch(/\+DatabaseURL = postgres:\/\/knocknoc:\*\*\*\*@127\.0\.0\.21:\d+\/knocknoc/);
      expect(plan).toContain('install-answers.yaml');
      await press(ui, 'y');
      const done = await waitForFrame(ui, /Knocknoc is installed: 7 changes in/);
      expect(done).toMatch(/✔ done\s+.*server.*127\.0\.0\.21:8756/);
      expect(done).toMatch(/✔ done\s+Knocknoc schema: create it/);
      expect(done).toContain(`Log: ${root.path(PATHS.installLog)}`);
      expect(done).toContain(`Answers saved for reuse: ${root.path(PATHS.answers)}`);
      await waitForFrame(ui, 'Next:');
      // The exit is an event: waited for, not given a window.
      while (exitCode() === undefined) await new Promise((r) => setTimeout(r, 20));
      expect(exitCode()).toBe(0);
      const saved = await fs.readFile(root.path(PATHS.answers), 'utf8');
      expect((await fs.stat(root.path(PATHS.answers))).mode & 0o777).toBe(0o600);
      expect(saved).toContain('listen: 127.0.0.21:8756');
      const conf = await fs.readFile(root.path(PATHS.conf), 'utf8');
      const password = /knocknoc:([^@]+)@/.exec(conf)![1]!;
      expect(saved).not.toContain(password);
    } finally {
      await session.close();
    }
  });

  test('a failed preflight is shown with its hint, Esc goes back to change the answer', async () => {
    const root = await makeRoot();
    roots.push(root);
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.22', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const { ui, session } = await app(root);
    try {
      await type(ui, `127.0.0.22:${port}`);
      await press(ui, KEYS.enter);
      await press(ui, KEYS.enter);
      await press(ui, '1');
      await press(ui, KEYS.enter);
      await press(ui, KEYS.enter);
      const failed = await waitForFrame(ui, 'Preflight failed: nothing was changed.');
      expect(failed).toContain(`✗ FAIL listen address 127.0.0.22:${port}: port ${port} is already in use on 127.0.0.22`);
      expect(failed).toContain('hint: choose another port');
      await press(ui, KEYS.escape);
      expect(text(ui)).toContain('Set up HAProxy on this host?');
      await press(ui, KEYS.escape);
      expect(text(ui)).toContain("Enter this server's name");
      await press(ui, KEYS.escape);
      expect(text(ui)).toContain('Option 1, 2, or 3?');
      await press(ui, KEYS.escape);
      await press(ui, KEYS.escape);
      expect(text(ui)).toContain(`Enter IP and port to listen on (default: 127.0.0.22:${port}):`);
      await expect(fs.access(root.path(PATHS.pgData))).rejects.toThrow();
    } finally {
      server.close();
      await session.close();
    }
  });

  test('--yes applies without the plan question; a re-run says there is nothing to change', async () => {
    const root = await makeRoot();
    roots.push(root);
    const first = await app(root, true);
    await type(first.ui, '127.0.0.23:8756');
    await press(first.ui, KEYS.enter);
    await press(first.ui, KEYS.enter);
    await press(first.ui, '1');
    await press(first.ui, KEYS.enter);
    await press(first.ui, KEYS.enter);
    await waitForFrame(first.ui, /Knocknoc is installed/);
    await first.session.close();
    first.ui.unmount();

    const second = await app(root, false);
    expect(text(second.ui)).toContain(`(Existing configuration found in ${root.path(PATHS.conf)}: its values are the defaults)`);
    expect(text(second.ui)).toContain('(default: 127.0.0.23:8756)');
    await press(second.ui, KEYS.enter);
    await press(second.ui, KEYS.enter);
    await press(second.ui, KEYS.enter);
    await press(second.ui, KEYS.enter);
    await press(second.ui, KEYS.enter);
    const plan = await waitForFrame(second.ui, /Nothing to change: this host already matches these answers/);
    expect(plan).toContain('Plan: nothing to change');
    await press(second.ui, 'q');
    await second.session.close();
  });
});
