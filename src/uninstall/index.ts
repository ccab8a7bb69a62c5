// `knocker uninstall`: the install's reverse plan, shown first: stop what the installer set up
// (HAProxy, the server, its private PostgreSQL), disable the server's unit, take this node out of
// its database's registry, and remove the files knocker wrote (knocknoc.conf, answers, HAProxy's
// configuration, state, runtime files, logs), then the folders left empty. The database and its
// data (the private cluster, its certificates and the cluster's CA) are kept unless --purge-data.
// Under a sandbox root, an uninstall with --purge-data leaves the root empty.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { refuseOnAutomaticPair } from '../ha/node-state.js';
import { INSTEAD } from '../ha/refusals.js';
import { inspectHaproxy } from '../haproxy/plan.js';
import { connect, describeConnectError, sourceAddressFor } from '../postgres/connect.js';
import { describeTarget } from '../postgres/url.js';
import { loadServerConfig, type ServerConfig } from '../server/config.js';
import { forgetRowStep } from '../registry/row.js';
import { listServers, type RegisteredServer } from '../server/registry.js';
import { SERVER_UNIT } from '../server/service.js';
import { stopSteps } from '../service/index.js';
import { knockerCommand } from '../shared/hint.js';
import { readIfExists, statIfExists, writeFileAtomic } from '../system/files.js';
import { isSystemdHost } from '../system/host.js';
import { formatPlan, hasChanges, type Plan, type Step } from '../system/plan.js';
import type { Output } from '../shared/output.js';
import { PATHS, type Root } from '../system/root.js';
import { withRun } from '../system/runner.js';
import { knockerWrittenFiles } from './known-files.js';
import { nullLogger, type Logger } from '../system/log.js';
import { STANDBY_PATHS } from '../standby/paths.js';
import { removeBootFenceStep, writtenDropIns } from '../standby/boot-unit.js';
import { HISTORY_SPOOL } from '../history/spool.js';
import { systemctl } from '../system/service.js';

export interface UninstallOptions {
  purgeData: boolean;
}

/** Files knocker writes (each with its .bak), removed by an uninstall. */
const WRITTEN_FILES = [
  PATHS.conf,
  PATHS.answers,
  PATHS.exposedbUrl,
  PATHS.databaseCa,
  PATHS.upgradeJournal,
  PATHS.haproxyReloadPending,
  PATHS.serverPid,
  // Events of this host the database has not taken yet: the plan names the file, so it is seen before it goes.
  HISTORY_SPOOL,
];
/** The database's data: removed only with --purge-data. */
const DATA_DIRS = [PATHS.pgData, PATHS.pgCreating, PATHS.pgTlsDir, PATHS.clusterCaDir];
/** Folders knocker keeps its files in: removed once empty, deepest first. */
const FOLDERS = [
  PATHS.haproxyStateDir,
  PATHS.haproxyRunDir,
  PATHS.pgSocketDir,
  STANDBY_PATHS.dir,
  PATHS.pgTlsDir,
  PATHS.runDir,
  PATHS.logDir,
  PATHS.stateDir,
  PATHS.etcDir,
  '/opt/knocknoc',
  '/etc/haproxy',
];

/** Removes a file; what it held is read when the step runs (stopping a service may write it), and put back by the undo. */
function removeFileStep(file: string): Step {
  let kept: { content: string; mode: number } | undefined;
  return {
    kind: 'file',
    title: `Remove ${file}`,
    details: [],
    changes: true,
    async apply() {
      const stat = await fs.lstat(file).catch(() => undefined);
      if (!stat || stat.isDirectory()) return 'not there';
      // A socket or link left by a stopped daemon is removed; a file's content is kept for the undo.
      if (stat.isFile()) kept = { content: (await readIfExists(file)) ?? '', mode: stat.mode & 0o7777 };
      await fs.rm(file, { force: true });
    },
    async undo() {
      if (kept) await writeFileAtomic(file, kept.content, { mode: kept.mode, backup: false });
    },
  };
}

/** Everything but folders in `dir` and below (logs, runtime files, sockets). */
async function filesIn(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  const found: string[] = [];
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await filesIn(full)));
    else found.push(full);
  }
  return found;
}

/** The files that exist now, and `later` ones the stopping of a service writes (HAProxy's server state). */
async function fileSteps(files: string[], later: string[] = []): Promise<Step[]> {
  const steps: Step[] = [];
  for (const file of [...new Set(files)]) {
    const stat = await fs.lstat(file).catch(() => undefined);
    if (later.includes(file) || (stat && !stat.isDirectory())) steps.push(removeFileStep(file));
  }
  return steps;
}

/** This node's row in the registry of its database: deleted; put back by the undo. */
async function registryStep(config: ServerConfig, warnings: string[]): Promise<Step | undefined> {
  const options = {
    sourceAddress: sourceAddressFor(config.listen.host, config.databaseUrl.host),
    connectTimeoutMs: 5_000,
    applicationName: 'knocker uninstall',
  };
  const target = describeTarget(config.databaseUrl);
  let row: RegisteredServer | undefined;
  try {
    const client = await connect(config.databaseUrl, options);
    try {
      row = (await listServers(client)).find((s) => s.name === config.serverName);
      // A standby answers (after a switchover, a single-host DatabaseURL names this host, now the
      // standby): its registry is read-only, so no step is planned that could only fail and be "undone".
      const readOnly = (await client.query<{ ro: string }>(`SELECT current_setting('transaction_read_only') AS ro`)).rows[0]?.ro === 'on';
      if (row && readOnly) {
        warnings.push(
          `the registry of ${target} is read-only here (a standby, or fenced): "${config.serverName}" stays in it; retire it on the primary with \`knocker server forget ${config.serverName}\``,
        );
        return undefined;
      }
    } finally {
      await client.end().catch(() => {});
    }
  } catch (error) {
    warnings.push(
      `cannot reach the database (${describeConnectError(error, config.databaseUrl).message}): "${config.serverName}" stays in its registry; retire it later from another node with \`knocker server forget ${config.serverName}\``,
    );
    return undefined;
  }
  if (!row) return undefined;
  const open = async () => {
    const client = await connect(config.databaseUrl, options);
    return { client, close: () => client.end().catch(() => {}) };
  };
  return forgetRowStep(open, row, target, 'restored by knocker uninstall');
}

function unitStep(root: Root): Step {
  const unit = root.path(PATHS.serverUnit);
  let content: string | undefined;
  return {
    kind: 'service',
    title: `Disable ${SERVER_UNIT} and remove ${unit}`,
    details: [`systemctl disable ${SERVER_UNIT}; rm ${unit}; systemctl daemon-reload`],
    changes: true,
    async apply() {
      content = await readIfExists(unit);
      await systemctl(['disable', SERVER_UNIT]);
      await fs.rm(unit, { force: true });
      await systemctl(['daemon-reload']);
    },
    async undo() {
      if (content !== undefined) await writeFileAtomic(unit, content, { mode: 0o644, backup: false });
      await systemctl(['daemon-reload']);
      await systemctl(['enable', SERVER_UNIT]);
    },
  };
}

function removeTreeStep(dir: string, what: string): Step {
  return {
    kind: 'file',
    title: `Delete ${dir} (${what})`,
    details: ['cannot be undone'],
    changes: true,
    async apply() {
      await fs.rm(dir, { recursive: true, force: true });
    },
    async undo() {
      throw new Error(`${dir} was deleted and cannot be restored`);
    },
    async remains() {
      return false;
    },
  };
}

/** Removes knocker's folders that are empty, and under a root every empty folder in it; returns them. */
export async function removeEmptyFolders(root: Root): Promise<string[]> {
  const removed: string[] = [];
  const candidates = root.isSandbox ? await allFolders(root.dir) : FOLDERS.map((f) => root.path(f));
  // Deepest first, so that a folder emptied by removing its children goes too.
  for (const dir of candidates.sort((a, b) => b.length - a.length)) {
    if (dir === root.dir) continue;
    const entries = await fs.readdir(dir).catch(() => undefined);
    if (entries && entries.length === 0) {
      await fs.rmdir(dir);
      removed.push(dir);
    }
  }
  return removed;
}

function foldersStep(root: Root): Step {
  const removed: string[] = [];
  return {
    kind: 'file',
    title: root.isSandbox ? `Remove the folders left empty in ${root.dir}` : 'Remove the folders knocker made, where they are left empty',
    details: [],
    changes: true,
    async apply() {
      removed.push(...(await removeEmptyFolders(root)));
      return removed.length > 0 ? `${removed.length} folder${removed.length === 1 ? '' : 's'}` : 'none was empty';
    },
    async undo() {
      for (const dir of removed.reverse()) await fs.mkdir(dir, { recursive: true });
    },
  };
}

async function allFolders(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  const found: string[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    const full = path.join(dir, entry.name);
    found.push(full, ...(await allFolders(full)));
  }
  return found;
}

/** The uninstall plan; nothing changes until it is applied. */
export async function uninstallPlan(root: Root, options: UninstallOptions, log: Logger = nullLogger()): Promise<Plan> {
  const warnings: string[] = [];
  const steps: Step[] = [];
  const loaded = await loadServerConfig(root.path(PATHS.conf), os.hostname(), `nothing to uninstall from this node's configuration`);
  const config = loaded.ok ? loaded.config : undefined;
  const option = config ? (await readIfExists(root.path(PATHS.conf)))?.match(/^\s*DatabaseOption\s*=\s*(\d)/m)?.[1] : undefined;

  // One of a replicated pair: refused on its primary; on its standby, PostgreSQL stops before
  // anything is removed, then its slot on the primary goes (src/standby/uninstall.ts).
  const { pairUninstall } = await import('../standby/uninstall.js');
  const pair = await pairUninstall(root, log);
  if (pair) warnings.push(...pair.warnings);

  // Stop HAProxy, then the server; the registry while its database still runs; then PostgreSQL.
  const stops = await stopSteps(root);
  for (const { name, step } of stops) {
    if (name === 'postgres') continue;
    steps.push(step);
  }
  const postgres = stops.find((s) => s.name === 'postgres');
  if (pair) {
    // The pair's cluster, on a real host too: standby init made it from an empty one.
    if (postgres) steps.push(postgres.step);
    steps.push(...pair.afterStop);
  }
  if (config) {
    const registry = await registryStep(config, warnings);
    if (registry) steps.push(registry);
  } else if (!loaded.ok && (await statIfExists(root.path(PATHS.conf)))) {
    warnings.push(
      `${root.path(PATHS.conf)} is not usable (${loaded.problems[0]}): this node's row stays in its database's registry; retire it from another node with \`knocker server forget NAME\``,
    );
  }
  // A private cluster is this install's own; the host's PostgreSQL may serve other databases too
  // (a pair's cluster was stopped above, before anything was removed).
  if (!pair && postgres && root.isSandbox) steps.push(postgres.step);
  else if (!pair && postgres) warnings.push("the host's PostgreSQL is left running: it may hold other databases than Knocknoc's");
  if (!root.isSandbox && (await isSystemdHost()) && (await statIfExists(root.path(PATHS.serverUnit)))) steps.push(unitStep(root));
  // The standby pair's check before the host's PostgreSQL starts: it would run a knocker that is gone.
  for (const cluster of await writtenDropIns(root)) {
    const step = await removeBootFenceStep(root, cluster);
    if (step) steps.push(step);
  }

  const haproxy = await inspectHaproxy(root);
  const files = WRITTEN_FILES.flatMap((f) => [root.path(f), `${root.path(f)}.bak`]);
  if (haproxy.existing.kind === 'knocker') {
    files.push(haproxy.service.paths.conf, `${haproxy.service.paths.conf}.bak`, root.path(PATHS.haproxyStateFile));
  } else if (haproxy.existing.kind === 'foreign') {
    warnings.push(`${haproxy.service.paths.conf} was not written by knocker: it is left as it is`);
  }
  // The lock this run holds is released (and removed) by the run itself. This run's log is the
  // record of what it removed: kept, unless --purge-data asks for everything to go.
  const ownLog = (f: string) => !options.purgeData && (f === root.path(PATHS.opsLog) || f === `${root.path(PATHS.opsLog)}.1`);
  // Only what knocker writes there, by name: an operator's own files in these folders stay.
  files.push(...(await knockerWrittenFiles(root)).filter((f) => !ownLog(f)));
  if (pair) files.push(...pair.files);
  if (root.isSandbox) files.push(...(await filesIn(root.path(PATHS.haproxyRunDir))), root.path(PATHS.haproxyPid), root.path(PATHS.haproxyMasterSocket));
  steps.push(...(await fileSteps(files, haproxy.existing.kind === 'knocker' ? [root.path(PATHS.haproxyStateFile)] : [])));

  if (options.purgeData) {
    if (option === '1' && !root.isSandbox) {
      throw new UsageError(
        "--purge-data on a host whose PostgreSQL is the system's is not done by knocker: the cluster may hold other databases; nothing was changed",
        [],
        ['uninstall without --purge-data, then drop the database yourself: sudo -u postgres dropdb knocknoc; sudo -u postgres dropuser knocknoc'],
      );
    }
    for (const dir of DATA_DIRS) {
      if (await statIfExists(root.path(dir)))
        steps.push(removeTreeStep(root.path(dir), dir === PATHS.clusterCaDir ? "the cluster's CA" : "the database's data"));
    }
    if (option === '2' || option === '3') warnings.push(`the database is external (DatabaseOption ${option}): --purge-data does not drop it`);
  } else {
    const kept = [];
    for (const dir of DATA_DIRS) if (await statIfExists(root.path(dir))) kept.push(root.path(dir));
    if (kept.length > 0) warnings.push(`kept (the database and its data): ${kept.join(', ')}; ${knockerCommand(root, 'uninstall --purge-data')} deletes them`);
  }
  if (steps.length > 0) steps.push(foldersStep(root));
  return { title: 'knocker uninstall', steps, warnings };
}

/**
 * `knocker uninstall`: plan, confirmation (by the command), apply, on the one runner (the host's
 * lock, the log, --dry-run). An uninstall has no result a script would capture: the plan, its
 * progress and the outcome go to stderr; stdout carries only the --dry-run plan.
 */
export async function runUninstall(
  root: Root,
  options: UninstallOptions & { dryRun: boolean; json: boolean; confirm: (plan: Plan) => Promise<boolean> },
  io: Output,
): Promise<number> {
  // A data host of an automatic pair: its PostgreSQL is pg_autoctl's keeper's, and the way back to
  // the manual pair comes first (refused before anything is read or opened, --dry-run too).
  await refuseOnAutomaticPair(root, 'knocker uninstall', INSTEAD.uninstall);
  // Nothing set up here: said without opening a log (it would be the only thing knocker left).
  if (!options.dryRun && !hasChanges(await uninstallPlan(root, options))) {
    io.err(`Nothing to uninstall: knocker has set nothing up here${root.isSandbox ? ` (root ${root.dir})` : ''}.`);
    return 0;
  }
  const spec = { command: 'knocker uninstall', logFile: PATHS.opsLog };
  const applied = await withRun(root, spec, options, io, async (run) => {
    const plan = await uninstallPlan(root, options, run.log);
    if (run.flags.dryRun) return run.showOrApply(plan, { details: { purgeData: options.purgeData } });
    if (!hasChanges(plan)) {
      io.err(`Nothing to uninstall: knocker has set nothing up here${root.isSandbox ? ` (root ${root.dir})` : ''}.`);
      return false;
    }
    for (const line of formatPlan(plan)) io.err(line);
    if (!(await options.confirm(plan))) {
      io.err('Nothing was changed.');
      run.log.info('knocker uninstall: declined; nothing was changed');
      return false;
    }
    return run.showOrApply(plan);
  });
  if (!applied) return 0;
  // The lock's own folder goes once the lock is released.
  await removeEmptyFolders(root);
  const left = root.isSandbox ? await fs.readdir(root.dir).catch(() => []) : [];
  io.err(`Uninstalled.${root.isSandbox ? (left.length === 0 ? ` ${root.dir} is empty.` : ` Left in ${root.dir}: ${left.join(', ')}.`) : ''}`);
  return 0;
}
