// The seed's whole story on fresh Debian hosts, as an operator takes it with the packaged knocker:
// no --root, apt-get installing PostgreSQL and HAProxy, systemd running the units, Listen
// 0.0.0.0:8756 on separate hosts joined by a network, hosts that power off and reboot. Each step
// builds on the ones before; once one fails the rest fail at once naming it. The whole story runs
// once per Debian release (KNOCKER_E2E_RELEASES; harness/image.ts), one release after the other:
// the same steps and the same assertions on each, what differs (PostgreSQL's major version) read
// from the release's image.
import fs from 'node:fs';
import path from 'node:path';
import { inject, afterAll, beforeAll, describe, expect, test, type TestContext } from 'vitest';
import { selfSignedArgs } from '../helpers/certs.js';
import { openTerminal, type Terminal } from '../helpers/tmux.js';
import { waitFor } from '../helpers/server.js';
import type { Host } from './harness/host.js';
import { Lab, type E2eImage } from './harness/lab.js';
import { Load } from './harness/load.js';
import { NEXT_MIGRATION } from './harness/packages.js';

const deb = inject('e2eDeb');
const version = inject('e2eVersion');
const nextDeb = inject('e2eNextDeb');
const nextVersion = inject('e2eNextVersion');

for (const image of inject('e2eImages')) {
  describe(`the seed on fresh ${image.name} hosts (${image.release}: PostgreSQL ${image.postgres}, HAProxy ${image.haproxy})`, () => story(image));
}

/** The whole story on hosts of one release, each step asserted. */
function story(image: E2eImage): void {
  const lab = new Lab(image.dir);
  /** The cluster Debian's postgresql package creates on this release ("15-main"). */
  const cluster = `${image.postgres}-main`;
  let web1: Host;
  let web2: Host;
  let web3: Host;
  let client: Host;
  const terminals: Terminal[] = [];

  const PORT = 8756;
  const DEB_IN_HOST = '/root/knocker.deb';
  const NEXT_DEB_IN_HOST = `/root/knocker_${nextVersion}_amd64.deb`;
  const CA_IN_CLIENT = '/root/web-1.crt';
  /** Through HAProxy on web-1, with the certificate the client trusts. */
  const frontend = () => `https://${web1.address}/`;

  const PAUSE_MS = 30 * 60_000;

  /** KNOCKER_E2E_PAUSE=1 (or =end: also after the last step) leaves the hosts up for a look after a failed step, until a file is removed. */
  async function pauseForInspection(): Promise<void> {
    const file = path.join(lab.config.runDir, 'paused');
    fs.writeFileSync(file, '');
    process.stderr.write(
      `\n[e2e] paused for inspection (at most ${PAUSE_MS / 60_000} min); rm ${file} to go on. The hosts:\n` +
        lab.hosts
          .filter((h) => h.running)
          .map((h) => `  ${h.name} ${h.address}: nsenter -t ${h.init} -a\n`)
          .join(''),
    );
    await waitFor('the pause to end', () => (fs.existsSync(file) ? undefined : true), PAUSE_MS).catch(() => {});
  }

  beforeAll(async () => {
    if (transcript) fs.appendFileSync(transcript, `\n## ${image.name} (${image.release}): PostgreSQL ${image.postgres}, HAProxy ${image.haproxy}\n`);
    [web1, web2, web3, client] = (await lab.boot([
      ['web-1', 10],
      ['web-2', 11],
      ['web-3', 12],
      ['client', 19],
    ])) as [Host, Host, Host, Host];
    for (const host of [web1, web2, web3]) host.copyIn(deb, DEB_IN_HOST);
  });
  afterAll(async () => {
    if (process.env.KNOCKER_E2E_PAUSE === 'end') await pauseForInspection();
    await Promise.all(terminals.map((t) => t.close()));
    await lab.destroy();
  }, PAUSE_MS + 300_000);

  let broken: string | undefined;
  /**
   * One step of the story: each builds on the ones before, so after a failure the later steps fail
   * at once naming it (not skipped: under KNOCKER_E2E=required nothing may pass for not run); on
   * failure, what the hosts said.
   */
  function step(title: string, fn: (ctx: TestContext) => Promise<void>, timeoutMs = 300_000): void {
    test(
      title,
      async (ctx) => {
        if (broken) throw new Error(`not run: it builds on step "${broken}", which failed`);
        ctx.onTestFailed(async () => {
          broken ??= title;
          for (const host of lab.hosts.filter((h) => h.running && h.name.startsWith('web'))) {
            const journal = await host.exec(
              ['journalctl', '--no-pager', '-n', '40', '-u', 'knocknoc.service', '-u', 'haproxy.service', '-u', `postgresql@${cluster}.service`],
              { allowFailure: true },
            );
            process.stderr.write(`--- ${host.name}: journal\n${journal.stdout}\n`);
          }
          if (process.env.KNOCKER_E2E_PAUSE) await pauseForInspection();
        }, PAUSE_MS + 60_000);
        await fn(ctx);
      },
      timeoutMs,
    );
  }

  /** KNOCKER_E2E_TRANSCRIPT=FILE: every knocker command of the story and what it printed, kept there. */
  const transcript = process.env.KNOCKER_E2E_TRANSCRIPT;

  /** A figure of the run (the timings are printed and kept in the transcript, never asserted). */
  function note(line: string): void {
    process.stderr.write(`[e2e] ${line}\n`);
    if (transcript) fs.appendFileSync(transcript, `\n### note: ${line}\n`);
  }

  const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

  async function knocker(host: Host, args: string[], env: Record<string, string> = {}, input?: string) {
    const started = Date.now();
    const result = await host.exec(['knocker', ...args], { env, allowFailure: true, timeoutMs: 600_000, ...(input === undefined ? {} : { input }) });
    if (transcript) {
      const said = [result.stdout, result.stderr].filter(Boolean).join('\n--- stderr:\n');
      fs.appendFileSync(
        transcript,
        `\n### ${host.name}# knocker ${args.join(' ')}   (exit ${result.exitCode}, ${((Date.now() - started) / 1000).toFixed(1)} s)\n${said}\n`,
      );
    }
    return result;
  }

  /** An unattended install of a web node on 0.0.0.0:PORT behind web-1's HAProxy, with `more`. */
  const nodeInstall = (...more: string[]) => [
    'install',
    '--non-interactive',
    '--listen',
    `0.0.0.0:${PORT}`,
    '--trusted-forwarders',
    `${web1.address}/32`,
    ...more,
  ];

  function expectOk(result: { exitCode: number; stdout: string; stderr: string }, what: string): void {
    expect(result.exitCode, `${what}:\n${result.stdout}\n${result.stderr}`).toBe(0);
  }

  async function unit(host: Host, name: string): Promise<{ active: string; enabled: string }> {
    const active = (await host.exec(['systemctl', 'is-active', name], { allowFailure: true })).stdout;
    const enabled = (await host.exec(['systemctl', 'is-enabled', name], { allowFailure: true })).stdout;
    return { active, enabled };
  }

  async function installed(host: Host, pkg: string): Promise<string | undefined> {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format fields, not JavaScript's
    const result = await host.exec(['dpkg-query', '--showformat=${Status} ${Version}', '--show', pkg], { allowFailure: true });
    return result.exitCode === 0 && result.stdout.startsWith('install ok installed') ? result.stdout.split(' ').pop() : undefined;
  }

  /** One GET from the client host: the HTTP code, the node that answered, and the body. */
  async function get(url: string, options: { cookieJar?: string; ca?: boolean } = {}): Promise<{ code: string; node: string; body: string }> {
    const jar = options.cookieJar ? ['--cookie', options.cookieJar, '--cookie-jar', options.cookieJar] : [];
    const ca = options.ca === false ? [] : ['--cacert', CA_IN_CLIENT];
    const result = await client.exec(
      ['curl', '--silent', '--show-error', '--max-time', '10', ...ca, ...jar, '--write-out', '\\n%{http_code} %header{x-knocknoc-server}', url],
      { allowFailure: true },
    );
    const lines = result.stdout.split('\n');
    const [code = '000', node = ''] = lines.pop()!.split(' ');
    return { code, node, body: lines.join('\n') };
  }

  /** Waits until each host's node answers /_status with 200 (after the database moved or came back). */
  async function untilServing(hosts: Host[], what = 'again'): Promise<void> {
    for (const host of hosts) {
      await waitFor(`${host.name} to serve /_status 200 ${what}`, async () => ((await statusOf(host)).code === '200' ? true : undefined), 60_000);
    }
  }

  async function statusOf(host: Host): Promise<{ code: string; body: Record<string, unknown> | undefined }> {
    const reply = await get(`http://${host.address}:${PORT}/_status`, { ca: false });
    return { code: reply.code, body: reply.code === '000' ? undefined : (JSON.parse(reply.body) as Record<string, unknown>) };
  }

  interface HaproxyRow {
    name: string;
    statusText: string;
  }

  async function haproxyRows(): Promise<HaproxyRow[]> {
    const result = await knocker(web1, ['haproxy', 'status', '--json']);
    if (![0, 1].includes(result.exitCode)) throw new Error(`knocker haproxy status: exit ${result.exitCode}: ${result.stderr}`);
    return (JSON.parse(result.stdout) as { servers: HaproxyRow[] }).servers;
  }

  function untilHaproxySays(name: string, status: string, timeoutMs = 60_000): Promise<HaproxyRow> {
    return waitFor(`${name} to be ${status} in HAProxy`, async () => (await haproxyRows()).find((r) => r.name === name && r.statusText === status), timeoutMs);
  }

  let databaseUrl: string;

  // The standby pair (steps 9-12): SQL on a host's own cluster, knocker standby status, both sides of a pair checked.
  const sqlOn = async (host: Host, text: string) =>
    (await host.exec(['runuser', '-u', 'postgres', '--', 'psql', '-XAtq', '-d', 'postgres', '-c', text])).stdout;
  async function standbyStatus(host: Host): Promise<{ exitCode: number; report: Record<string, any> }> {
    const result = await knocker(host, ['standby', 'status', '--json']);
    expect(result.stdout, `${host.name}: knocker standby status --json: ${result.stderr}`).not.toBe('');
    return { exitCode: result.exitCode, report: JSON.parse(result.stdout) as Record<string, any> };
  }
  async function expectPair(primary: Host, standby: Host, timeline: number): Promise<void> {
    await waitFor(
      `${standby.name} to stream from ${primary.name}`,
      async () => {
        const s = await standbyStatus(standby);
        return s.exitCode === 0 && s.report.receiver?.status === 'streaming' ? true : undefined;
      },
      60_000,
    );
    const onStandby = await standbyStatus(standby);
    expect(onStandby.report.node, JSON.stringify(onStandby.report)).toMatchObject({ host: standby.address, role: 'standby', timeline });
    expect(onStandby.report.receiver).toMatchObject({ status: 'streaming', sender: `${primary.address}:5432` });
    expect(typeof onStandby.report.receiver.lagBytes).toBe('number');
    expect(onStandby.report.peer).toMatchObject({ host: primary.address, role: 'primary', answers: true });
    const onPrimary = await standbyStatus(primary);
    expect(onPrimary.exitCode, JSON.stringify(onPrimary.report)).toBe(0);
    expect(onPrimary.report.node).toMatchObject({ host: primary.address, role: 'primary', timeline });
    expect(onPrimary.report.replicas.map((r: { clientAddress: string; state: string }) => [r.clientAddress, r.state])).toEqual([
      [standby.address, 'streaming'],
    ]);
    expect((await primary.exec(['pg_lsclusters', '--no-header'])).stdout).toMatch(new RegExp(`^${image.postgres}\\s+main\\s+5432\\s+online\\s`, 'm'));
    expect((await standby.exec(['pg_lsclusters', '--no-header'])).stdout).toMatch(new RegExp(`^${image.postgres}\\s+main\\s+5432\\s+online,recovery\\s`, 'm'));
    // A row written on the primary reaches the standby.
    const id = String(timeline);
    await sqlOn(primary, `INSERT INTO knocker_e2e_probe VALUES (${id})`);
    await waitFor(
      `row ${id} on ${standby.name}`,
      async () => ((await sqlOn(standby, `SELECT count(*) FROM knocker_e2e_probe WHERE id = ${id}`)) === '1' ? true : undefined),
      30_000,
    );
  }

  /** `standby switchover` on `from`: `to` the primary on `timeline`, `from` streaming from it. */
  async function switchover(from: Host, to: Host, timeline: number): Promise<void> {
    const result = await knocker(from, ['standby', 'switchover']);
    expectOk(result, `knocker standby switchover on ${from.name}`);
    expect(result.stdout.trim()).toBe(`primary ${to.address}:5432`);
    await expectPair(to, from, timeline);
  }

  step(
    '1. web-1: dpkg -i the .deb, knocker install option 1 on 0.0.0.0:8756: apt-get installs PostgreSQL, knocknoc.service active and enabled, /_status 200 from another host',
    async () => {
      expect(await installed(web1, 'postgresql')).toBeUndefined();
      expectOk(await web1.exec(['dpkg', '-i', DEB_IN_HOST], { allowFailure: true }), 'dpkg -i');
      expect(await installed(web1, 'knocker')).toBe(version);
      expect((await web1.exec(['knocker', '--version'])).stdout).toBe(version);
      const install = await knocker(web1, nodeInstall('--database-option', '1'));
      expectOk(install, 'knocker install');
      expect(await installed(web1, 'postgresql')).toBeDefined();
      expect(await unit(web1, 'knocknoc.service')).toEqual({ active: 'active', enabled: 'enabled' });
      expect(await unit(web1, `postgresql@${cluster}.service`)).toMatchObject({ active: 'active' });
      expect(web1.read('/etc/systemd/system/knocknoc.service')).toMatch(
        /^ExecStart=\/opt\/knocknoc\/knocker\/knocknoc-server --config \/opt\/knocknoc\/etc\/knocknoc\.conf$/m,
      );
      const status = await statusOf(web1);
      expect(status.code).toBe('200');
      expect(status.body).toMatchObject({ status: 'ok', version, versionMatch: true, database: 'ok' });
    },
  );

  step(
    '2. web-1: exposedb --init and --invite web-2; web-2 joins with --join - (the token from a file on stdin); web-3, not allowed, is refused the manual way (option 3) and told which --add to run',
    async () => {
      const init = await knocker(web1, ['exposedb', '--init']);
      expectOk(init, 'knocker exposedb --init');
      databaseUrl = init.stdout;
      expect(databaseUrl.split('\n')).toHaveLength(1);
      expect(new URL(databaseUrl).hostname).toBe(web1.address);
      // Verified TLS between the hosts: the nodes get the cluster's CA, as an operator copies it.
      expect(new URL(databaseUrl).searchParams.get('sslmode')).toBe('verify-full');
      const ca = web1.read('/opt/knocknoc/etc/cluster-ca/ca.crt');
      for (const node of [web2, web3]) node.write('/root/knocknoc-ca.pem', ca);
      // The one-line join: an invitation for web-2's address; the token alone on stdout.
      const invite = await knocker(web1, ['exposedb', '--invite', `${web2.address}/32`, '--name', 'web-2']);
      expectOk(invite, 'knocker exposedb --invite');
      const token = invite.stdout.trim();
      expect(token).toMatch(new RegExp(`^knk1:[a-z0-9]{10}\\.[A-Za-z0-9_-]{32}@${web1.address.replace(/\./g, '\\.')}:5432/sha256:[0-9a-f]{64}$`));
      expect((await knocker(web1, ['exposedb', '--list'])).stdout.split('\n')).toEqual([`${web2.address}/32`]);

      expectOk(await web2.exec(['dpkg', '-i', DEB_IN_HOST], { allowFailure: true }), 'dpkg -i on web-2');
      // The token travels as a file (0600) and is read from stdin: out of argv and shell history.
      web2.write('/root/join-token', `${token}\n`, 0o600);
      const joined = await knocker(web2, nodeInstall('--join', '-'), {}, web2.read('/root/join-token'));
      expectOk(joined, 'knocker install --join - on web-2');
      expect(joined.stderr).toContain(`TLS, certificate verified for ${web1.address}`);
      expect(joined.stderr).not.toContain(token.slice(token.indexOf('.') + 1, token.indexOf('@')));
      expect(await unit(web2, 'knocknoc.service')).toEqual({ active: 'active', enabled: 'enabled' });
      expect(await installed(web2, 'postgresql')).toBeUndefined();
      expect((await statusOf(web2)).body).toMatchObject({ status: 'ok', versionMatch: true });
      // Its lasting credential is the nodes' role, not the join secret.
      expect(web2.read('/opt/knocknoc/etc/knocknoc.conf')).toContain('postgres://knocknoc_remote:');
      expect((await knocker(web1, ['exposedb', '--invites'])).stdout).toMatch(new RegExp(`  web-2  used  .*${web2.address.replace(/\./g, '\\.')} at `));

      // The manual way stays: option 3 with the printed string and the CA, refused for an address not allowed.
      const join = nodeInstall('--database-option', '3', '--database-ca', '/root/knocknoc-ca.pem');
      expectOk(await web3.exec(['dpkg', '-i', DEB_IN_HOST], { allowFailure: true }), 'dpkg -i on web-3');
      // The connection string holds the password: in the environment, never on a command line.
      const refused = await knocker(web3, join, { KNOCKNOC_DATABASE_URL: databaseUrl });
      expect(refused.exitCode, refused.stdout + refused.stderr).toBe(3);
      expect(refused.stdout + refused.stderr).toContain(`knocker exposedb --add ${web3.address}/32`);
      expect((await web3.exec(['test', '-e', '/opt/knocknoc/etc/knocknoc.conf'], { allowFailure: true })).exitCode).not.toBe(0);
      expect((await unit(web3, 'knocknoc.service')).active).not.toBe('active');
    },
  );

  step(
    '3. web-1: knocker haproxy setup with --cert in front of web-1 and web-2 (haproxy.service from apt); from the client, both nodes answer and a client keeps its node',
    async () => {
      expect(await installed(web1, 'haproxy')).toBeUndefined();
      // A certificate for web-1's address, which the client trusts.
      await web1.exec(selfSignedArgs({ cn: web1.address, san: `IP:${web1.address}`, days: 7, keyOut: '/root/web-1.key', certOut: '/root/web-1.crt' }));
      web1.write('/root/web-1.pem', web1.read('/root/web-1.crt') + web1.read('/root/web-1.key'), 0o600);
      client.write(CA_IN_CLIENT, web1.read('/root/web-1.crt'));
      const setup = await knocker(web1, ['haproxy', 'setup', `web-1=${web1.address}:${PORT}`, `web-2=${web2.address}:${PORT}`, '--cert', '/root/web-1.pem']);
      expectOk(setup, 'knocker haproxy setup');
      expect(await installed(web1, 'haproxy')).toBeDefined();
      expect(await unit(web1, 'haproxy.service')).toEqual({ active: 'active', enabled: 'enabled' });
      // This release's HAProxy takes knocker's configuration without a warning (a directive it has deprecated would be one).
      const checked = await web1.exec(['haproxy', '-c', '-f', '/etc/haproxy/haproxy.cfg'], { allowFailure: true });
      expect(checked.exitCode, checked.stdout + checked.stderr).toBe(0);
      expect(checked.stdout + checked.stderr).not.toMatch(/\[(WARNING|ALERT)\]/);
      await untilHaproxySays('web-1', 'UP');
      await untilHaproxySays('web-2', 'UP');

      const redirect = await get(`http://${web1.address}/`, { ca: false });
      expect(redirect.code).toMatch(/^30[12378]$/);
      const seen = new Set<string>();
      for (let i = 0; i < 10 && seen.size < 2; i += 1) {
        const reply = await get(frontend());
        expect(reply.code).toBe('200');
        seen.add(reply.node);
      }
      expect([...seen].sort()).toEqual(['web-1', 'web-2']);
      const jar = '/root/cookies.txt';
      const first = await get(frontend(), { cookieJar: jar });
      for (let i = 0; i < 6; i += 1) expect((await get(frontend(), { cookieJar: jar })).node).toBe(first.node);
    },
  );

  step('4. knocker status --json on web-1: both healthy, the database primary, the allow-list shown', async () => {
    const result = await knocker(web1, ['status', '--json']);
    const snapshot = JSON.parse(result.stdout) as {
      healthy: boolean;
      servers: Array<{ name: string; health: string; state: string; problems: string[] }>;
      database: { role: string; allowList?: { cidrs: string[]; exposed: boolean } } | null;
      haproxy: unknown;
    };
    expect(result.exitCode, result.stdout).toBe(0);
    expect(snapshot.healthy).toBe(true);
    expect(snapshot.servers.map((s) => [s.name, s.health, s.state]).sort()).toEqual([
      ['web-1', 'ok', 'ok'],
      ['web-2', 'ok', 'ok'],
    ]);
    expect(snapshot.database).toMatchObject({
      role: 'primary',
      allowList: { cidrs: [`${web2.address}/32`], exposed: true },
      tls: { offered: true, verified: true, expiring: false },
    });
    expect(snapshot.haproxy).not.toBeNull();
  });

  step(
    '5. web-2 powered off under load (systemctl poweroff, then the plug pulled): out of rotation, no failed GET; booted again, back by itself and in rotation once its check passes',
    async () => {
      const load = new Load(client, frontend(), { rate: 20, cacert: CA_IN_CLIENT });
      try {
        for (const [how, stop] of [
          ['systemctl poweroff', () => web2.powerOff()],
          ['a power cut', () => web2.powerCut()],
        ] as const) {
          await load.more(20);
          const stopped = Date.now();
          await stop();
          await untilHaproxySays('web-2', 'DOWN');
          note(`web-2 DOWN in HAProxy ${seconds(stopped)} after ${how}`);
          const afterDown = Date.now();
          await load.more(40);
          expect(load.nodesSince(afterDown)).toEqual(new Set(['web-1']));

          const booted = Date.now();
          await web2.boot();
          // Nobody starts anything on web-2: its enabled unit does, at boot.
          expect(await unit(web2, 'knocknoc.service')).toEqual({ active: 'active', enabled: 'enabled' });
          await untilHaproxySays('web-2', 'UP');
          note(`web-2 UP in HAProxy again ${seconds(booted)} after it was booted (after ${how})`);
          const backUp = Date.now();
          await waitFor('web-2 to answer requests through HAProxy again', () => (load.nodesSince(backUp).has('web-2') ? true : undefined), 30_000);
        }
      } finally {
        const report = await load.stop();
        note(`load through HAProxy: ${report.total} GETs (${JSON.stringify(report.byNode)}), ${report.failed.length} failed`);
        expect(report.failed, `${JSON.stringify(report.byNode)}; curl: ${report.errors.slice(0, 5).join(' | ')}`).toEqual([]);
        expect(report.errors).toEqual([]);
      }
    },
  );

  step('6. knocker upgrade to the next release over ssh, under load: 0 failed requests, both on the new version, the database migrated', async () => {
    for (const host of [web1, web2]) host.copyIn(nextDeb, NEXT_DEB_IN_HOST);
    await lab.trustSsh(web1, [web1, web2]);
    const load = new Load(client, frontend(), { rate: 20, cacert: CA_IN_CLIENT });
    let upgrade;
    try {
      await load.more(10);
      upgrade = await knocker(web1, ['upgrade', '--non-interactive', '--upgrade-command', `ssh -o BatchMode=yes root@{host} dpkg -i ${NEXT_DEB_IN_HOST}`]);
      await load.more(10);
    } finally {
      const report = await load.stop();
      note(`load through HAProxy: ${report.total} GETs (${JSON.stringify(report.byNode)}), ${report.failed.length} failed`);
      expect(report.failed, `${JSON.stringify(report.byNode)}; curl: ${report.errors.slice(0, 5).join(' | ')}`).toEqual([]);
    }
    expectOk(upgrade, 'knocker upgrade');
    for (const host of [web1, web2]) {
      expect(await installed(host, 'knocker')).toBe(nextVersion);
      expect((await statusOf(host)).body).toMatchObject({ status: 'ok', version: nextVersion, versionMatch: true });
    }
    const migrated = await web1.exec([
      'runuser',
      '-u',
      'postgres',
      '--',
      'psql',
      '-XAtq',
      '-d',
      'knocknoc',
      '-c',
      `SELECT count(*) FROM ${NEXT_MIGRATION.name}`,
    ]);
    expect(migrated.stdout).toBe('1');
    await untilHaproxySays('web-1', 'UP');
    await untilHaproxySays('web-2', 'UP');
  });

  step('7. web-1 rebooted: PostgreSQL, the server and HAProxy come back by themselves', async () => {
    const rebooted = Date.now();
    await web1.reboot();
    // Debian's postgresql.service is enabled; its generator makes the cluster's unit ("enabled-runtime").
    for (const name of ['postgresql.service', 'knocknoc.service', 'haproxy.service'])
      expect(await unit(web1, name), name).toEqual({ active: 'active', enabled: 'enabled' });
    expect(await unit(web1, `postgresql@${cluster}.service`)).toEqual({ active: 'active', enabled: 'enabled-runtime' });
    await waitFor('web-1 to serve /_status 200 after the reboot', async () => ((await statusOf(web1)).code === '200' ? true : undefined), 60_000);
    await untilHaproxySays('web-1', 'UP');
    await untilHaproxySays('web-2', 'UP');
    const reply = await get(frontend());
    expect(reply.code).toBe('200');
    note(`web-1 rebooted and both nodes UP behind its HAProxy ${seconds(rebooted)} after systemctl reboot`);
    const status = await knocker(web1, ['status', '--json']);
    expect(status.exitCode, status.stdout).toBe(0);
  });

  step(
    '8. the interactive installer on a fresh host, answered at the keyboard in tmux: option 1 and HAProxy in front of it, both installed by apt',
    async () => {
      const [web4] = (await lab.boot([['web-4', 13]])) as [Host];
      web4.copyIn(deb, DEB_IN_HOST);
      expectOk(await web4.exec(['dpkg', '-i', DEB_IN_HOST], { allowFailure: true }), 'dpkg -i on web-4');
      const t = await openTerminal(web4.terminalCommand(['knocker', 'install']), { width: 120, height: 50 });
      terminals.push(t);
      await t.waitFor('Enter IP and port to listen on (default: 127.0.0.1:8756):');
      await t.type(`0.0.0.0:${PORT}`);
      await t.keys('Enter');
      await t.waitFor('Enter TrustedForwarders (default: 127.0.0.1/32):');
      await t.keys('Enter');
      await t.waitFor('Option 1, 2, or 3? (default is 1):');
      await t.keys('1');
      await t.waitFor("Enter this server's name (default: web-4):");
      await t.keys('Enter');
      await t.waitFor('Set up HAProxy on this host? (default: no):');
      await t.type('yes');
      await t.keys('Enter');
      await t.waitFor('Enter IP and port for HAProxy to listen on (default: 0.0.0.0:80):');
      await t.keys('Enter');
      // This node, as HAProxy on the same host reaches it.
      await t.waitFor(`Enter the web nodes (default: web-4=127.0.0.1:${PORT}):`);
      await t.keys('Enter');
      await t.waitFor(/Apply these \d+ changes\?/);
      await t.keys('y');
      const done = await t.waitFor('EXIT=', 240_000);
      if (transcript) fs.appendFileSync(transcript, `\n### web-4: the screen of knocker install at its end\n${done}\n`);
      expect(done).toContain('EXIT=0');
      expect(done).toMatch(/Knocknoc is installed: \d+ changes in/);
      for (const pkg of ['postgresql', 'haproxy']) expect(await installed(web4, pkg), pkg).toBeDefined();
      for (const name of ['knocknoc.service', 'haproxy.service']) expect(await unit(web4, name), name).toEqual({ active: 'active', enabled: 'enabled' });
      expect((await statusOf(web4)).body).toMatchObject({ status: 'ok', version });
      const reply = await waitFor("HAProxy on web-4 to pass web-4's check", async () => {
        const r = await get(`http://${web4.address}/`, { ca: false });
        return r.code === '200' ? r : undefined;
      });
      expect(reply.node).toBe('web-4');
    },
  );

  step(
    '9. a replicated standby on web-3 and a switchover there and back: exposedb --add-standby on web-1, apt-get postgresql and standby init on web-3, status on both, roles swapped and swapped back',
    async () => {
      // web-3 (refused as a web node in step 2) becomes the standby: the same release as web-1, PostgreSQL from apt.
      web3.copyIn(nextDeb, NEXT_DEB_IN_HOST);
      expectOk(await web3.exec(['dpkg', '-i', NEXT_DEB_IN_HOST], { allowFailure: true }), 'dpkg -i the next release on web-3');
      expect(await installed(web3, 'postgresql')).toBeUndefined();
      const refused = await knocker(web3, ['standby', 'status', '--json']);
      expect(refused.exitCode).not.toBe(0);

      const add = await knocker(web1, ['exposedb', '--add-standby', web3.address]);
      expectOk(add, 'knocker exposedb --add-standby');
      const bundle = add.stdout.split('\n')[0]!;
      expect(bundle).toBe(`/opt/knocknoc/etc/standby-${web3.address}.json`);
      const inWeb3 = `/root/standby-${web3.address}.json`;
      web3.write(inWeb3, web1.read(bundle), 0o600);
      await sqlOn(web1, 'CREATE TABLE knocker_e2e_probe (id int PRIMARY KEY)');

      expectOk(
        await web3.exec(['apt-get', 'install', '-y', '-qq', 'postgresql'], {
          env: { DEBIAN_FRONTEND: 'noninteractive' },
          allowFailure: true,
          timeoutMs: 600_000,
        }),
        'apt-get install postgresql on web-3',
      );
      const init = await knocker(web3, ['standby', 'init', '--bundle', inWeb3]);
      expectOk(init, 'knocker standby init');
      expect(init.stdout).toContain(`@${web1.address}:5432,${web3.address}:5432/knocknoc?target_session_attrs=read-write`);
      await expectPair(web1, web3, 1);

      await switchover(web1, web3, 2);
      await switchover(web3, web1, 3);

      // The web nodes (still on web-1's address only) serve again once web-1 is the primary again.
      await untilServing([web1, web2]);
      await untilHaproxySays('web-1', 'UP');
      await untilHaproxySays('web-2', 'UP');
    },
    600_000,
  );

  /** The cluster's unit and knocker's drop-in for it (boot fencing). */
  const clusterUnit = `postgresql@${cluster}.service`;
  const dropIn = `/etc/systemd/system/${clusterUnit}.d/knocker-standby.conf`;
  /** SQL on `target`'s cluster from `from`, the other host of the pair, as the replication role (its passfile and the cluster's CA, verify-full). */
  const sqlAcross = (from: Host, target: Host, text: string) =>
    from.exec(
      [
        'psql',
        `host=${target.address} port=5432 dbname=postgres user=knocker_replicator sslmode=verify-full sslrootcert=/var/lib/knocknoc/standby/ca.crt connect_timeout=2`,
        '-XAtq',
        '-c',
        text,
      ],
      { env: { PGPASSFILE: '/var/lib/knocknoc/standby/replication.pgpass' }, allowFailure: true, timeoutMs: 10_000 },
    );

  step(
    "10. web-1, the primary, loses power; standby promote on web-3; web-1 booted: its cluster comes back read-only by itself (systemd runs the drop-in's check: web-3 is the primary), sampled from web-3 through the boot; standby rejoin makes it web-3's streaming standby",
    async () => {
      // Both hosts of the pair have the check before their cluster starts, and systemd has read it.
      for (const host of [web1, web3]) {
        expect(host.read(dropIn), host.name).toMatch(
          /^ExecStartPre=\/usr\/bin\/timeout --kill-after=5 60 \/opt\/knocknoc\/knocker\/knocker standby pre-start$/m,
        );
        expect((await host.exec(['systemctl', 'show', '--property=DropInPaths', clusterUnit])).stdout, host.name).toContain(dropIn);
      }
      await sqlOn(web1, 'INSERT INTO knocker_e2e_probe VALUES (10)');
      await waitFor(
        'row 10 on web-3',
        async () => ((await sqlOn(web3, 'SELECT count(*) FROM knocker_e2e_probe WHERE id = 10')) === '1' ? true : undefined),
        30_000,
      );
      await web1.powerCut();
      const promote = await knocker(web3, ['standby', 'promote']);
      expectOk(promote, 'knocker standby promote on web-3');
      expect(promote.stdout.trim()).toBe(`primary ${web3.address}:5432`);
      await sqlOn(web3, 'INSERT INTO knocker_e2e_probe VALUES (11)');

      // Through the whole boot, every answer web-1's cluster gives is a standby's, read-only.
      const samples: string[] = [];
      let booted = false;
      const sampler = (async () => {
        while (!booted) {
          const r = await sqlAcross(web3, web1, `SELECT pg_is_in_recovery()::text || ' ' || current_setting('transaction_read_only')`);
          if (r.exitCode === 0) samples.push(r.stdout);
        }
      })();
      const booting = Date.now();
      try {
        await web1.boot();
      } finally {
        booted = true;
        await sampler;
      }
      note(`web-1 booted after the promote in ${seconds(booting)}; ${samples.length} answers sampled during its boot`);
      const after = await sqlAcross(web3, web1, `SELECT pg_is_in_recovery()::text || ' ' || current_setting('transaction_read_only')`);
      expect(after.exitCode, after.stderr).toBe(0);
      samples.push(after.stdout);
      expect(new Set(samples)).toEqual(new Set(['true on']));
      expect((await unit(web1, clusterUnit)).active).toBe('active');
      const refused = await web1.exec(
        ['runuser', '-u', 'postgres', '--', 'psql', '-XAtq', '-d', 'postgres', '-c', 'INSERT INTO knocker_e2e_probe VALUES (12)'],
        {
          allowFailure: true,
        },
      );
      expect(refused.exitCode).not.toBe(0);
      expect(refused.stderr).toContain('read-only transaction');
      // Why, in the unit's journal.
      const journal = await web1.exec(['journalctl', '--no-pager', '-b', '-u', clusterUnit]);
      expect(journal.stdout).toContain(`fenced: ${web3.address} is the primary now`);

      const rejoin = await knocker(web1, ['standby', 'rejoin']);
      expectOk(rejoin, 'knocker standby rejoin on web-1');
      expect(rejoin.stdout.trim()).toMatch(new RegExp(`^standby of ${web3.address.replace(/\./g, '\\.')}:5432 `));
      await expectPair(web3, web1, 4);
      expect(await sqlOn(web1, 'SELECT count(*) FROM knocker_e2e_probe WHERE id IN (10, 11, 12)')).toBe('2');
    },
    600_000,
  );

  step(
    '11. exposedb on web-1 names the roles as they are now: the standby after the promote, the primary again after a switchover back (the web nodes serve again)',
    async () => {
      const asStandby = await knocker(web1, ['exposedb', '--list']);
      expectOk(asStandby, 'knocker exposedb --list on web-1, the standby');
      expect(asStandby.stdout.split('\n')).toEqual([`${web2.address}/32`]);
      expect(asStandby.stderr).toContain(`this host is the standby now; the primary is ${web3.address}:5432`);
      await switchover(web3, web1, 5);
      const asPrimary = await knocker(web1, ['exposedb', '--list']);
      expectOk(asPrimary, 'knocker exposedb --list on web-1, the primary again');
      expect(asPrimary.stderr).toContain(`this host is the primary; its standby is ${web3.address}:5432`);
      const init = await knocker(web1, ['exposedb', '--init']);
      expectOk(init, 'knocker exposedb --init on web-1');
      expect(init.stderr).toContain(`This primary has a standby (${web3.address}:5432)`);
      await untilServing([web1, web2]);
      await untilHaproxySays('web-1', 'UP');
      await untilHaproxySays('web-2', 'UP');
    },
  );

  interface PairSnapshot {
    database: {
      role: string;
      standbys: Array<{ name: string; clientAddress: string | null; state: string | null; lagBytes: number | null; slot: string | null }>;
      slots: Array<{ name: string; active: boolean }>;
      upstream?: { connected: boolean; lagBytes: number | null };
      limited: boolean;
    } | null;
  }

  /** `knocker status --json` on `host`, which must exit 0: its database part. */
  async function pairSnapshot(host: Host): Promise<PairSnapshot['database']> {
    const result = await knocker(host, ['status', '--json']);
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    return (JSON.parse(result.stdout) as PairSnapshot).database;
  }

  step("12. knocker status --json on the primary host (web-1): healthy, the database the primary, web-3's slot active and its standby listed", async () => {
    const database = await pairSnapshot(web1);
    expect(database?.role).toBe('primary');
    const slot = `knocker_${web3.address.replace(/\./g, '_')}`;
    expect(database?.standbys.map((s) => s.slot)).toEqual([slot]);
    expect(database?.slots).toEqual([expect.objectContaining({ name: slot, active: true })]);
    // web-1's node reaches its database at 127.0.0.1, which is not the pair's address: status reads
    // replication with the nodes' login (no pg_monitor), so the standby's address, state and lag are hidden.
    note(`status on web-1: standbys ${JSON.stringify(database?.standbys)}, limited ${database?.limited}`);
  });

  /**
   * The standby host's half of the status check. web-3 holds the standby but no web node, so it has
   * no knocknoc.conf, and `knocker status` there exits 3 ("cannot tell which database to watch").
   * Enable once status reads a standby host's pair from its standby state (src/status).
   */
  const STATUS_ON_STANDBY_HOST = false;
  (STATUS_ON_STANDBY_HOST ? step : test.skip)(
    '12b. knocker status --json on the standby host (web-3): this host the standby, streaming from web-1',
    async () => {
      const database = await pairSnapshot(web3);
      expect(database?.role).toBe('standby');
      expect(database?.upstream).toMatchObject({ connected: true });
      expect((await knocker(web3, ['status', '--once'])).stdout).toContain(web1.address);
    },
  );

  /** The primary host's own web node has the pair's multi-host DatabaseURL (issue 22 rule 6): it follows a switchover instead of answering 503. */
  const OWN_NODE_FOLLOWS = true;
  (OWN_NODE_FOLLOWS ? step : test.skip)(
    "13. web-1's own node follows a switchover to web-3 and back under load: /_status 200 on web-1 while web-3 is the primary, in rotation throughout",
    async () => {
      const conf = web1.read('/opt/knocknoc/etc/knocknoc.conf');
      expect(conf).toMatch(new RegExp(`^DatabaseURL\\s*=\\s*\\S*@${web1.address.replace(/\./g, '\\.')}:5432,${web3.address.replace(/\./g, '\\.')}:5432/`, 'm'));
      const load = new Load(client, frontend(), { rate: 20, cacert: CA_IN_CLIENT });
      let timeline = 6;
      try {
        for (const [from, to] of [
          [web1, web3],
          [web3, web1],
        ] as const) {
          await load.more(10);
          await switchover(from, to, timeline);
          timeline += 1;
          const switched = Date.now();
          // web-2 (another host, installed on web-1's address alone before the pair was made) serves only
          // from web-1; web-1's own node, given the pair's string by add-standby, serves from either.
          const serving = to === web3 ? [web1] : [web1, web2];
          await untilServing(serving, `from ${to.name}`);
          note(`${serving.map((h) => h.name).join(' and ')} serve again ${seconds(switched)} after the switchover to ${to.name}`);
          for (const host of serving) await untilHaproxySays(host.name, 'UP');
        }
      } finally {
        const report = await load.stop();
        note(`load through HAProxy over two switchovers: ${report.total} GETs (${JSON.stringify(report.byNode)}), ${report.failed.length} failed`);
      }
      // The node's DatabaseURL names this host by the pair's address: status reads the standby with the replication role.
      const database = await pairSnapshot(web1);
      expect(database?.standbys.map((s) => [s.clientAddress, s.state])).toEqual([[web3.address, 'streaming']]);
      expect(typeof database?.standbys[0]?.lagBytes).toBe('number');
    },
    600_000,
  );
}
