// End to end, as the seed's "Setting up multiple web nodes" describes it: a primary (a sandbox root
// with its own database, 127.0.0.60) runs exposedb --init and --add; a second node (another root,
// 127.0.0.61) installs with database option 3 and the printed string, and its knocknoc-server
// serves from the shared database. A third "host" (127.0.0.62), never allowed, stays out.
import fs from 'node:fs/promises';
import { expect, test } from 'vitest';
import { KnocknocConf } from '../../src/config/knocknoc-conf.js';
import { withClient } from '../../src/postgres/connect.js';
import { freePort } from '../../src/system/host.js';
import { PATHS, type Root } from '../../src/system/root.js';
import { appUrl, installPrimary, url } from '../helpers/exposedb.js';
import { knocker } from '../helpers/knocker.js';
import { useRoots } from '../helpers/roots.js';

const newRoot = useRoots();

async function installNode(root: Root, address: string, databaseUrl: string, caFile: string) {
  const listen = `${address}:${await freePort(address)}`;
  const result = await knocker(
    ['install', '--root', root.dir, '--listen', listen, '--server-name', `node-${address}`, '--database-option', '3', '--database-ca', caFile],
    {
      env: { KNOCKNOC_DATABASE_URL: databaseUrl },
    },
  );
  return { ...result, listen };
}

test("a second node installed with option 3 and the printed string joins the primary's database once allowed", async () => {
  const primary = await newRoot();
  await installPrimary(primary, '127.0.0.60');
  const exposedb = (...args: string[]) => knocker(['exposedb', '--root', primary.dir, ...args]);

  // Before --init there is nothing to allow nodes into.
  const early = await exposedb('--add', '127.0.0.61/32');
  expect(early.exitCode).toBe(3);
  expect(early.stderr).toContain('error: database knocknoc is not exposed yet: there is no role knocknoc_remote');
  expect(early.stderr).toContain(`hint: run knocker exposedb --init --root ${primary.dir} first`);
  const emptyList = await exposedb('--list');
  expect(emptyList).toMatchObject({
    exitCode: 0,
    stdout: '',
    stderr: `note: database knocknoc is not exposed yet (knocker exposedb --init --root ${primary.dir})`,
  });

  const init = await exposedb('--init');
  expect(init.exitCode).toBe(0);
  const printed = init.stdout;
  // The CA the nodes verify the primary with (an operator copies it to each node).
  const caFile = primary.path(PATHS.clusterCaCert);

  // Not allowed yet: the installer's preflight says so, and what to run on the primary.
  const node = await newRoot();
  const refused = await installNode(node, '127.0.0.61', printed, caFile);
  expect(refused.exitCode).toBe(3);
  expect(refused.stderr).toMatch(
    /✗ FAIL database 127\.0\.0\.60:\d+\/knocknoc: the database server at 127\.0\.0\.60:\d+ does not allow connections from this host \(127\.0\.0\.61\)/,
  );
  expect(refused.stderr).toContain("hint: allow this node's address on the primary: knocker exposedb --add 127.0.0.61/32");
  await expect(fs.access(node.path(PATHS.conf))).rejects.toThrow();

  expect((await exposedb('--add', '127.0.0.61/32')).exitCode).toBe(0);
  const joined = await installNode(node, '127.0.0.61', printed, caFile);
  expect(joined.stdout).toBe('');
  expect(joined.exitCode).toBe(0);
  expect(joined.stderr).toMatch(
    /✔ ok +database 127\.0\.0\.60:\d+\/knocknoc: PostgreSQL [\d.]+.*, connected as knocknoc_remote; TLS, certificate verified for 127\.0\.0\.60\n.*✔ ok +Knocknoc database: schema version 2/,
  );
  const conf = KnocknocConf.parse(await fs.readFile(node.path(PATHS.conf), 'utf8'));
  expect(conf.get('DatabaseOption')).toBe('3');
  // The string printed, verifying the primary with the node's own copy of the CA.
  expect(conf.get('DatabaseURL')).toBe(`${printed}&sslrootcert=${node.path(PATHS.databaseCa)}`);
  expect(await fs.readFile(node.path(PATHS.databaseCa), 'utf8')).toBe(await fs.readFile(caFile, 'utf8'));
  // The node has no database of its own.
  await expect(fs.access(node.path(PATHS.pgData))).rejects.toThrow();

  // Served from the shared database: the node's knocknoc-server is up, in step with the schema,
  // and registered in the primary's database.
  const status = await fetch(`http://${joined.listen}/_status`);
  expect(status.status).toBe(200);
  expect(await status.json()).toMatchObject({ status: 'ok', server: 'node-127.0.0.61', database: 'ok', versionMatch: true });
  const primaryUrl = await appUrl(primary);
  const registered = await withClient(
    primaryUrl,
    { sourceAddress: '127.0.0.60' },
    async (c) => (await c.query<{ listen: string; state: string }>(`SELECT listen, state FROM servers WHERE name = 'node-127.0.0.61'`)).rows,
  );
  expect(registered).toEqual([{ listen: joined.listen, state: 'running' }]);
  // And the node's DatabaseURL, from its own address, reads what the primary writes and the other way round.
  const nodeUrl = url(conf.get('DatabaseURL'));
  await withClient(primaryUrl, { sourceAddress: '127.0.0.60' }, (c) => c.query(`INSERT INTO knocknoc_settings (key, value) VALUES ('written-by', 'web-1')`));
  const seenByNode = await withClient(nodeUrl, { sourceAddress: '127.0.0.61' }, async (c) => {
    await c.query(`INSERT INTO knocknoc_settings (key, value) VALUES ('answered-by', 'node-127.0.0.61')`);
    return (await c.query<{ value: string }>(`SELECT value FROM knocknoc_settings WHERE key = 'written-by'`)).rows[0]?.value;
  });
  expect(seenByNode).toBe('web-1');
  const seenByPrimary = await withClient(
    primaryUrl,
    { sourceAddress: '127.0.0.60' },
    async (c) => (await c.query<{ value: string }>(`SELECT value FROM knocknoc_settings WHERE key = 'answered-by'`)).rows[0]?.value,
  );
  expect(seenByPrimary).toBe('node-127.0.0.61');

  // A host never allowed cannot join with the same string.
  const stranger = await installNode(await newRoot(), '127.0.0.62', printed, caFile);
  expect(stranger.exitCode).toBe(3);
  expect(stranger.stderr).toContain('knocker exposedb --add 127.0.0.62/32');
});
