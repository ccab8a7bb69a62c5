// `knocker upgrade`: the seed's "Upgrading servers in an HA deployment", automated. Check the
// cluster (every server listed, online, healthy, in HAProxy's rotation); take all but one server out
// of rotation (drain, sessions end, maintenance, confirmed from HAProxy's counters); upgrade the one
// left with the organisation's command while HAProxy holds its requests; wait until it answers on
// the new version in step with the migrated database; then upgrade each other server and bring it
// back only after a passing check. Progress is journalled: a stopped or cut-off run resumes, or is
// rolled back (rotation restored). The screen (src/upgrade-app.tsx) and the plain run share this.
import { ApplyFailedError, PreflightError, UsageError } from '../errors.js';
import { checkLine, PreflightFailed, type Check } from '../shared/checks.js';
import type { Output } from '../shared/output.js';
import { describeServer } from '../haproxy/rotation.js';
import { saveServerState } from '../haproxy/service.js';
import { acquireLock, isAlive } from '../system/lock.js';
import { fileLogger, nullLogger } from '../system/log.js';
import { applyPlan, formatPlan, planToJson, type ApplyEvent, type Plan, type Step } from '../system/plan.js';
import { progressPrinter } from '../system/progress.js';
import { seconds } from '../system/units.js';
import { PATHS, type Root } from '../system/root.js';
import { chooseFirst, preflightChecks, readCluster, releasesOf, resumeChecks, rowsByName, WANTED_RETRIES, type ClusterFacts } from './cluster.js';
import { findUpgradeCommand, parseUpgradeCommand, recordableCommand, type UpgradeCommand } from './command.js';
import { JOURNAL_VERSION, journalOwnerAlive, JournalWriter, readJournal, type Journal } from './journal.js';
import { checksOnStep, confirmStep, healthChecksOn, holdStep, needsTakingOut, putBackServer, readyStep, takeOutStep, upgradeCommandStep, waitVersionStep, type StepContext } from './steps.js';

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

/** A cut-off run's upgrade command may still be at work (it has a session of its own): never start a second. */
async function commandStillRunning(journal: Journal, root: Root): Promise<void> {
  const running = journal.running;
  if (!running) return;
  const pid = running.pid !== undefined && isAlive(running.pid) ? running.pid : await findUpgradeCommand(running.marker);
  if (pid !== undefined) {
    throw new PreflightError(`the upgrade command for ${running.server} (pid ${pid}) is still running from the run that was cut off`, [
      `let it finish (or end it), then run this again${hintFor(root)}`,
    ]);
  }
}

function hintFor(root: Root): string {
  return root.isSandbox ? ` --root ${root.dir}` : '';
}

/** " (the last one finished at …)", said when there is nothing to resume or roll back. */
function lastRun(recorded: Journal | undefined): string {
  return recorded ? ` (the last one ${recorded.state === 'done' ? 'finished' : 'was rolled back'} at ${recorded.updatedAt})` : '';
}

/** Reads the cluster and the journal, runs the checks, and builds the plan. Changes nothing. */
export async function prepareUpgrade(root: Root, options: UpgradeOptions): Promise<UpgradeSession> {
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
    throw new UsageError('the upgrade command held a secret, which the journal does not keep: give it again (--upgrade-command, or KNOCKNOC_UPGRADE_COMMAND)', [], [
      `as recorded, secret masked: ${open.command}`,
    ]);
  }
  const text = options.command ?? open?.command;
  if (text === undefined) throw new UsageError('--upgrade-command is required: the command that upgrades one server, with {name}, {host} and {port} filled in', [], ['e.g. --upgrade-command "ssh root@{host} apt-get install -y knocknoc"']);
  const command = parseUpgradeCommand(text);
  const kept = recordableCommand(command);
  const facts = await readCluster(root);
  let journal: Journal;
  let checks: Check[];
  if (open) {
    checks = resumeChecks(facts, open);
    journal = structuredClone(open);
    journal.command = kept.text;
    journal.commandMasked = kept.masked;
    if (options.toVersion !== undefined && journal.target !== undefined && options.toVersion !== journal.target) {
      throw new UsageError(`--to-version ${options.toVersion}: this upgrade is to ${journal.target} (the first server came back on it)`);
    }
    if (options.toVersion !== undefined) journal.toVersion = options.toVersion;
    await commandStillRunning(open, root);
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
      (a, b) => Number(b.name === first) - Number(a.name === first) || Number(a.backup) - Number(b.backup) || a.name.localeCompare(b.name, 'en', { numeric: true }),
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
    build: (ctx) => buildPlan(session, { ...ctx, command, drainTimeoutMs: options.drainTimeoutSeconds * 1000, timeoutMs: options.timeoutSeconds * 1000, commandTimeoutMs: options.commandTimeoutSeconds * 1000 }),
  };
  const preview = await session.build({ paths: facts.paths, log: nullLogger(), journal: new JournalWriter(journalFile, structuredClone(journal)) });
  return { ...session, preview };
}

async function buildPlan(session: Omit<UpgradeSession, 'preview'>, ctx: StepContext): Promise<Plan> {
  const { journal } = session;
  const target = journal.target ?? journal.toVersion;
  const steps: Step[] = [];
  const first = journal.servers.find((s) => s.name === journal.first)!;
  const pending = journal.servers.filter((s) => s.phase !== 'done');
  if (first.phase !== 'done') {
    const others = pending.filter((s) => s !== first).map((s) => s.name);
    if (others.length > 0) {
      steps.push(takeOutStep(ctx, others), confirmStep(ctx, others));
    }
    steps.push(holdStep(ctx, first.name), upgradeCommandStep(ctx, first.name), waitVersionStep(ctx, first.name, target), checksOnStep(ctx, first.name));
  }
  for (const server of pending) {
    if (server === first) continue;
    if (first.phase === 'done' && (await needsTakingOut(ctx, server.name).catch(() => true))) steps.push(takeOutStep(ctx, [server.name]));
    steps.push(upgradeCommandStep(ctx, server.name), waitVersionStep(ctx, server.name, target ?? `the version ${first.name} came back on`), readyStep(ctx, server.name));
  }
  const done = journal.servers.filter((s) => s.phase === 'done').map((s) => s.name);
  const warnings: string[] = [];
  if (session.resumed && done.length > 0) warnings.push(`already done: ${done.join(', ')}`);
  const retries = session.facts.retries ?? 3;
  if (first.phase !== 'done' && retries < WANTED_RETRIES) {
    warnings.push(
      `HAProxy's configuration has retries ${retries}: requests arriving while ${first.name} restarts fail if it takes longer than about ${retries} s ` +
        `(rewrite it with retries ${WANTED_RETRIES}: knocker haproxy setup${hintFor(session.root)})`,
    );
  }
  if (journal.servers.length === 1) warnings.push(`${first.name} is the only server: while it restarts, requests wait for it (up to about ${retries} s) instead of being served at once`);
  return {
    title: `knocker upgrade${session.resumed ? ' --resume' : ''}: ${pending.length} server${pending.length === 1 ? '' : 's'}${target ? ` to ${target}` : ''}, ${first.phase === 'done' ? `${first.name} already upgraded` : `${first.name} first`}`,
    steps,
    warnings,
  };
}

export type UpgradeEvent =
  | { type: 'apply'; event: ApplyEvent }
  | { type: 'output'; server: string; line: string }
  /** What putting a server back did to it. */
  | { type: 'note'; server: string; text: string }
  | { type: 'journal'; journal: Journal };

export interface UpgradeHooks {
  /** The plan being applied (built again under the lock, from the journal). */
  onPlan?: (plan: Plan) => void;
  onEvent?: (event: UpgradeEvent) => void;
  stopRequested?: () => boolean;
}

export interface UpgradeOutcome {
  journal: Journal;
  ms: number;
  /** Time spent inside the upgrade commands. */
  commandMs: number;
  plan: Plan;
}

/**
 * Applies the plan under the upgrade lock, journalling as it goes. A failed step puts rotation
 * back (the servers taken out come back once their checks pass) and records the run as stopped:
 * ApplyFailedError (exit 4). A run killed outright leaves the journal "running" for --resume.
 */
export async function applyUpgrade(session: UpgradeSession, hooks: UpgradeHooks = {}): Promise<UpgradeOutcome> {
  const { root } = session;
  const lock = await acquireLock(root.path(PATHS.upgradeLock), 'knocker upgrade');
  const log = fileLogger(root.path(PATHS.opsLog));
  try {
    // Checked again under the lock: another run may have started meanwhile.
    const now = await readJournal(session.journalFile).catch(() => undefined);
    if (now && journalOwnerAlive(now)) throw new PreflightError(`another knocker upgrade is running (pid ${now.pid})`);
    // A screen may have waited on its question while another run went on: start again from what is true now.
    if (now?.updatedAt !== session.journalSeen) {
      throw new PreflightError(`the upgrade record changed since this run checked the cluster (${now ? `now ${now.state}, ${now.updatedAt}` : 'it is gone'}): nothing was changed`, [
        `run knocker upgrade${session.resumed ? ' --resume' : ''} again${hintFor(root)}`,
      ]);
    }
    const writer = new JournalWriter(session.journalFile, structuredClone(session.journal), (journal) => hooks.onEvent?.({ type: 'journal', journal }));
    await writer.update((j) => {
      j.state = 'running';
      j.reason = undefined;
    }, session.resumed ? 'resumed' : `started: ${startNote(session)}`);
    let commandMs = 0;
    const plan = await session.build({
      paths: session.facts.paths,
      log,
      journal: writer,
      onOutput: (server, line) => hooks.onEvent?.({ type: 'output', server, line }),
      onNote: (server, text) => hooks.onEvent?.({ type: 'note', server, text }),
      stopRequested: hooks.stopRequested,
      onCommandDone: (ms) => (commandMs += ms),
    });
    hooks.onPlan?.(plan);
    const started = Date.now();
    try {
      await applyPlan(plan, { log, onEvent: (event) => hooks.onEvent?.({ type: 'apply', event }) });
    } catch (error) {
      if (error instanceof ApplyFailedError) {
        await writer.update((jr) => {
          jr.state = 'stopped';
          jr.reason = error.message;
        }, `stopped: ${error.message.split('\n')[0]}`);
        throw new ApplyFailedError(error.message, error.remaining, stoppedHints(writer.journal, root, error.remaining.length === 0));
      }
      throw error;
    }
    await writer.update((jr) => {
      jr.state = 'done';
    }, `done: every server on ${writer.journal.target ?? 'the new version'}`);
    return { journal: writer.journal, ms: Date.now() - started, commandMs, plan };
  } finally {
    await lock.release();
  }
}

function startNote(session: UpgradeSession): string {
  return `${session.journal.servers.map((s) => `${s.name} ${s.fromVersion}`).join(', ')}; ${session.journal.first} first`;
}

function stoppedHints(journal: Journal, root: Root, restored: boolean): string[] {
  const done = journal.servers.filter((s) => s.phase === 'done').map((s) => s.name);
  const first = journal.servers.find((s) => s.name === journal.first && s.phase !== 'done');
  const others = journal.servers.filter((s) => s.phase !== 'done' && s.name !== journal.first);
  const held = others.filter((s) => s.heldOut).map((s) => s.name);
  const back = others.filter((s) => !s.heldOut).map((s) => s.name);
  const are = (names: string[]) => `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'}`;
  const hints: string[] = [];
  if (!restored) hints.push('rotation could not be fully put back: see the lines above');
  if (done.length > 0) hints.push(`${are(done)} upgraded${journal.target ? ` to ${journal.target}` : ''} and in rotation`);
  if (restored && first) hints.push(`${first.name} stayed in rotation, its health checks on again`);
  if (restored && back.length > 0) hints.push(`${are(back)} back in rotation once ${back.length === 1 ? 'its' : 'their'} health check passes`);
  if (restored && held.length > 0) hints.push(`${are(held)} kept in maintenance: out of step with the migrated database until upgraded`);
  hints.push(`fix the cause, then go on: knocker upgrade --resume${hintFor(root)} (or forget it: knocker upgrade --rollback${hintFor(root)})`);
  return hints;
}

/**
 * `--rollback`: puts rotation back as it was before the upgrade for every server not done (each
 * back in rotation once its check passes), turns health checks on again, and closes the journal.
 * Releases already upgraded stay upgraded.
 */
export async function rollbackUpgrade(root: Root, io: Output): Promise<number> {
  const file = root.path(PATHS.upgradeJournal);
  const journal = await readJournal(file).catch((error: Error) => {
    throw new PreflightError(error.message);
  });
  if (!journal || journal.state === 'done' || journal.state === 'rolled-back') {
    throw new UsageError(`there is no upgrade to roll back${lastRun(journal)}`);
  }
  if (journalOwnerAlive(journal)) throw new PreflightError(`knocker upgrade is running (pid ${journal.pid}): stop it first (Ctrl-C puts rotation back by itself)`);
  await commandStillRunning(journal, root);
  const lock = await acquireLock(root.path(PATHS.upgradeLock), 'knocker upgrade --rollback');
  const log = fileLogger(root.path(PATHS.opsLog));
  try {
    const facts = await readCluster(root);
    const writer = new JournalWriter(file, journal);
    io.out(`Rolling back the upgrade started ${journal.startedAt}${journal.target ? ` (to ${journal.target})` : ''}:`);
    if (journal.healthDisabled) {
      io.out(`  ${journal.healthDisabled}: health checks on again`);
      await healthChecksOn({ paths: facts.paths, journal: writer }, journal.healthDisabled);
    }
    for (const server of journal.servers) {
      const admin = facts.adminStates.get(server.name);
      if (admin === undefined) {
        io.out(`  ${server.name}: not in the running HAProxy any more, left as it is`);
      } else if (server.phase === 'done') {
        io.out(`  ${server.name}: upgraded, in rotation`);
      } else if (admin === 'ready' && !server.heldOut) {
        io.out(`  ${server.name}: in rotation as before`);
      } else {
        io.out(`  ${server.name}: ${await putBackServer({ paths: facts.paths, journal: writer }, server.name)}`);
      }
    }
    await saveServerState(facts.paths, log);
    await writer.update((jr) => {
      jr.state = 'rolled-back';
    }, 'rolled back');
    log.info('upgrade rolled back');
    const held = writer.journal.servers.filter((s) => s.heldOut).map((s) => s.name);
    if (held.length > 0) {
      io.out(`Kept in maintenance, out of step with the migrated database: ${held.join(', ')}. Upgrade ${held.length === 1 ? 'it' : 'them'}, then: knocker haproxy ready NAME${hintFor(root)}`);
    }
    const upgraded = writer.journal.servers.filter((s) => s.phase === 'done' || s.phase === 'upgraded');
    if (upgraded.length > 0) io.out(`Already upgraded (not downgraded): ${upgraded.map((s) => s.name).join(', ')}.`);
    io.out(`Rotation restored. Watch it: knocker status${hintFor(root)}`);
    return 0;
  } finally {
    await lock.release();
  }
}

export interface PlainOptions extends UpgradeOptions {
  dryRun: boolean;
  json: boolean;
}

/** The unattended run (--non-interactive, or no terminal) and --dry-run. */
export async function runUpgradePlain(root: Root, options: PlainOptions, io: Output): Promise<number> {
  const session = await prepareUpgrade(root, options);
  if (options.dryRun && options.json) {
    io.out(JSON.stringify({ dryRun: true, resumed: session.resumed, first: session.journal.first, target: session.journal.target ?? session.journal.toVersion ?? null, preflight: session.checks, plan: planToJson(session.preview) }, null, 2));
    return 0;
  }
  io.out(session.resumed ? 'Where the upgrade stands:' : 'Preflight:');
  session.checks.forEach((c) => io.out(checkLine(c)));
  if (options.dryRun) {
    formatPlan(session.preview).forEach((l) => io.out(l));
    io.out('Dry run: nothing was changed.');
    return 0;
  }
  io.out(session.preview.title);
  for (const warning of session.preview.warnings) io.out(`warning: ${warning}`);
  let printer: ((event: ApplyEvent) => void) | undefined;
  let stop = false;
  const onSigint = () => {
    if (stop) process.exit(130);
    stop = true;
    io.err('Stopping once the server being upgraded is done (its command is never cut short), then putting rotation back (Ctrl-C again to leave at once; knocker upgrade --resume or --rollback then).');
  };
  process.on('SIGINT', onSigint);
  try {
    const outcome = await applyUpgrade(session, {
      stopRequested: () => stop,
      onPlan: (plan) => {
        printer = progressPrinter(plan, io.out);
      },
      onEvent: (event) => {
        if (event.type === 'output') io.out(`        ${event.server}| ${event.line}`);
        else if (event.type === 'note') io.out(`        ${event.server}: ${event.text}`);
        else if (event.type === 'apply') printer?.(event.event);
      },
    });
    const servers = outcome.journal.servers;
    io.out(
      `Done: ${servers.length} server${servers.length === 1 ? '' : 's'} on ${outcome.journal.target ?? 'the new version'} in ${seconds(outcome.ms)} ` +
        `(${seconds(outcome.commandMs)} of it in the upgrade commands), every one back in rotation.`,
    );
    const facts = await readCluster(root).catch(() => undefined);
    if (facts) {
      const rows = rowsByName(facts);
      for (const server of servers) {
        const row = rows.get(server.name);
        io.out(`  ${server.name}: ${server.fromVersion} → ${row?.probe?.body?.version ?? '?'}, HAProxy ${row?.haproxy ? describeServer(row.haproxy) : 'unknown'}`);
      }
    }
    return 0;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
