// knocknoc-server with configurations an operator could get wrong: each is refused with a message
// naming the file, the line and what to do, and a non-zero exit; an unknown key is only a warning.
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { beforeAll, expect, test } from 'vitest';
import { freePort } from '../../src/system/host.js';
import { launchServer, sharedDatabase, startServer, writeServerConf } from '../helpers/server.js';
import { makeTempDir } from '../helpers/temp.js';

const db = sharedDatabase({ host: '127.0.0.6' });
let password: string;
beforeAll(() => {
  password = decodeURIComponent(new URL(db.url).password);
});

let databases = 0;
/** A database of its own, to show that a refused start changed nothing in it. */
async function freshDatabase(): Promise<{ url: string; name: string }> {
  databases += 1;
  const name = `fresh${databases}`;
  return { url: await db.cluster.createDatabase({ role: name, database: name, password }), name };
}

async function hasSchema(database: string): Promise<boolean> {
  return (await db.cluster.admin(`SELECT 1 FROM pg_tables WHERE tablename = 'servers'`, [], database)).length > 0;
}

/** Runs a node on this conf until it exits (these configurations never get it running). */
async function refused(lines: string[]) {
  const confFile = await writeServerConf(lines);
  const node = launchServer({ confFile });
  const exitCode = await node.exited;
  expect(node.stdout() + node.stderr()).not.toContain(password);
  return { confFile, exitCode, stderr: node.stderr() };
}

test('a missing file: exit 2, naming the path it looked at and how to make it', async () => {
  const missing = launchServer({ confFile: '/nonexistent/knocknoc.conf' });
  expect(await missing.exited).toBe(2);
  expect(missing.stderr()).toContain(
    'cannot read the configuration /nonexistent/knocknoc.conf: no such file (run `knocker install` to write it, or give its path with --config FILE)',
  );

  // Without --config: KNOCKNOC_CONFIG, else the conf under --root (or KNOCKNOC_ROOT).
  const root = await makeTempDir('knocknoc-root-');
  try {
    const underRoot = launchServer({ args: ['--root', root] });
    expect(await underRoot.exited).toBe(2);
    expect(underRoot.stderr()).toContain(`cannot read the configuration ${root}/opt/knocknoc/etc/knocknoc.conf: no such file`);
    const fromEnv = launchServer({ env: { KNOCKNOC_CONFIG: path.join(root, 'elsewhere.conf'), KNOCKNOC_ROOT: root } });
    expect(await fromEnv.exited).toBe(2);
    expect(fromEnv.stderr()).toContain(`cannot read the configuration ${root}/elsewhere.conf: no such file`);
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});

test('an unknown key is a warning with a suggestion; the node runs', async () => {
  const node = await startServer({ host: '127.0.0.6', databaseUrl: db.url, name: 'web-1', extra: ['ServerNmae = web-9', 'ColourScheme = dark'] });
  expect((await node.status()).http).toBe(200);
  expect(node.stdout()).toMatch(/WARN {2}.*knocknoc\.conf:4: unknown key "ServerNmae" is ignored \(did you mean ServerName\?\)/);
  expect(node.stdout()).toMatch(/WARN {2}.*knocknoc\.conf:5: unknown key "ColourScheme" is ignored\n/);
});

test('a bad Listen: exit 2 with the line and what is wrong; nothing is migrated', async () => {
  const fresh = await freshDatabase();
  const noPort = await refused([`DatabaseURL = ${fresh.url}`, 'Listen = 127.0.0.6']);
  expect(noPort.exitCode).toBe(2);
  expect(noPort.stderr).toContain(`${noPort.confFile}:2: Listen: "127.0.0.6" has no port; write it as IP:port, e.g. 127.0.0.6:8756`);

  const several = await refused([
    'Listen = 127.0.0.6:99999',
    'TrustedForwarders = 0.0.0.0/0',
    'DatabaseURL = mysql://x@y/z',
    'ServerName = -bad',
    'just words',
  ]);
  expect(several.exitCode).toBe(2);
  expect(several.stderr).toContain('(5 problems)');
  expect(several.stderr).toContain(':5: not a "Key = value" line');
  expect(several.stderr).toContain(':1: Listen: port 99999 is out of range (1–65535)');
  expect(several.stderr).toContain(':2: TrustedForwarders: "0.0.0.0/0" matches every address');
  expect(several.stderr).toContain(':3: DatabaseURL: a connection string starts with postgres:// or postgresql://');
  expect(several.stderr).toContain(':4: ServerName: "-bad" is not a valid server name');

  const missingKeys = await refused(['# nothing but a comment']);
  expect(missingKeys.stderr).toMatch(/knocknoc\.conf: Listen is missing\n.*knocknoc\.conf: DatabaseURL is missing/);
  expect(await hasSchema(fresh.name)).toBe(false);
});

test('a Listen address already taken: exit 3 before touching the database', async () => {
  const port = await freePort('127.0.0.6');
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(port, '127.0.0.6', resolve));
  const fresh = await freshDatabase();
  try {
    const result = await refused([`Listen = 127.0.0.6:${port}`, `DatabaseURL = ${fresh.url}`]);
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toContain(`error: cannot listen on 127.0.0.6:${port}: port ${port} is already in use on 127.0.0.6`);
    expect(await hasSchema(fresh.name)).toBe(false);
  } finally {
    taken.close();
  }
});

test('an unreachable database at start: exit 3 saying why, never showing the password', async () => {
  const listen = `127.0.0.6:${await freePort('127.0.0.6')}`;
  const nobody = await freePort('127.0.0.6');
  const refusedPort = await refused([`Listen = ${listen}`, `DatabaseURL = postgres://knocknoc:${encodeURIComponent(password)}@127.0.0.6:${nobody}/knocknoc`]);
  expect(refusedPort.exitCode).toBe(3);
  expect(refusedPort.stderr).toContain(`error: cannot reach the database: connection refused by 127.0.0.6:${nobody}: nothing is listening there`);
  expect(refusedPort.stderr).toMatch(/hint: the connection string is DatabaseURL in .*knocknoc\.conf/);

  const wrongPassword = await refused([`Listen = ${listen}`, `DatabaseURL = ${db.url.replace(encodeURIComponent(password), 'not-the-password')}`]);
  expect(wrongPassword.exitCode).toBe(3);
  expect(wrongPassword.stderr).toContain(
    `error: cannot reach the database: password authentication failed for 127.0.0.6:${db.cluster.port}/knocknoc as knocknoc`,
  );

  // A host the database does not allow (pg_hba): the hint names the fix on the primary.
  const notAllowed = await refused([`Listen = 127.0.0.3:${await freePort('127.0.0.3')}`, `DatabaseURL = ${db.url}`]);
  expect(notAllowed.exitCode).toBe(3);
  expect(notAllowed.stderr).toContain('does not allow connections from this host (127.0.0.3)');
  expect(notAllowed.stderr).toContain("hint: allow this node's address on the primary: knocker exposedb --add 127.0.0.3/32");
});
