// The install plan: from the answers and what preflight found, the steps that bring this host to
// the wanted state (database, schema, knocknoc.conf, the running server, and HAProxy when the
// answers have a haproxy section). Steps already satisfied are kept as "unchanged", so a re-run
// with the same answers changes nothing and says so.
import fs from 'node:fs/promises';
import { KnocknocConf, newConf } from '../config/knocknoc-conf.js';
import type { ListenAddress } from '../config/values.js';
import { withAdminSession, type ClusterAccess } from '../postgres/admin.js';
import {
  clusterExists,
  clusterRunning,
  discardHalfMadeCluster,
  findPgBinaries,
  initCluster,
  settleStart,
  startCluster,
  stopCluster,
  type PrivateCluster,
} from '../postgres/cluster.js';
import { describeConnectError, withClient } from '../postgres/connect.js';
import { readManagedBlock, reloadConfig, replaceHbaFile, withManagedBlock } from '../postgres/hba.js';
import { generatePassword } from '../postgres/scram.js';
import { UsageError } from '../errors.js';
import { forwarderWarnings } from '../haproxy/nodes.js';
import { checkServerConfig } from '../server/config.js';
import { haproxySteps } from '../haproxy/plan.js';
import { serverServiceSteps } from '../server/service.js';
import {
  accessOf,
  createSystemCluster,
  findSystemClusters,
  pickCluster,
  startSystemCluster,
  stopSystemCluster,
  type SystemCluster,
} from '../postgres/system-cluster.js';
import { buildDatabaseUrl, parseDatabaseUrl, type DatabaseUrl } from '../postgres/url.js';
import { readIfExists, writeFileAtomic } from '../system/files.js';
import { installPackages } from '../system/host.js';
import { fileStep, type Plan, type Step } from '../system/plan.js';
import { PATHS } from '../system/root.js';
import type { Answers } from './answers.js';
import { keptPairUrl } from '../standby/local-node.js';
import { APP_DATABASE, APP_ROLE, inspectRole, roleAndDatabaseStep, schemaStep, schemaVersionAt } from './database.js';
import { connectOptionsFor, type HostClusterFacts, type PreflightContext, type PreflightReport, type PrivateClusterFacts } from './preflight.js';

export interface InstallPlan extends Plan {
  /** The DatabaseURL knocknoc.conf will hold (with its password: never print it). */
  databaseUrl: string;
}

/** The password of an existing option-1 DatabaseURL in knocknoc.conf: never regenerate a secret. */
function existingLocalPassword(conf: KnocknocConf | undefined): string | undefined {
  if (conf?.get('DatabaseOption') !== '1') return undefined;
  const parsed = parseDatabaseUrl(conf.get('DatabaseURL') ?? '');
  return parsed.ok && parsed.value.user === APP_ROLE ? parsed.value.password : undefined;
}

/**
 * knocknoc.conf as this install writes it: the file in place (comments and other keys kept) with
 * the answers in it. Checked with knocknoc-server's own check: a file it would refuse is never
 * written (UsageError, exit 2).
 */
export function plannedConf(current: string | undefined, answers: Answers, databaseUrl: string, file: string): string {
  const base = current === undefined ? newConf() : KnocknocConf.parse(current);
  const next = base.with({
    Listen: answers.listen,
    TrustedForwarders: answers.trustedForwarders.join(', '),
    DatabaseOption: String(answers.databaseOption),
    DatabaseURL: databaseUrl,
    ServerName: answers.serverName,
  });
  const content = next.toString();
  const check = checkServerConfig(content, file, answers.serverName);
  if (!check.ok) throw new UsageError(`knocknoc-server would refuse the ${file} this install would write; nothing was changed`, check.problems);
  return content;
}

async function confStep(answers: Answers, databaseUrl: string, ctx: PreflightContext): Promise<Step> {
  const file = ctx.root.path(PATHS.conf);
  const content = plannedConf(await readIfExists(file), answers, databaseUrl, file);
  return fileStep({ file, shownAs: file, content, mode: 0o600, redact: (t) => ctx.log.scrub(t) });
}

async function privateClusterSteps(
  facts: PrivateClusterFacts,
  password: string,
  listen: ListenAddress,
  ctx: PreflightContext,
): Promise<{ steps: Step[]; url: string }> {
  const { root, log } = ctx;
  const cluster: PrivateCluster = {
    bin: facts.bin,
    dataDir: root.path(PATHS.pgData),
    socketDir: root.path(PATHS.pgSocketDir),
    logFile: root.path(PATHS.pgLog),
    host: facts.host,
    port: facts.port,
    osUser: facts.osUser,
  };
  const access: ClusterAccess = { socketDir: cluster.socketDir, port: cluster.port, osUser: cluster.osUser };
  const url = buildDatabaseUrl({ host: facts.host, port: facts.port, user: APP_ROLE, password, database: APP_DATABASE });
  const parsedUrl = (parseDatabaseUrl(url) as { ok: true; value: DatabaseUrl }).value;
  const connectOptions = connectOptionsFor(listen, parsedUrl);
  const creating = root.path(PATHS.pgCreating);
  // Everything the later steps make lives in the cluster: once it is gone, none of it remains.
  const inCluster = () => clusterExists(cluster.dataDir);
  const steps: Step[] = [];
  steps.push({
    kind: 'database',
    title: facts.exists
      ? `PostgreSQL ${facts.bin.version}: private cluster in ${cluster.dataDir}`
      : `PostgreSQL ${facts.bin.version}: create a private cluster in ${cluster.dataDir}, listening on ${facts.host}:${facts.port} only${facts.halfMade ? ' (again: an earlier run was cut off while creating it)' : ''}`,
    details: [
      ...(facts.halfMade ? [`remove the half-made cluster in ${cluster.dataDir} (and end its initdb, if it still runs)`] : []),
      // Data checksums: pg_rewind can bring a failed primary back as a standby (knocker standby rejoin).
      `initdb -D ${cluster.dataDir} --auth-local=peer --auth-host=scram-sha-256 --data-checksums (as ${cluster.osUser})`,
    ],
    changes: !facts.exists,
    async apply() {
      if (facts.halfMade) await discardHalfMadeCluster(cluster.dataDir, log);
      await initCluster(cluster, log, ['--data-checksums'], creating);
    },
    async undo() {
      await stopCluster(cluster, log, 'immediate').catch(() => {});
      await discardHalfMadeCluster(cluster.dataDir, log);
      await fs.rm(creating, { force: true });
      await fs.rmdir(cluster.socketDir).catch(() => {});
    },
    remains: inCluster,
  });
  steps.push({
    kind: 'service',
    title: `PostgreSQL: start the private cluster (pg_ctl, ${facts.host}:${facts.port})`,
    details: [`pg_ctl start -w -D ${cluster.dataDir} -l ${cluster.logFile}`],
    changes: !facts.running,
    async apply() {
      if (await settleStart(cluster)) return 'already running: started by a run that was cut off';
      await startCluster(cluster, log);
    },
    undo: () => stopCluster(cluster, log),
    remains: () => clusterRunning(cluster),
  });
  const roleState = facts.running ? await inspectRole(access, password, log) : undefined;
  steps.push({ ...roleAndDatabaseStep({ access, password, state: roleState, log }), remains: inCluster });
  const current = roleState?.databaseExists && roleState.passwordMatches ? await schemaVersionAt(parsedUrl, connectOptions) : undefined;
  steps.push({
    ...schemaStep({ url: parsedUrl, connect: connectOptions, release: ctx.release, current, appliedBy: 'knocker install', log }),
    remains: inCluster,
  });
  return { steps, url };
}

const LOCAL_BLOCK = 'knocker local';

/** pg_hba lines letting the app role log in with its password from this host only. */
function localAccessRules(): string[] {
  return [`host    ${APP_DATABASE}  ${APP_ROLE}  127.0.0.1/32  scram-sha-256`, `host    ${APP_DATABASE}  ${APP_ROLE}  ::1/128       scram-sha-256`];
}

async function hostClusterSteps(
  facts: HostClusterFacts,
  password: string,
  listen: ListenAddress,
  ctx: PreflightContext,
): Promise<{ steps: Step[]; url: string }> {
  const { log } = ctx;
  const steps: Step[] = [];
  // What is not there yet (package, cluster) is found again when the steps apply.
  let cluster: SystemCluster | undefined = facts.cluster;
  const findCluster = async (): Promise<SystemCluster> => {
    cluster = pickCluster(await findSystemClusters(log));
    if (!cluster) throw new Error('no PostgreSQL cluster found after installing PostgreSQL');
    return cluster;
  };
  if (facts.install) {
    const manager = facts.install;
    const packages = manager === 'apt-get' ? ['postgresql'] : ['postgresql-server'];
    steps.push({
      kind: 'package',
      title: `Install PostgreSQL with ${manager} (${packages.join(' ')})`,
      details: [`${manager} install -y ${packages.join(' ')}`],
      changes: true,
      apply: () => installPackages(manager, packages, { log }),
      // Removing packages on rollback could take other software with it; they stay installed.
      undo: async () => log.info('rollback: PostgreSQL packages stay installed'),
    });
  }
  if (!facts.cluster) {
    steps.push({
      kind: 'database',
      title: 'PostgreSQL: create the default cluster',
      details: [facts.layout === 'debian' ? 'pg_createcluster <version> main' : 'postgresql-setup --initdb'],
      changes: true,
      async apply() {
        const existing = pickCluster(await findSystemClusters(log));
        if (existing) return `cluster ${existing.label} already present`;
        const bin = await findPgBinaries();
        await createSystemCluster(facts.layout, bin?.version ?? '', log);
        await findCluster();
      },
      undo: async () => log.info('rollback: the PostgreSQL cluster is kept (it may hold other data)'),
    });
  }
  const port = facts.cluster?.port ?? 5432;
  const url = buildDatabaseUrl({ host: '127.0.0.1', port, user: APP_ROLE, password, database: APP_DATABASE });
  const parsedUrl = (parseDatabaseUrl(url) as { ok: true; value: DatabaseUrl }).value;
  const connectOptions = connectOptionsFor(listen, parsedUrl);
  const running = facts.cluster?.running ?? false;
  steps.push({
    kind: 'service',
    title: `PostgreSQL: start cluster ${facts.cluster?.label ?? '(new)'}`,
    details: [
      facts.layout === 'debian'
        ? `pg_ctlcluster ${facts.cluster ? `${facts.cluster.version} ${facts.cluster.name}` : '<version> main'} start`
        : 'systemctl start postgresql (pg_ctl start where systemd does not run)',
    ],
    changes: !running,
    apply: async () => startSystemCluster(cluster ?? (await findCluster()), log),
    // A host cluster that was stopped is stopped again.
    undo: async () => {
      if (cluster) await stopSystemCluster(cluster, log);
    },
  });
  const access = (): ClusterAccess => {
    if (!cluster) throw new Error('the PostgreSQL cluster is not known yet');
    return accessOf(cluster);
  };
  const roleState = running && facts.cluster ? await inspectRole(accessOf(facts.cluster), password, log) : undefined;
  steps.push(roleAndDatabaseStep({ access, password, state: roleState, log }));

  let loginWorks = false;
  if (roleState?.passwordMatches && roleState.databaseExists) {
    loginWorks = await withClient(parsedUrl, connectOptions, async () => true).catch(() => false);
  }
  let hbaBefore: string | undefined;
  steps.push({
    kind: 'file',
    title: `PostgreSQL: let ${APP_ROLE} log in with its password from this host (pg_hba.conf, if needed)`,
    details: localAccessRules().map((r) => `+ ${r}`),
    changes: !loginWorks,
    async apply() {
      const target = cluster ?? (await findCluster());
      const works = await withClient(parsedUrl, connectOptions, async () => true).catch((error: unknown) => {
        const problem = describeConnectError(error, parsedUrl);
        if (problem.reason === 'not-allowed' || problem.reason === 'other') return false;
        throw new Error(problem.message);
      });
      if (works) return 'already allowed';
      const text = (await readIfExists(target.hbaFile)) ?? '';
      if (readManagedBlock(text, LOCAL_BLOCK)) return 'rules already present';
      hbaBefore = text;
      await withAdminSession(accessOf(target), log, (session) =>
        replaceHbaFile(session, target.hbaFile, text, withManagedBlock(text, LOCAL_BLOCK, localAccessRules())),
      );
    },
    async undo() {
      if (hbaBefore === undefined || !cluster) return;
      await writeFileAtomic(cluster.hbaFile, hbaBefore, { backup: false });
      await withAdminSession(accessOf(cluster), log, (s) => reloadConfig(s));
    },
  });
  const current = loginWorks ? await schemaVersionAt(parsedUrl, connectOptions) : undefined;
  steps.push(schemaStep({ url: parsedUrl, connect: connectOptions, release: ctx.release, current, appliedBy: 'knocker install', log }));
  return { steps, url };
}

/** Builds the plan for these answers on this host. Read-only: it only inspects. */
export async function planInstall(answers: Answers, report: PreflightReport, ctx: PreflightContext): Promise<InstallPlan> {
  const steps: Step[] = [];
  let databaseUrl: string;
  const facts = report.database;
  if (facts.kind === 'external') {
    databaseUrl = facts.databaseUrl;
    if (facts.ca) {
      const file = ctx.root.path(PATHS.databaseCa);
      steps.push(await fileStep({ file, shownAs: file, content: facts.ca, mode: 0o644 }));
    }
    if (answers.databaseOption === 2) {
      steps.push(
        schemaStep({
          url: facts.url,
          connect: connectOptionsFor(report.listen, facts.url),
          release: ctx.release,
          current: facts.schemaVersion,
          appliedBy: 'knocker install',
          log: ctx.log,
        }),
      );
    }
  } else {
    const existing = existingLocalPassword(ctx.existingConf);
    const password = existing ?? generatePassword();
    ctx.log.addSecret(password);
    const built =
      facts.kind === 'private' ? await privateClusterSteps(facts, password, report.listen, ctx) : await hostClusterSteps(facts, password, report.listen, ctx);
    steps.push(...built.steps);
    // A node that follows a replicated pair keeps the pair's string (src/standby/local-node.ts).
    databaseUrl = keptPairUrl(ctx.existingConf?.get('DatabaseURL'), built.url);
  }
  const parsed = parseDatabaseUrl(databaseUrl);
  if (parsed.ok) ctx.log.addSecret(parsed.value.password);
  // knocknoc.conf first: it holds the password before the database is given it, so a run cut off
  // in between gives the same password again next time (a secret is never made twice).
  const conf = await confStep(answers, databaseUrl, ctx);
  steps.unshift(conf);
  // Last, the server itself: started (or restarted for this change) and serving /_status.
  const service = await serverServiceSteps({
    root: ctx.root,
    release: ctx.release,
    listen: report.listen,
    runningListen: ctx.existingConf?.get('Listen'),
    confChanges: conf.changes,
    log: ctx.log,
  });
  // Then HAProxy in front of the nodes, once this one serves.
  const haproxy: Step[] = [];
  const warnings = [...report.warnings];
  if (report.haproxy) {
    const { settings, facts } = report.haproxy;
    haproxy.push(...(await haproxySteps(settings, facts, { log: ctx.log, startIfStopped: true })).steps);
    const local = { listen: answers.listen, trustedForwarders: answers.trustedForwarders, confFile: ctx.root.path(PATHS.conf), root: ctx.root };
    warnings.push(...(await forwarderWarnings(settings.nodes, local)));
  }
  return { title: 'Install Knocknoc', steps: [...service.before, ...steps, ...service.after, ...haproxy], warnings, databaseUrl };
}
