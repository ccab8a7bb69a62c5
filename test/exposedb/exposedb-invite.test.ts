// The one-line join (issue 26): `exposedb --invite` on the primary, `install --join` on the new
// node, and every attack the issue names, each one trying to break it: a server with another CA, a
// forged leaf with the real CA appended, the real server behind a wrong host, a reused token, two
// joins at once, an expired and a revoked invitation, a join from another address, and the secret
// looked for in every argv of every process knocker starts and in every file of both roots.
// Real PostgreSQL clusters and real knocknoc-server nodes on loopback: the primary is 127.0.0.90,
// joining nodes 127.0.0.91–94, impostors 127.0.0.95–97.
import { execa } from 'execa';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { KnocknocConf } from '../../src/config/knocknoc-conf.js';
import { redeemToken } from '../../src/join/redeem.js';
import { parseToken, type JoinToken } from '../../src/join/token.js';
import { withAdminSession } from '../../src/postgres/admin.js';
import { clusterOwner, readClusterSettings } from '../../src/postgres/cluster.js';
import { readCertificate } from '../../src/postgres/certificates.js';
import { withClient } from '../../src/postgres/connect.js';
import { probeTls } from '../../src/postgres/tls-probe.js';
import { freePort } from '../../src/system/host.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { appUrl, clusterCa, hbaFile, installPrimary, rootAdmin, url } from '../helpers/exposedb.js';
import { knocker, KNOCKER, type RunResult } from '../helpers/knocker.js';
import { startTestCluster } from '../helpers/pg.js';
import { destroyRoot, makeRoot, snapshotTree } from '../helpers/roots.js';
import { waitFor } from '../helpers/server.js';
import { makeTempDir } from '../helpers/temp.js';

let primary: Root;
const roots: Root[] = [];
const TOKEN = /^knk1:[a-z0-9]{10}\.[A-Za-z0-9_-]{32}@127\.0\.0\.90:\d+\/sha256:[0-9a-f]{64}$/;

async function newRoot(): Promise<Root> {
  const root = await makeRoot();
  roots.push(root);
  return root;
}

const exposedb = (...args: string[]) => knocker(['exposedb', '--root', primary.dir, ...args]);

async function invite(address: string, ...more: string[]): Promise<{ text: string; token: JoinToken; result: RunResult }> {
  const result = await exposedb('--invite', `${address}/32`, ...more);
  expect(result.exitCode, result.stderr).toBe(0);
  expect(result.stdout).toMatch(TOKEN);
  const parsed = parseToken(result.stdout);
  if (!parsed.ok) throw new Error(parsed.error);
  // The explanation is on stderr, without the secret.
  expect(result.stderr).toContain('knocker install --join TOKEN');
  expect(result.stderr).not.toContain(parsed.value.secret);
  return { text: result.stdout.trim(), token: parsed.value, result };
}

async function join(root: Root, address: string, token: string, how: 'env' | 'stdin' | 'flag' = 'env'): Promise<RunResult & { listen: string }> {
  const listen = `${address}:${await freePort(address)}`;
  const args = ['install', '--root', root.dir, '--listen', listen];
  const result =
    how === 'flag'
      ? await knocker([...args, '--join', token])
      : how === 'stdin'
        ? await knocker([...args, '--join', '-'], { input: `${token}\n` })
        : await knocker(args, { env: { KNOCKER_JOIN_TOKEN: token } });
  return { ...result, listen };
}

/** SQL as the primary's superuser, in the Knocknoc database (where the invitations are). */
async function knocknocAdmin<T = Record<string, unknown>>(sql: string, values: unknown[] = []): Promise<T[]> {
  const settings = (await readClusterSettings(primary.path(PATHS.pgData)))!;
  const access = { socketDir: primary.path(PATHS.pgSocketDir), port: settings.port, osUser: await clusterOwner(), database: 'knocknoc' };
  return withAdminSession(access, undefined, async (session) => (await session.query<T>(sql, values)).rows);
}

async function inviteRow(id: string) {
  const rows = await knocknocAdmin<{ redeemed_from: string | null; revoked: boolean; canlogin: boolean | null }>(
    `SELECT host(i.redeemed_from) AS redeemed_from, i.revoked_at IS NOT NULL AS revoked, r.rolcanlogin AS canlogin
       FROM knocker_join.invites i LEFT JOIN pg_roles r ON r.rolname = i.role WHERE i.id = $1`,
    [id],
  );
  return rows[0];
}

/** Every file under a root holding `needle` (logs, configuration, PostgreSQL's data and log). */
async function filesHolding(root: Root, needle: string): Promise<string[]> {
  const found: string[] = [];
  for (const [file, entry] of await snapshotTree(root.dir)) {
    if (entry.hash === 'dir' || entry.hash === 'other') continue;
    const text = await fs.readFile(path.join(root.dir, file)).catch(() => Buffer.alloc(0));
    if (text.includes(needle)) found.push(file);
  }
  return found;
}

beforeAll(async () => {
  primary = await makeRoot();
  await installPrimary(primary, '127.0.0.90');
  const init = await exposedb('--init');
  expect(init.exitCode, init.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  await Promise.all(roots.splice(0).map(destroyRoot));
  await destroyRoot(primary);
});

test('two commands: --invite prints the token alone, --join installs a serving, registered node; the token then is spent', async () => {
  const { text, token } = await invite('127.0.0.91', '--name', 'web-2', '--ttl', '2h');
  const listed = await exposedb('--invites');
  expect(listed.exitCode).toBe(0);
  expect(listed.stdout).toMatch(new RegExp(`^${token.id}  127\\.0\\.0\\.91/32  web-2  open\\s+`, 'm'));
  expect(listed.stdout).not.toContain(token.secret);
  // The primary holds a SCRAM verifier, never the secret; the invitation's line is in knocker's block.
  const hba = await fs.readFile(hbaFile(primary), 'utf8');
  expect(hba).toMatch(new RegExp(`^hostssl  knocknoc  knocker_join_${token.id}  127\\.0\\.0\\.91/32  scram-sha-256$`, 'm'));
  expect(hba).toMatch(/^hostssl {2}knocknoc {2}knocknoc_remote {2}127\.0\.0\.91\/32 {2}scram-sha-256$/m);
  const [role] = await rootAdmin<{ rolpassword: string; rolvaliduntil: Date }>(primary, 'SELECT rolpassword, rolvaliduntil FROM pg_authid WHERE rolname = $1', [
    `knocker_join_${token.id}`,
  ]);
  expect(role!.rolpassword).toMatch(/^SCRAM-SHA-256\$4096:/);
  expect(new Date(role!.rolvaliduntil).getTime() - Date.now()).toBeGreaterThan(7_000_000);

  const node = await newRoot();
  const joined = await join(node, '127.0.0.91', text, 'stdin');
  expect(joined.exitCode, joined.stderr).toBe(0);
  expect(joined.stdout).toBe('');
  const conf = KnocknocConf.parse(await fs.readFile(node.path(PATHS.conf), 'utf8'));
  expect(conf.get('DatabaseOption')).toBe('3');
  expect(conf.get('ServerName')).toBe('web-2');
  // Its lasting credential is the nodes' login, not the join secret.
  expect(conf.get('DatabaseURL')).toMatch(/^postgres:\/\/knocknoc_remote:[^@]+@127\.0\.0\.90:\d+\/knocknoc\?sslmode=verify-full&sslrootcert=/);
  expect((await fs.stat(node.path(PATHS.conf))).mode & 0o777).toBe(0o600);
  expect(await fs.readFile(node.path(PATHS.databaseCa), 'utf8')).toBe(await clusterCa(primary));
  const status = await fetch(`http://${joined.listen}/_status`);
  expect(status.status).toBe(200);
  const registered = await withClient(
    await appUrl(primary),
    { sourceAddress: '127.0.0.90' },
    async (c) => (await c.query<{ listen: string }>(`SELECT listen FROM servers WHERE name = 'web-2'`)).rows,
  );
  expect(registered).toEqual([{ listen: joined.listen }]);
  expect(await inviteRow(token.id)).toEqual({ redeemed_from: '127.0.0.91', revoked: false, canlogin: false });
  const after = await exposedb('--invites');
  expect(after.stdout).toMatch(new RegExp(`^${token.id}  127\\.0\\.0\\.91/32  web-2  used\\s+\\S+  127\\.0\\.0\\.91 at `, 'm'));

  // Reused: refused, and the second root stays empty.
  const again = await newRoot();
  const reused = await join(again, '127.0.0.91', text);
  expect(reused.exitCode).toBe(3);
  expect(reused.stderr).toContain('error: the primary refused the invitation: it was already used, revoked, or has expired; nothing changed');
  expect(await snapshotTree(again.dir)).toEqual(new Map());

  // The next invitation prunes the used one: its role and its line go, the node's own entry stays.
  const next = await invite('127.0.0.92');
  expect(next.result.stderr).toContain('prune 1 used, expired or revoked invitation');
  expect(await inviteRow(token.id)).toEqual({ redeemed_from: '127.0.0.91', revoked: false, canlogin: null });
  const pruned = await fs.readFile(hbaFile(primary), 'utf8');
  expect(pruned).not.toContain(`knocker_join_${token.id}`);
  expect(pruned).toMatch(/^hostssl {2}knocknoc {2}knocknoc_remote {2}127\.0\.0\.91\/32 {2}scram-sha-256$/m);
  await exposedb('--revoke', next.token.id);

  // Not one file of either root holds the secret (logs, configuration, PostgreSQL's data and log).
  expect(await filesHolding(primary, token.secret)).toEqual([]);
  expect(await filesHolding(node, token.secret)).toEqual([]);

  // Retired for good: stopped, then forgotten on the primary, which takes its address out of the
  // allow-list; its lasting credential then no longer gets in from there.
  expect((await knocker(['service', 'stop', 'server', '--root', node.dir])).exitCode).toBe(0);
  const dryForget = await knocker(['server', 'forget', 'web-2', '--root', primary.dir, '--dry-run']);
  expect(dryForget.stdout).toContain('pg_hba.conf: stop allowing knocknoc_remote from 127.0.0.91/32');
  const forgot = await knocker(['server', 'forget', 'web-2', '--root', primary.dir]);
  expect(forgot.exitCode, forgot.stderr).toBe(0);
  expect(forgot.stderr).toContain('127.0.0.91/32 no longer allowed');
  expect(await fs.readFile(hbaFile(primary), 'utf8')).not.toContain('127.0.0.91/32');
  const nodeUrl = url(conf.get('DatabaseURL'));
  await expect(withClient(nodeUrl, { sourceAddress: '127.0.0.91' }, async () => 'in')).rejects.toMatchObject({ code: '28000' });
}, 120_000);

test('two joins at once with one token: exactly one gets the connection string', async () => {
  const { token } = await invite('127.0.0.93');
  const results = await Promise.allSettled([
    redeemToken(token, { sourceAddress: '127.0.0.93' }),
    redeemToken(token, { sourceAddress: '127.0.0.93' }),
    redeemToken(token, { sourceAddress: '127.0.0.93' }),
  ]);
  const won = results.filter((r) => r.status === 'fulfilled');
  expect(won).toHaveLength(1);
  expect((won[0] as PromiseFulfilledResult<{ databaseUrl: string }>).value.databaseUrl).toMatch(/^postgres:\/\/knocknoc_remote:/);
  for (const lost of results.filter((r) => r.status === 'rejected')) {
    expect(String((lost as PromiseRejectedResult).reason.message)).toMatch(/already used, revoked, or has expired/);
  }
  expect((await inviteRow(token.id))!.redeemed_from).toBe('127.0.0.93');
}, 60_000);

test('another address, a revoked and an expired invitation: refused by PostgreSQL, nothing written on the node', async () => {
  const { text, token } = await invite('127.0.0.94');
  // From another host: pg_hba.conf has no line for it (knocker's reject lines end it).
  const stranger = await newRoot();
  const elsewhere = await join(stranger, '127.0.0.92', text);
  expect(elsewhere.exitCode).toBe(3);
  expect(elsewhere.stderr).toContain("error: the primary refused the invitation from this host's address");
  expect(await snapshotTree(stranger.dir)).toEqual(new Map());
  expect((await inviteRow(token.id))!.canlogin).toBe(true);

  // Revoked: its role is gone, its line and the address it had added too.
  const revoked = await exposedb('--revoke', token.id);
  expect(revoked.exitCode, revoked.stderr).toBe(0);
  expect(revoked.stdout).toBe(`Revoked invitation ${token.id} (127.0.0.94/32).`);
  const hba = await fs.readFile(hbaFile(primary), 'utf8');
  expect(hba).not.toContain(`knocker_join_${token.id}`);
  expect(hba).not.toContain('127.0.0.94/32');
  const late = await join(await newRoot(), '127.0.0.94', text);
  expect(late.exitCode).toBe(3);
  expect(late.stderr).toContain('error: the primary refused the invitation');
  expect((await exposedb('--invites')).stdout).toMatch(new RegExp(`^${token.id}  127\\.0\\.0\\.94/32  -\\s+revoked\\s+\\S+  revoked at `, 'm'));

  // Expired: the primary's clock moved past it (role VALID UNTIL and the row's expiry): refused.
  const old = await invite('127.0.0.94', '--ttl', '1m');
  await knocknocAdmin(`UPDATE knocker_join.invites SET expires_at = now() - interval '1 second' WHERE id = $1`, [old.token.id]);
  const rowOnly = await join(await newRoot(), '127.0.0.94', old.text);
  expect(rowOnly.exitCode).toBe(3);
  expect(rowOnly.stderr).toContain('already used, revoked, or has expired');
  const expired = await invite('127.0.0.94', '--ttl', '1m');
  await knocknocAdmin(`ALTER ROLE knocker_join_${expired.token.id} VALID UNTIL '2000-01-01'`);
  const roleExpired = await join(await newRoot(), '127.0.0.94', expired.text);
  expect(roleExpired.exitCode).toBe(3);
  expect(roleExpired.stderr).toContain('error: the primary refused the invitation');
  const listed = await exposedb('--invites');
  expect(listed.stdout).toMatch(new RegExp(`^${old.token.id}  127\\.0\\.0\\.94/32  -\\s+expired\\s+`, 'm'));
  await exposedb('--revoke', expired.token.id);
}, 120_000);

test('a join whose own checks fail (its listen port taken) leaves the invitation unused: the same token then joins', async () => {
  const { text, token } = await invite('127.0.0.98', '--name', 'web-98');
  const port = await freePort('127.0.0.98');
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.98', resolve));
  const node = await newRoot();
  let taken: RunResult;
  try {
    taken = await knocker(['install', '--root', node.dir, '--listen', `127.0.0.98:${port}`], { env: { KNOCKER_JOIN_TOKEN: text } });
  } finally {
    await new Promise((resolve) => squatter.close(resolve));
  }
  expect(taken.exitCode).toBe(3);
  expect(taken.stderr).toContain(`error: preflight failed: listen address 127.0.0.98:${port}: port ${port} is already in use on 127.0.0.98`);
  expect(taken.stderr).toContain('hint: the invitation was not used: once this is fixed, run the same join again');
  // Not redeemed: its role may still log in, nothing was written on the node.
  expect(await inviteRow(token.id)).toEqual({ redeemed_from: null, revoked: false, canlogin: true });
  expect(await snapshotTree(node.dir)).toEqual(new Map());

  const joined = await join(node, '127.0.0.98', text);
  expect(joined.exitCode, joined.stderr).toBe(0);
  expect((await fetch(`http://${joined.listen}/_status`)).status).toBe(200);
  expect((await inviteRow(token.id))!.redeemed_from).toBe('127.0.0.98');
  expect((await knocker(['service', 'stop', 'server', '--root', node.dir])).exitCode).toBe(0);
}, 120_000);

/**
 * A forged leaf for `host` with the cluster's real CA appended: signed by an attacker's CA that
 * copies the real one's name and key identifier, so the leaf looks issued by the real CA and a walk
 * of the presented chain reaches the real CA (whose pin matches); only a signature check tells.
 */
async function forgedChain(dir: string, host: string, realCaFile: string): Promise<{ cert: string; key: string }> {
  const ossl = (...args: string[]) => execa('openssl', args);
  const subject = (await ossl('x509', '-in', realCaFile, '-noout', '-subject', '-nameopt', 'compat')).stdout.replace(/^subject=/, '').trim();
  const skid = (await ossl('x509', '-in', realCaFile, '-noout', '-ext', 'subjectKeyIdentifier')).stdout.split('\n')[1]!.trim();
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const file = (name: string) => path.join(dir, name);
  const fakeCa = [
    '-addext',
    `subjectKeyIdentifier=${skid.replace(/:/g, '')}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign',
  ];
  await ossl('req', '-x509', ...ec, '-days', '2', '-subj', subject, '-keyout', file('fake-ca.key'), '-out', file('fake-ca.crt'), ...fakeCa);
  await ossl('req', '-new', ...ec, '-subj', `/CN=${host}`, '-keyout', file('forged.key'), '-out', file('forged.csr'));
  await fs.writeFile(file('leaf.ext'), `subjectAltName=IP:${host}\nbasicConstraints=critical,CA:FALSE\n`);
  await ossl(
    'x509',
    '-req',
    '-in',
    file('forged.csr'),
    '-CA',
    file('fake-ca.crt'),
    '-CAkey',
    file('fake-ca.key'),
    '-set_serial',
    '7',
    '-days',
    '2',
    '-extfile',
    file('leaf.ext'),
    '-out',
    file('forged.crt'),
  );
  await fs.appendFile(file('forged.crt'), await fs.readFile(realCaFile, 'utf8'));
  return { cert: file('forged.crt'), key: file('forged.key') };
}

test('impostors: another CA, a forged leaf with the real CA appended, the real server behind a wrong host: refused before the secret is used', async () => {
  const { text, token } = await invite('127.0.0.91');
  const scratch = await makeTempDir('knocker-join-');
  const impostor = await startTestCluster({ host: '127.0.0.95', ssl: true, settings: ['log_connections = on'] });
  const retarget = (host: string, port: number) => text.replace(/@[^/]+\//, `@${host}:${port}/`);
  try {
    // Another CA: the pin matches nothing it presents.
    const other = await join(await newRoot(), '127.0.0.91', retarget('127.0.0.95', impostor.port));
    expect(other.exitCode).toBe(3);
    expect(other.stderr).toContain('does not present the cluster CA the token pins');
    expect(other.stderr).toContain('the secret was not used and nothing changed');

    // The real CA appended to a forged leaf: the pin walk finds it, verify-full does not.
    const forged = await forgedChain(scratch, '127.0.0.95', primary.path(PATHS.clusterCaCert));
    // Written into the files PostgreSQL owns (owner and mode 0600 kept).
    await fs.writeFile(path.join(impostor.dataDir, 'server.crt'), await fs.readFile(forged.cert));
    await fs.writeFile(path.join(impostor.dataDir, 'server.key'), await fs.readFile(forged.key));
    await impostor.restart().catch(async (error) => {
      throw new Error(`${error}\n${await fs.readFile(impostor.logFile, 'utf8')}`);
    });
    const forgedPem = readCertificate(await fs.readFile(forged.cert, 'utf8'), 'forged.crt').fingerprint256;
    await waitFor('the impostor to present the forged chain', async () => {
      const seen = await probeTls('127.0.0.95', impostor.port);
      return seen.offered && seen.certificate.fingerprint256 === forgedPem ? true : undefined;
    });
    const appended = await join(await newRoot(), '127.0.0.91', retarget('127.0.0.95', impostor.port));
    expect(appended.exitCode).toBe(3);
    expect(appended.stderr).toContain('failed verify-full with the pinned cluster CA');
    // The impostor never saw a login attempt by the invitation's role.
    expect(await fs.readFile(impostor.logFile, 'utf8')).not.toContain(`knocker_join_${token.id}`);
  } finally {
    await impostor.destroy();
  }

  // The real primary behind another address (a relay): its certificate does not name that host.
  const primaryPort = Number(/:(\d+)\//.exec(text)![1]);
  const relay = net.createServer((inbound) => {
    const outbound = net.connect({ host: '127.0.0.90', port: primaryPort });
    inbound.pipe(outbound).pipe(inbound);
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
  });
  const relayPort = await freePort('127.0.0.96');
  await new Promise<void>((resolve) => relay.listen(relayPort, '127.0.0.96', resolve));
  try {
    const wrongHost = await join(await newRoot(), '127.0.0.91', retarget('127.0.0.96', relayPort));
    expect(wrongHost.exitCode).toBe(3);
    expect(wrongHost.stderr).toContain('failed verify-full with the pinned cluster CA');
  } finally {
    await new Promise((resolve) => relay.close(resolve));
  }
  // The invitation is untouched by all three: still open, still able to log in.
  expect(await inviteRow(token.id)).toEqual({ redeemed_from: null, revoked: false, canlogin: true });
  await exposedb('--revoke', token.id);
  await fs.rm(scratch, { recursive: true, force: true });
}, 120_000);

test('the secret is in no argv of any process knocker starts, nor in --dry-run output', async () => {
  const trace = await makeTempDir('knocker-strace-');
  // strace -f follows every child; the node's knocknoc-server daemon outlives the install, so the
  // trace is ended (strace detaches) once knocker's own process has exited.
  const traced = async (file: string, args: string[], env: Record<string, string> = {}) => {
    const out = path.join(trace, file);
    const child = execa('strace', ['-f', '-q', '-e', 'trace=execve', '-s', '100000', '-o', out, process.execPath, KNOCKER, ...args], {
      env: { ...process.env, ...env },
      reject: false,
      input: '',
    });
    const exitCode = await waitFor(
      `knocker ${args[0]} to exit under strace`,
      async () => {
        const text = await fs.readFile(out, 'utf8').catch(() => '');
        const first = /^(\d+) /.exec(text)?.[1];
        const exit = first ? new RegExp(`^${first} \\+\\+\\+ exited with (\\d+)`, 'm').exec(text) : null;
        return exit ? Number(exit[1]) : undefined;
      },
      // strace -f slows every process it follows: 8 s here alone, over 60 s beside other suites.
      180_000,
    );
    child.kill('SIGTERM');
    const result = await child;
    return { exitCode, stdout: String(result.stdout), stderr: String(result.stderr) };
  };
  const invited = await traced('invite', ['exposedb', '--root', primary.dir, '--invite', '127.0.0.92/32']);
  expect(invited.exitCode, String(invited.stderr)).toBe(0);
  const token = parseToken(String(invited.stdout));
  if (!token.ok) throw new Error(token.error);
  const dry = await knocker(['install', '--root', (await newRoot()).dir, '--listen', '127.0.0.92:18799', '--dry-run'], {
    env: { KNOCKER_JOIN_TOKEN: String(invited.stdout) },
  });
  expect(dry.exitCode, dry.stderr).toBe(0);
  expect(dry.stderr).toContain('presents the cluster CA the token pins');
  expect(`${dry.stdout}${dry.stderr}`).not.toContain(token.value.secret);
  const node = await newRoot();
  const listen = `127.0.0.92:${await freePort('127.0.0.92')}`;
  const joined = await traced('join', ['install', '--root', node.dir, '--listen', listen, '--server-name', 'web-traced'], {
    KNOCKER_JOIN_TOKEN: String(invited.stdout).trim(),
  });
  expect(joined.exitCode, String(joined.stderr)).toBe(0);
  for (const file of ['invite', 'join']) {
    const execs = await fs.readFile(path.join(trace, file), 'utf8');
    // The trace did see the children (PostgreSQL's admin helper, knocknoc-server…).
    expect(execs.split('\n').filter((l) => l.includes('execve(')).length).toBeGreaterThan(1);
    expect(execs).not.toContain(token.value.secret);
  }
  expect(await filesHolding(node, token.value.secret)).toEqual([]);
  expect(await filesHolding(primary, token.value.secret)).toEqual([]);
  await fs.rm(trace, { recursive: true, force: true });
}, 420_000);
