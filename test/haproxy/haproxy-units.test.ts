// The parts of knocker haproxy that need no running HAProxy: the configuration written and read
// back, the template's placeholders, the plan on a real host, the runtime API's answers as HAProxy
// 2.6 gives them (fixtures captured from a real one), the installer's questions, and --help.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { knocker } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';
import { parseListen } from '../../src/config/values.js';
import { nodeSetProblems, readSettings, readTemplate, renderConfig, TemplateError, type ConfigLayout, type HaproxySettings } from '../../src/haproxy/config.js';
import { haproxyChecks, haproxySteps, type HaproxyFacts } from '../../src/haproxy/plan.js';
import { parseServersState, parseServerStatus, parseShowProc, parseShowStat, serversStateText } from '../../src/haproxy/runtime.js';
import { haproxyService } from '../../src/haproxy/service.js';
import { readIfExists } from '../../src/system/files.js';
import { DRY_RUN_KEYS } from '../../src/system/runner.js';
import { nullLogger } from '../../src/system/log.js';
import { Root, SYSTEM_ROOT } from '../../src/system/root.js';
import { defaultsFrom, flowReducer, haproxyAnswersFrom, initialFlow, QUESTIONS, type FlowState, type Values } from '../../src/installer/questions.js';

const fixture = (name: string) => fs.readFileSync(path.join(import.meta.dirname, '..', 'fixtures', name), 'utf8');
const listen = (text: string) => (parseListen(text) as { ok: true; value: ReturnType<typeof parseListen> extends { value: infer V } ? V : never }).value;

const LAYOUT: ConfigLayout = {
  adminSocket: '/srv/root one/run/haproxy/admin.sock',
  statusSocket: '/run/haproxy/status.sock',
  stateFile: '/var/lib/haproxy/server-state',
  logTarget: '/var/log/knocknoc/haproxy.log',
  writtenBy: 'knocker 1.0.0',
};

const SETTINGS: HaproxySettings = {
  bind: listen('0.0.0.0:443'),
  tls: { cert: '/etc/haproxy/knocknoc.pem', httpBind: listen('0.0.0.0:80') },
  nodes: [
    { name: 'web-1', host: '192.0.2.11', port: 8756, backup: false },
    { name: 'web-2', host: '2001:db8::12', port: 8756, backup: false },
    { name: 'web-3', host: '192.0.2.13', port: 8756, backup: true },
  ],
};

describe('the configuration', () => {
  test('rendered from the template and read back to the same settings', async () => {
    const text = renderConfig(await readTemplate(), SETTINGS, LAYOUT);
    expect(text).toMatch(/^# Written by knocker \(knocker 1\.0\.0\)/);
    expect(text).not.toContain('{{');
    expect(text).not.toMatch(/^##/m);
    expect(text).toContain("    stats socket '/srv/root one/run/haproxy/admin.sock' mode 600 level admin\n");
    expect(text).toContain('    stats socket /run/haproxy/status.sock mode 660 level user\n');
    expect(text).toContain('    bind 0.0.0.0:443 ssl crt /etc/haproxy/knocknoc.pem alpn h2,http/1.1\n    bind 0.0.0.0:80\n');
    // Port 443 is the default: the redirect names none.
    expect(text).toContain("redirect location 'https://%[req.hdr(host),regsub(:[0-9]+$,)]%[pathq]' code 301 unless { ssl_fc }");
    expect(text).toContain('    cookie SRVID insert indirect nocache httponly secure\n');
    expect(text).toContain('    server web-2 [2001:db8::12]:8756 cookie web-2 check\n    server web-3 192.0.2.13:8756 cookie web-3 check backup\n');
    expect(readSettings(text)).toEqual({ kind: 'knocker', settings: SETTINGS });
  });

  test('plain HTTP: no redirect, no Secure cookie; a configuration knocker did not write is told apart', async () => {
    const plain = { bind: listen('127.0.0.1:8080'), nodes: SETTINGS.nodes.slice(0, 1) };
    const text = renderConfig(await readTemplate(), plain, LAYOUT);
    expect(text).not.toContain('redirect');
    expect(text).toContain('    cookie SRVID insert indirect nocache httponly\n');
    expect(readSettings(text)).toEqual({ kind: 'knocker', settings: plain });
    expect(readSettings(undefined)).toEqual({ kind: 'none' });
    expect(readSettings('global\n    daemon\n')).toEqual({ kind: 'foreign' });
    expect(readSettings(text.replace('    bind 127.0.0.1:8080\n', ''))).toEqual({ kind: 'unreadable', problem: 'no bind line in frontend knocknoc' });
  });

  test('a template knocker cannot fill is refused with what is wrong', () => {
    const fill = (template: string) => () => renderConfig(template, SETTINGS, LAYOUT);
    expect(fill('{{header}}\n{{binds}}\n{{servers}}\n{{adminSocket}}{{statusSocket}}{{stateFile}}{{backend}}{{cookie}} {{nodes}}')).toThrow(
      new TemplateError('unknown placeholder {{nodes}}'),
    );
    expect(fill('{{header}}\n{{binds}}\n  x {{servers}}\n{{adminSocket}}{{statusSocket}}{{stateFile}}{{backend}}{{cookie}}')).toThrow(
      'unknown placeholder {{servers}} (it must stand alone on its line); no {{servers}}',
    );
    expect(fill('global\n')).toThrow('no {{header}}, {{servers}}, {{binds}}, {{adminSocket}}, {{statusSocket}}, {{stateFile}}, {{backend}}, {{cookie}}');
  });

  test('node sets: unique names and addresses, one active node at least', () => {
    const node = (name: string, host: string, backup = false) => ({ name, host, port: 8756, backup });
    expect(nodeSetProblems([node('web-1', '192.0.2.11'), node('web-2', '192.0.2.12', true)])).toEqual([]);
    expect(nodeSetProblems([node('web-1', '192.0.2.11'), node('web-1', '192.0.2.12')])).toEqual([
      'two nodes are named "web-1" (192.0.2.11:8756 and 192.0.2.12:8756): the name is also the persistence cookie, it must be unique',
    ]);
    expect(nodeSetProblems([node('web-1', '192.0.2.11'), node('web-2', '192.0.2.11')])).toEqual(['web-1 and web-2 are the same address, 192.0.2.11:8756']);
    expect(nodeSetProblems([node('web-1', '192.0.2.11', true)])).toEqual(['every node is a backup: at least one must be active']);
  });
});

describe('where HAProxy comes from', () => {
  const settings: HaproxySettings = { bind: listen('0.0.0.0:80'), nodes: SETTINGS.nodes.slice(0, 1) };

  test('a real host without HAProxy: the plan installs the package first, and HAProxy runs chrooted as its user (plan only)', async () => {
    const service = await haproxyService(SYSTEM_ROOT);
    const existingText = await readIfExists(service.paths.conf);
    const facts: HaproxyFacts = {
      service,
      binary: undefined,
      version: undefined,
      install: 'apt-get',
      existingText,
      existing: readSettings(existingText),
      run: { running: false, where: 'no process' },
    };
    const { steps, content } = await haproxySteps(settings, facts, { log: nullLogger(), startIfStopped: true });
    expect(steps.map((s) => [s.kind, s.title.split(':')[0]])).toEqual([
      ['package', 'Install HAProxy with apt-get'],
      ['file', `${existingText === undefined ? 'Write' : 'Update'} /etc/haproxy/haproxy.cfg`],
      ['service', expect.stringMatching(/^Start HAProxy \((daemon|haproxy\.service)\) and wait until its admin socket answers$/)],
    ]);
    expect(steps[0]!.details).toEqual(['apt-get install -y haproxy']);
    expect(content).toContain('    chroot /var/lib/haproxy\n    user haproxy\n    group haproxy\n');
    expect(content).toContain('    stats socket /run/haproxy/admin.sock mode 600 level admin\n');
  });

  test('a sandbox root never installs it: preflight fails', async () => {
    const service = await haproxyService(new Root('/tmp/some-sandbox'));
    const facts: HaproxyFacts = {
      service,
      binary: undefined,
      version: undefined,
      install: undefined,
      existingText: undefined,
      existing: { kind: 'none' },
      run: { running: false, where: 'no process' },
    };
    const checks = await haproxyChecks({ ...settings, bind: listen('127.0.0.109:1') }, facts);
    expect(checks[0]).toEqual({
      name: 'HAProxy',
      ok: false,
      detail: 'not installed (a sandbox root never installs packages)',
      hints: ['install it with the package manager, e.g. apt-get install haproxy'],
    });
  });
});

describe("the runtime API's answers", () => {
  test('show stat: servers with their state, last check and counters; proxies', () => {
    const stat = parseShowStat(fixture('haproxy-show-stat.csv'));
    expect(stat.servers.map((s) => [s.name, s.status.state, s.check.status, s.backup])).toEqual([
      ['web-1', 'UP', 'L7OK', false],
      ['web-2', 'MAINT', '', false],
      ['web-3', 'DOWN', 'L4CON', true],
    ]);
    // Captured on the read-only socket, which HAProxy does not tell addresses and cookies.
    expect(stat.servers[0]).toMatchObject({
      backend: 'web_nodes',
      address: '',
      cookie: '',
      sessions: 0,
      check: { code: 200, description: 'Layer7 check passed' },
    });
    expect(stat.servers[2]!.check).toMatchObject({ detail: 'Connection refused', description: 'Layer4 connection problem', code: undefined });
    expect(stat.proxies).toEqual([
      expect.objectContaining({ name: 'knocknoc', kind: 'frontend', status: 'OPEN' }),
      expect.objectContaining({ name: 'web_nodes', kind: 'backend', status: 'UP', activeServers: 1, backupServers: 0 }),
    ]);
  });

  test('server status words, including the ones in transition', () => {
    expect(parseServerStatus('UP 2/3')).toEqual({ state: 'UP', transition: { checks: 2, of: 3 }, text: 'UP 2/3' });
    expect(parseServerStatus('DOWN 1/2')).toEqual({ state: 'DOWN', transition: { checks: 1, of: 2 }, text: 'DOWN 1/2' });
    expect(parseServerStatus('MAINT (via web_nodes/web-1)')).toEqual({ state: 'MAINT', note: '(via web_nodes/web-1)', text: 'MAINT (via web_nodes/web-1)' });
    expect(parseServerStatus('no check').state).toBe('NO CHECK');
    expect(parseServerStatus('DRAIN (agent)')).toMatchObject({ state: 'DRAIN', note: '(agent)' });
    expect(parseServerStatus('SOMETHING NEW').state).toBe('UNKNOWN');
  });

  test('show servers state: the admin states, and the state file without the nodes left out', () => {
    const state = parseServersState(fixture('haproxy-servers-state.txt'));
    expect(state.servers.map((s) => [s.name, s.address, s.port, s.adminState])).toEqual([
      ['web-1', '127.0.0.118', 18081, 0],
      ['web-2', '127.0.0.118', 18082, 1],
      ['web-3', '::1', 18083, 0],
    ]);
    const kept = serversStateText(state, (s) => s.name !== 'web-3');
    expect(kept.split('\n').slice(0, 2)).toEqual(state.head);
    expect(kept).toContain(' web-2 127.0.0.118 0 1 ');
    expect(kept).not.toContain('web-3');
  });

  test("the master's show proc, with the reloads that failed and the old workers", () => {
    const text = [
      '#<PID>          <type>          <reloads>       <uptime>        <version>',
      '23113           master          2 [failed: 1]   0d00h01m04s     2.6.12-1+deb12u4',
      '# workers',
      '23200           worker          0               0d00h00m04s     2.6.12-1+deb12u4',
      '# old workers',
      '23115           worker          1               0d00h01m04s     2.6.12-1+deb12u4',
      '# programs',
      '',
    ].join('\n');
    expect(parseShowProc(text)).toEqual({ masterPid: 23113, reloads: 2, failedReloads: 1, workers: [23200], oldWorkers: [23115] });
  });
});

describe("the installer's HAProxy questions", () => {
  const resolution = {
    values: {
      listen: { value: '0.0.0.0:8756', source: { kind: 'default' as const } },
      trustedForwarders: { value: ['127.0.0.1/32'], source: { kind: 'default' as const } },
      serverName: { value: 'web-1', source: { kind: 'default' as const } },
    },
    problems: [],
    missing: [],
  };
  const answer = (state: FlowState, text?: string) => flowReducer(state, { type: 'submit', text });

  test('asked after the database; no by default; the node list names this node and follows its listen address', () => {
    const defaults: Values = defaultsFrom(resolution);
    expect(defaults).toMatchObject({ haproxy: 'no', haproxyBind: '0.0.0.0:80', haproxyNodes: 'web-1=127.0.0.1:8756' });
    expect(QUESTIONS.map((q) => q.id)).toEqual([
      'listen',
      'trustedForwarders',
      'databaseOption',
      'databaseUrl',
      'databaseCa',
      'serverName',
      'haproxy',
      'haproxyBind',
      'haproxyNodes',
    ]);
    let flow = answer(initialFlow(defaults), '192.0.2.11:8756');
    expect(flow.values.haproxyNodes).toBe('web-1=192.0.2.11:8756');
    flow = answer(answer(flow), '1');
    expect(QUESTIONS[flow.index]!.id).toBe('serverName');
    flow = answer(flow);
    expect(QUESTIONS[flow.index]!.id).toBe('haproxy');
    const no = answer(flow);
    expect(no.index).toBe(QUESTIONS.length);
    expect(haproxyAnswersFrom(no.values)).toBeUndefined();

    flow = answer(flow, 'Y');
    flow = answer(flow, '192.0.2.11:80');
    expect(answer(flow, 'web-1=192.0.2.11:8756, web-1=192.0.2.12:8756').error).toMatch(/^two nodes are named "web-1"/);
    flow = answer(flow, 'web-1=192.0.2.11:8756 web-2=192.0.2.12:8756');
    expect(haproxyAnswersFrom(flow.values)).toEqual({ bind: '192.0.2.11:80', nodes: ['web-1=192.0.2.11:8756', 'web-2=192.0.2.12:8756'] });
  });

  test('a list given elsewhere (answers file, the HAProxy in place) is the default and is kept', () => {
    const inPlace = { bind: '0.0.0.0:80', nodes: ['web-1=192.0.2.11:8756', 'web-2=192.0.2.12:8756'] };
    const defaults = defaultsFrom(resolution, inPlace);
    expect(defaults).toMatchObject({ haproxy: 'yes', haproxyNodes: 'web-1=192.0.2.11:8756, web-2=192.0.2.12:8756' });
    expect(answer(initialFlow(defaults), '192.0.2.99:8756').values.haproxyNodes).toBe(defaults.haproxyNodes);
  });
});

test('knocker haproxy --help tells the truth about its commands and flags', async () => {
  const help = await knocker(['haproxy', '--help']);
  expect(help.exitCode).toBe(0);
  for (const command of ['setup', 'add', 'remove', 'list', 'drain', 'maint', 'ready', 'status']) expect(help.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
  const setup = await knocker(['haproxy', 'setup', '--help']);
  for (const flag of [
    '--backup <node>',
    '--from-registry',
    '--conn <uri>',
    '--bind <ip:port>',
    '--cert <pem>',
    '--no-cert',
    '--http-bind <ip:port>',
    '--dry-run',
    '--json',
  ]) {
    expect(setup.stdout).toContain(flag);
  }
  expect((await knocker(['haproxy', 'ready', '--help'])).stdout).toContain('--timeout <seconds>');
  const misuse = await knocker(['haproxy', 'drain']);
  expect(misuse.exitCode).toBe(2);
  expect(misuse.stderr).toContain("error: missing required argument 'name'");
});

const newRoot = useRoots();

test('--dry-run --json of haproxy add and of upgrade on a root with no HAProxy: the one JSON shape, with the error, and nothing else on stdout', async () => {
  const root = await newRoot();
  for (const args of [
    ['haproxy', 'add', 'web-1=127.0.0.1:8756'],
    ['upgrade', '--upgrade-command', 'true'],
  ]) {
    const result = await knocker([...args, '--dry-run', '--json', '--root', root.dir]);
    expect(result.exitCode, result.stderr).toBe(3);
    const answer = JSON.parse(result.stdout) as Record<string, unknown> & { error: { exitCode: number; message: string } };
    expect(Object.keys(answer)).toEqual([...DRY_RUN_KEYS]);
    expect(answer).toMatchObject({
      dryRun: true,
      command: `knocker ${args[0]}${args[0] === 'haproxy' ? ' add web-1=127.0.0.1:8756' : ''}`,
      root: root.dir,
      plan: null,
    });
    expect(answer.error.exitCode).toBe(3);
    expect(result.stderr).toContain(`error: ${answer.error.message.split('\n')[0]}`);
  }
});
