import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { withClient } from '../../src/postgres/connect.js';
import { findPgBinaries } from '../../src/postgres/cluster.js';
import { findSystemClusters, stopSystemCluster, type SystemCluster } from '../../src/postgres/system-cluster.js';
import { parseDatabaseUrl, type DatabaseUrl } from '../../src/postgres/url.js';
import { planInstall } from '../../src/installer/plan.js';
import type { PreflightReport } from '../../src/installer/preflight.js';
import { loadRelease } from '../../src/schema/index.js';
import { freePort } from '../../src/system/host.js';
import { nullLogger } from '../../src/system/log.js';
import { applyPlan } from '../../src/system/plan.js';
import { PATHS, SYSTEM_ROOT } from '../../src/system/root.js';
import { createDebianCluster } from '../helpers/pg.js';
import { makeTempDir } from '../helpers/temp.js';

let base: string;
let cluster: SystemCluster;
const saved = process.env.PG_CLUSTER_CONF_ROOT;

beforeAll(async () => {
  base = await makeTempDir('knocker-debian-');
  await fs.mkdir(path.join(base, 'etc'));
  process.env.PG_CLUSTER_CONF_ROOT = path.join(base, 'etc');
  const bin = (await findPgBinaries())!;
  const port = await freePort('127.0.0.1');
  await createDebianCluster({ base, etc: path.join(base, 'etc'), version: bin.version, name: 'knockertest', port });
});

afterAll(async () => {
  if (cluster) await stopSystemCluster(cluster).catch(() => {});
  if (saved === undefined) delete process.env.PG_CLUSTER_CONF_ROOT;
  else process.env.PG_CLUSTER_CONF_ROOT = saved;
  await fs.rm(base, { recursive: true, force: true });
});

/** The database's steps of an install plan: knocknoc.conf and the server would touch /opt/knocknoc and start a real server. */
function databaseSteps<S extends { title: string }>(steps: S[]): S[] {
  return steps.filter((s) => !s.title.includes(PATHS.conf) && !s.title.startsWith('Knocknoc server'));
}

test('the host path finds the stopped cluster, starts it, creates role, database and schema, and undoes it all', async () => {
  const clusters = await findSystemClusters();
  expect(clusters).toHaveLength(1);
  cluster = clusters[0]!;
  expect(cluster).toMatchObject({ layout: 'debian', name: 'knockertest', running: false, socketDir: path.join(base, 'sock-knockertest'), osUser: 'postgres' });
  expect(cluster.hbaFile).toBe(path.join(base, 'etc', cluster.version, 'knockertest', 'pg_hba.conf'));

  const log = nullLogger();
  const release = loadRelease();
  const report: PreflightReport = {
    checks: [],
    listen: { host: '127.0.0.1', port: 8756, family: 4 },
    database: { kind: 'host', install: undefined, layout: 'debian', cluster },
    warnings: [],
  };
  const answers = { listen: '127.0.0.1:8756', trustedForwarders: ['127.0.0.1/32'], serverName: 'host1', databaseOption: 1 as const };
  const plan = await planInstall(answers, report, { root: SYSTEM_ROOT, log, release, existingConf: undefined });
  expect(plan.steps.some((s) => s.title.includes(PATHS.conf))).toBe(true);
  const database = { ...plan, steps: databaseSteps(plan.steps) };
  expect(database.steps.map((s) => [s.kind, s.changes])).toEqual([
    ['service', true],
    ['database', true],
    ['file', true],
    ['database', true],
  ]);

  await applyPlan(database, { log });
  const parsed = parseDatabaseUrl(plan.databaseUrl);
  if (!parsed.ok) throw new Error(parsed.error);
  const url: DatabaseUrl = parsed.value;
  expect(url).toMatchObject({ host: '127.0.0.1', port: cluster.port, user: 'knocknoc', database: 'knocknoc' });
  const version = await withClient(url, {}, async (c) => (await c.query<{ v: number }>('SELECT max(version) AS v FROM knocknoc_schema_migrations')).rows[0]!.v);
  expect(version).toBe(release.schemaVersion);
  // Debian's default rules already let the role log in from 127.0.0.1: pg_hba.conf was left alone.
  expect(await fs.readFile(cluster.hbaFile, 'utf8')).not.toContain('knocker local');

  // Inspected again, nothing is left to do.
  const again = await planInstall(
    answers,
    { ...report, database: { ...report.database, cluster: { ...cluster, running: true } } as PreflightReport['database'] },
    {
      root: SYSTEM_ROOT,
      log,
      release,
      existingConf: (await import('../../src/config/knocknoc-conf.js')).KnocknocConf.parse(`DatabaseOption = 1\nDatabaseURL = ${plan.databaseUrl}\n`),
    },
  );
  expect(databaseSteps(again.steps).map((s) => s.changes)).toEqual([false, false, false, false]);

  // Rolling back leaves the cluster as it was found: stopped, without the role or database.
  for (const step of [...database.steps].reverse()) await step.undo();
  expect((await findSystemClusters())[0]!.running).toBe(false);
});

test("where the host's rules would refuse the role, a managed pg_hba block lets it in from this host only", async () => {
  const text = await fs.readFile(cluster.hbaFile, 'utf8');
  // Like RHEL's defaults: ident for TCP, so a password login is refused.
  await fs.writeFile(
    cluster.hbaFile,
    text.replace(/^host\s+all\s+all\s+127\.0\.0\.1\/32\s+\S+$/m, 'host    all             all             127.0.0.1/32            reject'),
  );
  const log = nullLogger();
  const report: PreflightReport = {
    checks: [],
    listen: { host: '127.0.0.1', port: 8756, family: 4 },
    database: { kind: 'host', install: undefined, layout: 'debian', cluster: { ...cluster, running: false } },
    warnings: [],
  };
  const answers = { listen: '127.0.0.1:8756', trustedForwarders: ['127.0.0.1/32'], serverName: 'host1', databaseOption: 1 as const };
  const plan = await planInstall(answers, report, { root: SYSTEM_ROOT, log, release: loadRelease(), existingConf: undefined });
  const steps = { ...plan, steps: databaseSteps(plan.steps) };
  await applyPlan(steps, { log });
  const hba = await fs.readFile(cluster.hbaFile, 'utf8');
  expect(hba).toMatch(/# BEGIN knocker local managed block \(do not edit by hand\)\nhost {4}knocknoc {2}knocknoc {2}127\.0\.0\.1\/32 {2}scram-sha-256/);
  expect(hba.indexOf('knocker local')).toBeLessThan(hba.search(/^host\s+all\s+all\s+127\.0\.0\.1\/32\s+reject/m));
  const parsed = parseDatabaseUrl(plan.databaseUrl);
  if (!parsed.ok) throw new Error(parsed.error);
  expect(await withClient(parsed.value, {}, async () => 'in')).toBe('in');
  for (const step of [...steps.steps].reverse()) await step.undo();
  expect(await fs.readFile(cluster.hbaFile, 'utf8')).not.toContain('knocker local');
});
