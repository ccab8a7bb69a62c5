// Verified TLS between the hosts: exposedb --init gives the primary a certificate from a CA of the
// cluster's own, the nodes connect with sslmode=verify-full and the CA (install --database-ca), a
// node with another CA or a server impersonating the primary is refused, renewal keeps the nodes
// connected, and knocker status tells the certificate's expiry. Real PostgreSQL clusters, real
// knocknoc-server nodes; the primary is 127.0.0.70, nodes 127.0.0.71–72, an impostor 127.0.0.70 too.
import { execa } from 'execa';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { selfSignedArgs } from '../helpers/certs.js';
import { signedBy, readCertificate } from '../../src/postgres/certificates.js';
import { connect, withClient } from '../../src/postgres/connect.js';
import { probeTls } from '../../src/postgres/tls-probe.js';
import { freePort } from '../../src/system/host.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { asNode, clusterCa, installPrimary, rootAdmin, url } from '../helpers/exposedb.js';
import { knocker, type RunResult } from '../helpers/knocker.js';
import { startTestCluster } from '../helpers/pg.js';
import { destroyRoot, makeRoot } from '../helpers/roots.js';
import { waitFor } from '../helpers/server.js';
import { makeTempDir } from '../helpers/temp.js';

let primary: Root;
let node: Root;
let scratch: string;
let printed: string;
let nodeListen: string;
/** Every output of every command run here: a private key must appear in none. */
const outputs: string[] = [];

async function run(args: string[], env?: Record<string, string>): Promise<RunResult> {
  const result = await knocker(args, { env });
  outputs.push(result.stdout, result.stderr);
  return result;
}
const exposedb = (...args: string[]) => run(['exposedb', '--root', primary.dir, ...args]);

async function installNode(root: Root, address: string, caFile: string) {
  const listen = `${address}:${await freePort(address)}`;
  const result = await run(
    ['install', '--root', root.dir, '--listen', listen, '--server-name', `node-${address}`, '--database-option', '3', '--database-ca', caFile],
    {
      KNOCKNOC_DATABASE_URL: printed,
    },
  );
  return { ...result, listen };
}

/** A CA of someone else's, and a file to give a node. */
async function otherCa(): Promise<string> {
  const dir = path.join(scratch, 'other-ca');
  await fs.mkdir(dir, { recursive: true });
  const [openssl, ...args] = selfSignedArgs({ cn: 'someone else', days: 2, keyOut: `${dir}/ca.key`, certOut: `${dir}/ca.crt`, ec: true });
  await execa(openssl!, args);
  return `${dir}/ca.crt`;
}

/** A certificate from the cluster's own CA for `hosts`, valid `days` (as an operator could make one by hand). */
async function fromClusterCa(hosts: string, days: number, keyFile: string, certFile: string): Promise<void> {
  const csr = path.join(scratch, 'x.csr');
  const ext = path.join(scratch, 'x.ext');
  await fs.writeFile(ext, `subjectAltName = ${hosts}\nextendedKeyUsage = serverAuth\n`);
  await execa('openssl', [
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    '/CN=x',
    '-keyout',
    keyFile,
    '-out',
    csr,
  ]);
  await execa('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    primary.path(PATHS.clusterCaCert),
    '-CAkey',
    primary.path(PATHS.clusterCaKey),
    '-CAcreateserial',
    '-days',
    String(days),
    '-extfile',
    ext,
    '-out',
    certFile,
  ]);
  await execa('chown', ['postgres:postgres', keyFile, certFile]);
  await fs.chmod(keyFile, 0o600);
}

async function nodeStatus(): Promise<number> {
  return (await fetch(`http://${nodeListen}/_status`).catch(() => undefined))?.status ?? 0;
}

async function startedAt(): Promise<string> {
  return (await rootAdmin<{ t: string }>(primary, 'SELECT pg_postmaster_start_time()::text AS t'))[0]!.t;
}

beforeAll(async () => {
  scratch = await makeTempDir('knocker-tls-');
  [primary, node] = await Promise.all([makeRoot(), makeRoot()]);
  await installPrimary(primary, '127.0.0.70');
});
afterAll(async () => {
  await Promise.all([primary && destroyRoot(primary), node && destroyRoot(node)]);
  await Promise.all(spare.splice(0).map(destroyRoot));
  if (scratch) await fs.rm(scratch, { recursive: true, force: true });
});

/** Roots of nodes that never install (refused), removed at the end. */
const spare: Root[] = [];
async function spareRoot(): Promise<Root> {
  const root = await makeRoot();
  spare.push(root);
  return root;
}

test('--init: a CA of the cluster (key 0600, outside the data directory), a server certificate for the primary, ssl on, verify-full printed with the CA', async () => {
  const init = await exposedb('--init');
  expect(init.exitCode, init.stderr).toBe(0);
  printed = init.stdout;
  expect(printed).toMatch(/^postgres:\/\/knocknoc_remote:[^@]+@127\.0\.0\.70:\d+\/knocknoc\?sslmode=verify-full$/);

  const caKey = primary.path(PATHS.clusterCaKey);
  expect((await fs.stat(caKey)).mode & 0o777).toBe(0o600);
  expect(path.relative(primary.path(PATHS.pgData), caKey).startsWith('..')).toBe(true);
  const serverKey = await fs.stat(primary.path(PATHS.pgTlsKey));
  expect(serverKey.mode & 0o777).toBe(0o600);
  const ca = await clusterCa(primary);
  const server = readCertificate(await fs.readFile(primary.path(PATHS.pgTlsCert), 'utf8'), 'server.crt');
  expect(server.altNames).toEqual(['IP Address:127.0.0.70']);
  expect(signedBy(server.pem, ca)).toBe(true);
  expect(readCertificate(ca, 'ca.crt')).toMatchObject({ isCa: true, selfSigned: true });
  // PostgreSQL presents it, verified with the CA for the printed host.
  const { port } = url(printed);
  expect(await probeTls('127.0.0.70', port, { ca })).toMatchObject({
    offered: true,
    chainVerified: true,
    hostMatches: true,
    certificate: { fingerprint256: server.fingerprint256 },
  });
  expect(await rootAdmin(primary, `SELECT current_setting('ssl') AS ssl`)).toEqual([{ ssl: 'on' }]);
  // The operator is told which file the nodes need, and given it.
  expect(init.stderr).toContain(`with the cluster's CA certificate, kept in ${primary.path(PATHS.clusterCaCert)}.`);
  expect(init.stderr).toContain('knocker install --database-option 3 --database-ca FILE');
  expect(init.stderr).toContain(ca.trim());
  // The allow-list is hostssl lines only.
  expect((await exposedb('--add', '127.0.0.71/32')).exitCode).toBe(0);
  const hba = await fs.readFile(primary.path(`${PATHS.pgData}/pg_hba.conf`), 'utf8');
  expect(hba).toMatch(/^hostssl {2}knocknoc {2}knocknoc_remote {2}127\.0\.0\.71\/32 {2}scram-sha-256$/m);
  expect(hba).not.toMatch(/^host {5}knocknoc /m);
});

test('a node with the CA connects with verify-full and says what it verified; without TLS, or without the CA, it cannot', async () => {
  const joined = await installNode(node, '127.0.0.71', primary.path(PATHS.clusterCaCert));
  expect(joined.exitCode, joined.stdout + joined.stderr).toBe(0);
  nodeListen = joined.listen;
  expect(joined.stderr).toMatch(/✔ ok +database CA: CN=Knocknoc cluster CA \(127\.0\.0\.70\), expires \d{4}-\d\d-\d\d/);
  expect(joined.stderr).toMatch(/connected as knocknoc_remote; TLS, certificate verified for 127\.0\.0\.70/);
  expect(await nodeStatus()).toBe(200);
  // Without the CA the string alone cannot be verified: said, with what to do.
  const bare = await run(['install', '--root', (await spareRoot()).dir, '--listen', '127.0.0.71:1', '--database-option', '3', '--dry-run'], {
    KNOCKNOC_DATABASE_URL: printed,
  });
  expect(bare.exitCode).toBe(3);
  expect(bare.stderr).toContain('presented a certificate that no CA known here verifies (sslmode=verify-full, no CA given)');
  expect(bare.stderr).toContain('hint: give the CA certificate with --database-ca FILE');
  // Without TLS the primary refuses the node outright.
  await expect(withClient({ ...url(printed), sslmode: 'disable' }, { sourceAddress: '127.0.0.71' }, async () => 'in')).rejects.toMatchObject({ code: '28000' });
});

test("the CA from an answers file (database.ca, found from its folder), or named by the connection string's sslrootcert", async () => {
  expect((await exposedb('--add', '127.0.0.72/32')).exitCode).toBe(0);
  const dir = path.join(scratch, 'answers');
  await fs.mkdir(dir, { recursive: true });
  await fs.copyFile(primary.path(PATHS.clusterCaCert), path.join(dir, 'ca.pem'));
  const listen = `127.0.0.72:${await freePort('127.0.0.72')}`;
  await fs.writeFile(
    path.join(dir, 'answers.yaml'),
    `version: 1\nlisten: "${listen}"\nserverName: node-answers\ndatabase:\n  option: 3\n  url: "${printed}"\n  ca: ca.pem\n`,
  );
  const root = await spareRoot();
  const copy = root.path(PATHS.databaseCa);
  const viaFile = await run(['install', '--root', root.dir, '--answers', path.join(dir, 'answers.yaml'), '--dry-run']);
  expect(viaFile.exitCode, viaFile.stderr).toBe(0);
  expect(viaFile.stdout).toContain(`database CA: CN=Knocknoc cluster CA (127.0.0.70), expires`);
  expect(viaFile.stdout).toContain('TLS, certificate verified for 127.0.0.70');
  expect(viaFile.stdout).toContain(`Create ${copy} (mode 0644)`);
  expect(viaFile.stdout).toContain(`sslmode=verify-full&sslrootcert=${copy}`);
  const viaUrl = await run(['install', '--root', root.dir, '--listen', listen, '--server-name', 'node-url', '--database-option', '3', '--dry-run'], {
    KNOCKNOC_DATABASE_URL: `${printed}&sslrootcert=${dir}/ca.pem`,
  });
  expect(viaUrl.exitCode, viaUrl.stderr).toBe(0);
  expect(viaUrl.stdout).toContain(`database CA: CN=Knocknoc cluster CA (127.0.0.70), expires`);
  expect(viaUrl.stdout).toContain(`sslrootcert=${copy}`);
  expect(viaUrl.stdout).not.toContain(`sslrootcert=${dir}`);
  // A CA for option 1 makes no sense: refused before anything.
  const option1 = await run(['install', '--root', root.dir, '--listen', listen, '--database-ca', path.join(dir, 'ca.pem'), '--dry-run']);
  expect(option1.exitCode).toBe(2);
  expect(option1.stderr).toContain('--database-ca: a CA certificate was given, but option 1 creates its own local database');
  // A file that is not a certificate: said, with the file.
  await fs.writeFile(path.join(dir, 'junk.pem'), 'not a certificate\n');
  const junk = await run(
    ['install', '--root', root.dir, '--listen', listen, '--database-option', '3', '--database-ca', path.join(dir, 'junk.pem'), '--dry-run'],
    { KNOCKNOC_DATABASE_URL: printed },
  );
  expect(junk.exitCode).toBe(3);
  expect(junk.stderr).toContain(`error: preflight failed: database CA: ${path.join(dir, 'junk.pem')} holds no PEM certificate`);
});

test('a node given another CA is refused, with a message that says so, and nothing is written', async () => {
  expect((await exposedb('--add', '127.0.0.72/32')).exitCode).toBe(0);
  const stranger = await makeRoot();
  try {
    const refused = await installNode(stranger, '127.0.0.72', await otherCa());
    expect(refused.exitCode).toBe(3);
    expect(refused.stderr).toMatch(
      /✗ FAIL database 127\.0\.0\.70:\d+\/knocknoc: the server at 127\.0\.0\.70:\d+ presented a certificate that the CA given does not verify/,
    );
    await expect(fs.access(stranger.path(PATHS.conf))).rejects.toThrow();
    await expect(fs.access(stranger.path(PATHS.databaseCa))).rejects.toThrow();
  } finally {
    await destroyRoot(stranger);
  }
});

test("another server answering on the primary's address is refused: another CA's certificate, or the cluster CA's for another host", async () => {
  const { port } = url(printed);
  expect((await run(['service', 'stop', 'postgres', '--root', primary.dir])).exitCode).toBe(0);
  // An impostor on the very address and port, with a self-signed certificate naming 127.0.0.70.
  const impostor = await startTestCluster({ host: '127.0.0.70', port, ssl: true });
  try {
    await waitFor('the node to give up on the impostor', async () => ((await nodeStatus()) === 503 ? true : undefined));
    const probe = await installNode(await spareRoot(), '127.0.0.72', primary.path(PATHS.clusterCaCert));
    expect(probe.exitCode).toBe(3);
    expect(probe.stderr).toContain('presented a certificate that the CA given does not verify');
    // Now one from the cluster's own CA, but for another host (a standby's, say): the name decides.
    await fromClusterCa('IP:127.0.0.79', 30, path.join(impostor.dataDir, 'server.key'), path.join(impostor.dataDir, 'server.crt'));
    await impostor.admin('SELECT pg_reload_conf()');
    await waitFor('the impostor to present its new certificate', async () => {
      const seen = await probeTls('127.0.0.70', port, { ca: await clusterCa(primary) });
      return seen.offered && seen.chainVerified ? true : undefined;
    });
    const named = await installNode(await spareRoot(), '127.0.0.72', primary.path(PATHS.clusterCaCert));
    expect(named.exitCode).toBe(3);
    expect(named.stderr).toContain('presented a certificate that does not name 127.0.0.70');
    expect(named.stderr).toContain('another server may be answering on this address');
    // The running node never got in: it kept answering 503 throughout.
    expect(await nodeStatus()).toBe(503);
  } finally {
    await impostor.destroy();
    expect((await run(['service', 'start', 'postgres', '--root', primary.dir])).exitCode).toBe(0);
  }
  await waitFor('the node to reconnect to the primary', async () => ((await nodeStatus()) === 200 ? true : undefined), 30_000);
});

test('--renew-cert: a new certificate from the same CA, reloaded without a restart; open connections stay, new ones verify', async () => {
  const before = readCertificate(await fs.readFile(primary.path(PATHS.pgTlsCert), 'utf8'), 'server.crt');
  const started = await startedAt();
  const open = await connect(url(printed), await asNode(primary, '127.0.0.71'));
  try {
    const renewed = await exposedb('--renew-cert');
    expect(renewed.exitCode, renewed.stderr).toBe(0);
    expect(renewed.stdout).toMatch(/^Renewed: the server certificate for 127\.0\.0\.70 now expires \d{4}-\d\d-\d\d \(same CA/);
    const after = readCertificate(await fs.readFile(primary.path(PATHS.pgTlsCert), 'utf8'), 'server.crt');
    expect(after.fingerprint256).not.toBe(before.fingerprint256);
    expect(signedBy(after.pem, await clusterCa(primary))).toBe(true);
    expect(await startedAt()).toBe(started);
    // The connection opened before is still there; a new one verifies the new certificate.
    expect((await open.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    expect(await withClient(url(printed), await asNode(primary, '127.0.0.71'), async () => 'in')).toBe('in');
    expect(await nodeStatus()).toBe(200);
  } finally {
    await open.end();
  }
});

test("knocker status shows the certificate's expiry and warns 30 days before", async () => {
  const healthy = await run(['status', '--once', '--root', node.dir]);
  expect(healthy.stdout).toMatch(/TLS: certificate for 127\.0\.0\.70, verified, expires \d{4}-\d\d-\d\d \(in 39\d days\)/);
  expect(healthy.stdout).not.toContain('⚠');
  // A certificate close to its end (as one left unrenewed becomes): put in place by hand, reloaded.
  await fromClusterCa('IP:127.0.0.70', 10, primary.path(PATHS.pgTlsKey), primary.path(PATHS.pgTlsCert));
  await rootAdmin(primary, 'SELECT pg_reload_conf()');
  await waitFor('PostgreSQL to present the short certificate', async () => {
    const seen = await probeTls('127.0.0.70', url(printed).port, { ca: await clusterCa(primary) });
    return seen.offered && seen.certificate.notAfter.getTime() - Date.now() < 11 * 86_400_000 ? true : undefined;
  });
  const warned = await run(['status', '--once', '--root', node.dir]);
  expect(warned.stdout).toMatch(/⚠ the database's certificate expires in 9 days: renew it on the primary: knocker exposedb --renew-cert/);
  const json = JSON.parse((await run(['status', '--json', '--root', node.dir])).stdout) as {
    database: { tls: { expiring: boolean; daysLeft: number; verified: boolean } };
  };
  expect(json.database.tls).toMatchObject({ expiring: true, daysLeft: 9, verified: true });
  // Renewed, the warning goes.
  expect((await exposedb('--renew-cert')).exitCode).toBe(0);
  expect((await run(['status', '--once', '--root', node.dir])).stdout).not.toContain('⚠');
});

test('a certificate the operator put in place is kept and used as it is; one PostgreSQL could not start with is refused up front', async () => {
  const own = await makeRoot();
  try {
    await installPrimary(own, '127.0.0.75');
    const dataDir = own.path(PATHS.pgData);
    // The operator's own: self-signed for the host, in the data directory; ssl still off.
    const [openssl, ...args] = selfSignedArgs({
      cn: 'db.example',
      san: 'IP:127.0.0.75',
      days: 30,
      keyOut: `${dataDir}/server.key`,
      certOut: `${dataDir}/server.crt`,
      ec: true,
    });
    await execa(openssl!, args);
    // First with a key that is not the certificate's: ssl on would stop the next start.
    await execa('openssl', ['genpkey', '-algorithm', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', `${dataDir}/other.key`]);
    await fs.rename(`${dataDir}/server.key`, `${dataDir}/right.key`);
    await fs.rename(`${dataDir}/other.key`, `${dataDir}/server.key`);
    await execa('chown', ['postgres:postgres', `${dataDir}/server.key`, `${dataDir}/right.key`, `${dataDir}/server.crt`]);
    await fs.chmod(`${dataDir}/server.key`, 0o600);
    const ownExposedb = (...args: string[]) => run(['exposedb', '--root', own.dir, ...args]);
    const refused = await ownExposedb('--init');
    expect(refused.exitCode).toBe(3);
    expect(refused.stderr).toContain('error: PostgreSQL would not start again with ssl on: the private key');
    expect(refused.stderr).toContain('does not belong to the certificate');
    expect(
      await rootAdmin(own, `SELECT current_setting('ssl') AS ssl, (SELECT count(*)::int FROM pg_roles WHERE rolname = 'knocknoc_remote') AS roles`),
    ).toEqual([{ ssl: 'off', roles: 0 }]);

    await fs.rename(`${dataDir}/right.key`, `${dataDir}/server.key`);
    const certBefore = await fs.readFile(`${dataDir}/server.crt`, 'utf8');
    const init = await ownExposedb('--init');
    expect(init.exitCode, init.stderr).toBe(0);
    expect(init.stdout).toMatch(/@127\.0\.0\.75:\d+\/knocknoc\?sslmode=verify-full$/);
    expect(init.stderr).toContain(`with its own self-signed certificate, ${dataDir}/server.crt.`);
    // Kept as it is: no CA of knocker's, the same file, now served.
    await expect(fs.access(own.path(PATHS.clusterCaKey))).rejects.toThrow();
    expect(await fs.readFile(`${dataDir}/server.crt`, 'utf8')).toBe(certBefore);
    expect(await probeTls('127.0.0.75', url(init.stdout).port, { ca: certBefore })).toMatchObject({ offered: true, chainVerified: true, hostMatches: true });
    // It is not knocker's to renew.
    const renew = await ownExposedb('--renew-cert');
    expect(renew.exitCode).toBe(3);
    expect(renew.stderr).toContain("that certificate is not knocker's: renew it where it was issued");
  } finally {
    await destroyRoot(own);
  }
});

test('no private key appears in any output or log', async () => {
  const keys = await Promise.all([PATHS.clusterCaKey, PATHS.pgTlsKey].map((f) => fs.readFile(primary.path(f), 'utf8')));
  const bodies = keys.map((k) =>
    k
      .split('\n')
      .filter((l) => l && !l.startsWith('-----'))
      .join(''),
  );
  const logs = await Promise.all([PATHS.exposedbLog, PATHS.installLog].map((f) => fs.readFile(primary.path(f), 'utf8').catch(() => '')));
  const everything = [...outputs, ...logs].join('\n').replace(/\s/g, '');
  for (const body of bodies) {
    expect(body.length).toBeGreaterThan(40);
    expect(everything).not.toContain(body.slice(0, 40));
  }
  expect(everything).not.toContain('PRIVATEKEY');
});
