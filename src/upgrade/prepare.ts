// The upgrade's check: reads the cluster and its journal, refuses what must not start (another run
// alive, an open run not resumed, a resume with nothing open, mixed releases without --to-version),
// and prepares the session — a fresh journal, or the open one to go on with (resume.ts) — with the
// plan it would apply. Changes nothing.
import { PreflightError, UsageError } from '../errors.js';
import { refuseOnAutomaticPair } from '../ha/node-state.js';
import { INSTEAD } from '../ha/refusals.js';
import { PreflightFailed, type Check } from '../shared/checks.js';
import { nullLogger } from '../system/log.js';
import type { Plan } from '../system/plan.js';
import { PATHS, type Root } from '../system/root.js';
import { chooseFirst, preflightChecks, readCluster, releasesOf, rowsByName, type ClusterFacts } from './cluster.js';
import { parseUpgradeCommand, recordableCommand, type UpgradeCommand } from './command.js';
import { JOURNAL_VERSION, journalOwnerAlive, JournalWriter, readJournal, type Journal } from './journal.js';
import { hintFor, lastRun } from './open-run.js';
import { buildPlan } from './plan.js';
import { resumeJournal } from './resume.js';
import type { StepContext } from './steps.js';

export interface UpgradeOptions {
  /** The command template; on --resume, the recorded one unless given again. */
  command?: string;
  first?: string;
  toVersion?: string;
  resume: boolean;
  drainTimeoutSeconds: number;
  timeoutSeconds: number;
  commandTimeoutSeconds: number;
}

export interface UpgradeSession {
  root: Root;
  facts: ClusterFacts;
  checks: Check[];
  journal: Journal;
  resumed: boolean;
  command: UpgradeCommand;
  options: UpgradeOptions;
  journalFile: string;
  /** When the journal on disk was last written as prepare read it (undefined: there was none). */
  journalSeen: string | undefined;
  /** The steps, built for a log and journal given at apply time. */
  build(ctx: Omit<StepContext, 'command' | 'drainTimeoutMs' | 'timeoutMs' | 'commandTimeoutMs'>): Promise<Plan>;
  /** The same plan, for showing (--dry-run, the screen before it starts). */
  preview: Plan;
}

/** Reads the cluster and the journal, runs the checks, and builds the plan. Changes nothing. */
export async function prepareUpgrade(root: Root, options: UpgradeOptions): Promise<UpgradeSession> {
  // On a data host of an automatic pair the packages' order is pg_auto_failover's (not done yet).
  await refuseOnAutomaticPair(root, 'knocker upgrade', INSTEAD.upgrade);
  const journalFile = root.path(PATHS.upgradeJournal);
  const recorded = await readJournal(journalFile).catch((error: Error) => {
    throw new PreflightError(error.message);
  });
  const open = recorded && (recorded.state === 'running' || recorded.state === 'stopped') ? recorded : undefined;
  if (open && journalOwnerAlive(open)) throw new PreflightError(`another knocker upgrade is running (pid ${open.pid}); wait for it to finish`);
  if (options.resume && !open) {
    throw new UsageError(`there is no upgrade to resume${lastRun(recorded)}`);
  }
  if (!options.resume && open) {
    throw new PreflightError(
      `an upgrade${open.target ? ` to ${open.target}` : ''} ${open.state === 'stopped' ? `stopped${open.reason ? `: ${open.reason.split('\n')[0]}` : ''}` : 'was cut off before it finished'}`,
      [`go on with it: knocker upgrade --resume${hintFor(root)}`, `or put rotation back as it was and forget it: knocker upgrade --rollback${hintFor(root)}`],
    );
  }
  if (options.command === undefined && open?.commandMasked) {
    throw new UsageError(
      'the upgrade command held a secret, which the journal does not keep: give it again (--upgrade-command, or KNOCKNOC_UPGRADE_COMMAND)',
      [],
      [`as recorded, secret masked: ${open.command}`],
    );
  }
  const text = options.command ?? open?.command;
  if (text === undefined)
    throw new UsageError(
      '--upgrade-command is required: the command that upgrades one server, with {name}, {host} and {port} filled in',
      [],
      ['e.g. --upgrade-command "ssh root@{host} apt-get install -y knocknoc"'],
    );
  const command = parseUpgradeCommand(text);
  const kept = recordableCommand(command);
  const facts = await readCluster(root);
  let journal: Journal;
  let checks: Check[];
  if (open) {
    ({ journal, checks } = await resumeJournal(root, facts, open, kept, options.toVersion));
  } else {
    checks = preflightChecks(facts);
    if (checks.some((c) => !c.ok)) throw new PreflightFailed(checks);
    const first = chooseFirst(facts, options.first);
    const rows = rowsByName(facts);
    const releases = releasesOf(facts);
    if (releases.length > 1 && options.toVersion === undefined) {
      throw new UsageError(`the servers run different releases (${releases.join(', ')}): say which release every one must reach with --to-version`);
    }
    // The first server first, then the others by name, backups last.
    const nodes = [...facts.settings.nodes].sort(
      (a, b) =>
        Number(b.name === first) - Number(a.name === first) || Number(a.backup) - Number(b.backup) || a.name.localeCompare(b.name, 'en', { numeric: true }),
    );
    const now = new Date().toISOString();
    journal = {
      version: JOURNAL_VERSION,
      state: 'running',
      pid: process.pid,
      startedAt: now,
      updatedAt: now,
      command: kept.text,
      commandMasked: kept.masked,
      first,
      ...(options.toVersion !== undefined ? { toVersion: options.toVersion } : {}),
      servers: nodes.map((n) => ({
        name: n.name,
        host: n.host,
        port: n.port,
        backup: n.backup,
        fromVersion: rows.get(n.name)!.probe!.body!.version,
        phase: 'waiting',
      })),
      history: [],
    };
    if (options.toVersion !== undefined && journal.servers.every((s) => s.fromVersion === options.toVersion)) {
      throw new UsageError(`every server already runs ${options.toVersion}: nothing to upgrade`);
    }
  }
  if (checks.some((c) => !c.ok)) throw new PreflightFailed(checks);
  const session: Omit<UpgradeSession, 'preview'> = {
    root,
    facts,
    checks,
    journal,
    resumed: Boolean(open),
    command,
    options,
    journalFile,
    journalSeen: recorded?.updatedAt,
    build: (ctx) =>
      buildPlan(session, {
        ...ctx,
        command,
        drainTimeoutMs: options.drainTimeoutSeconds * 1000,
        timeoutMs: options.timeoutSeconds * 1000,
        commandTimeoutMs: options.commandTimeoutSeconds * 1000,
      }),
  };
  const preview = await session.build({ paths: facts.paths, log: nullLogger(), journal: new JournalWriter(journalFile, structuredClone(journal)) });
  return { ...session, preview };
}
