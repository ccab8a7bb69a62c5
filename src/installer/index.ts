// The installer's entry: an install session resolves the answers, runs preflight, builds the plan
// and applies it. The interactive TUI (src/app.tsx) and the unattended run (src/installer/unattended.ts)
// both drive the same session, so they cannot drift apart.
import fs from 'node:fs/promises';
import path from 'node:path';
import { KnocknocConf } from '../config/knocknoc-conf.js';
import { errorMessage, EXIT, KnockerError, PreflightError, UsageError } from '../errors.js';
import { loadRelease, type Release } from '../schema/index.js';
import { readIfExists } from '../system/files.js';
import { acquireLock, type Lock } from '../system/lock.js';
import { fileLogger, nullLogger, type Logger } from '../system/log.js';
import { fileStep, type ApplyEvent, type ApplyOutcome } from '../system/plan.js';
import { applyRecorded } from '../system/runner.js';
import { knockerCommand } from '../shared/hint.js';
import { PATHS, type Root } from '../system/root.js';
import { plural } from '../system/units.js';
import { PreflightFailed } from '../shared/checks.js';
import { answersFromSettings, readSettings, type HaproxyAnswers } from '../haproxy/config.js';
import {
  answersFrom,
  JOIN_FILE_KEYS,
  resolveAnswers,
  type Answers,
  type Field,
  type JoinedAnswers,
  type LoadedAnswersFile,
  type Resolution,
} from './answers.js';
import type { InstallPlan } from './plan.js';
import type { PreflightContext, PreflightReport } from './preflight.js';

export interface InstallInputs {
  root: Root;
  flags: Partial<Record<Field, string>>;
  env: Partial<Record<Field, string>>;
  answersFile?: string;
  hostname: string;
  /** A join token (knocker install --join, KNOCKER_JOIN_TOKEN); the answers file's `join:` otherwise. */
  joinToken?: string;
}

export interface Prepared {
  answers: Answers;
  report: PreflightReport;
  plan: InstallPlan;
}

export interface InstallSession {
  readonly root: Root;
  readonly release: Release;
  /** The existing knocknoc.conf (its values are the defaults), if there is one. */
  readonly existingConfFile: string | undefined;
  /** The HAProxy knocker set up on this host, as answers (the TUI's defaults), if there is one. */
  readonly existingHaproxy: HaproxyAnswers | undefined;
  readonly resolution: Resolution;
  readonly confFile: string;
  readonly answersFileOut: string;
  /** The run log, once preparing has started (undefined for dry runs). */
  readonly logFile: string | undefined;
  /** A dry run with a join token: what the check of the server found (the plan needs the invitation redeemed). */
  readonly joinPreview?: string[];
  /** The invitation this install redeemed (install --join): it is spent, whatever happens next. */
  readonly joinedInvitation?: string;
  /** Preflight and plan. With `saveAnswers`, the plan also saves the answers for reuse. */
  prepare(answers: Answers, options?: { saveAnswers?: boolean }): Promise<Prepared>;
  apply(prepared: Prepared, onEvent?: (event: ApplyEvent) => void): Promise<ApplyOutcome>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Nothing is written: no lock, no log. */
  dryRun: boolean;
}

/** Reads knocknoc.conf and the answers file and resolves every answer; throws UsageError on bad input. */
export async function openInstaller(inputs: InstallInputs, options: OpenOptions): Promise<InstallSession> {
  const { root } = inputs;
  const confFile = root.path(PATHS.conf);
  const confText = await readIfExists(confFile);
  const conf = confText === undefined ? undefined : KnocknocConf.parse(confText);
  // A line knocknoc-server refuses is never carried over as fine: the file is the operator's to mend.
  if (conf && conf.problems.length > 0) {
    throw new UsageError(
      `${confFile} has ${conf.problems.length === 1 ? 'a line' : 'lines'} knocknoc-server refuses; nothing was changed`,
      conf.problems.map((p) => `${confFile}:${p.line}: ${p.message}`),
      [`fix or remove them (a comment starts with #), then run ${knockerCommand(root, 'install')} again`],
    );
  }
  let loaded: LoadedAnswersFile | undefined;
  if (inputs.answersFile) {
    const { loadAnswersFile } = await import('./answers-file.js');
    const result = loadAnswersFile(inputs.answersFile);
    if (result.problems.length > 0) {
      throw new UsageError(`the answers file has ${plural(result.problems.length, 'problem')}; nothing was changed`, result.problems);
    }
    loaded = result.loaded;
  }
  const resolveInputs = {
    flags: inputs.flags,
    env: inputs.env,
    answersFile: loaded,
    conf: conf ? { conf, file: confFile } : undefined,
    hostname: inputs.hostname,
  };
  const joinToken = inputs.joinToken ?? loaded?.join;
  let lock: Lock | undefined;
  let joined: JoinedAnswers | undefined;
  let joinPreview: string[] | undefined;
  if (joinToken !== undefined) {
    const { previewJoin, redeemForInstall, checkToken } = await import('./join.js');
    checkToken(joinToken);
    // The listen address first: on loopback sandboxes the join leaves from it, as the node will.
    const first = resolveAnswers({ ...resolveInputs, joined: { id: 'x', databaseUrl: '', databaseCa: '' } });
    const conflicts = first.problems.filter((p) => p.includes('--join gives the database'));
    if (conflicts.length > 0) throw new UsageError(`${plural(conflicts.length, 'invalid answer')}; nothing was changed`, conflicts);
    const listen = first.values.listen?.value;
    if (options.dryRun) joinPreview = await previewJoin(joinToken, listen);
    else {
      // The invitation is single use: everything of this host's that can fail is checked first.
      const unspent = 'the invitation was not used: once this is fixed, run the same join again';
      const others = first.problems.filter((p) => !JOIN_FILE_KEYS.some((key) => p.startsWith(`${key}:`)));
      if (others.length > 0) throw new UsageError(`${plural(others.length, 'invalid answer')}; nothing was changed`, others, [unspent]);
      if (listen !== undefined) {
        const { localPreflight } = await import('./preflight.js');
        const checks = await localPreflight(
          { listen, ...(first.haproxy ? { haproxy: first.haproxy.value } : {}) },
          { root, log: nullLogger(), release: loadRelease(), existingConf: conf },
        );
        if (checks.some((c) => !c.ok)) throw withHint(new PreflightFailed(checks), unspent);
      }
      // The lock too (another install running would fail this one after the redeem); a refused
      // join leaves no trace of it, not even its folder.
      const lockFile = root.path(PATHS.installLock);
      const made = await firstMissing(path.dirname(lockFile));
      lock = await acquireLock(lockFile, 'knocker install');
      try {
        joined = await redeemForInstall(joinToken, listen);
      } catch (error) {
        await lock.release();
        lock = undefined;
        if (made) for (let dir = path.dirname(lockFile); dir.startsWith(made); dir = path.dirname(dir)) await fs.rmdir(dir).catch(() => {});
        throw error;
      }
    }
  }
  const resolution = resolveAnswers({ ...resolveInputs, ...(joined ? { joined } : {}) });
  if (resolution.problems.length > 0) {
    await lock?.release();
    throw new UsageError(`${plural(resolution.problems.length, 'invalid answer')}; nothing was changed`, resolution.problems);
  }
  const release = loadRelease();
  const existingHaproxy = answersFromSettings(readSettings(await readIfExists(root.path(PATHS.haproxyConf))));
  let log: Logger | undefined;
  const session: InstallSession = {
    root,
    release,
    existingConfFile: conf ? confFile : undefined,
    existingHaproxy,
    resolution,
    confFile,
    answersFileOut: root.path(PATHS.answers),
    get logFile() {
      return log?.file;
    },
    ...(joinPreview ? { joinPreview } : {}),
    ...(joined ? { joinedInvitation: joined.id } : {}),
    async prepare(answers, prepareOptions = {}) {
      if (!log) log = options.dryRun ? nullLogger() : fileLogger(root.path(PATHS.installLog));
      if (!options.dryRun && !lock) lock = await acquireLock(root.path(PATHS.installLock), 'knocker install');
      log.addSecret(answers.databaseUrl);
      log.info(`install: root ${root.dir}, answers ${JSON.stringify({ ...answers, databaseUrl: answers.databaseUrl ? '(given)' : undefined })}`);
      // The database driver and friends are loaded here, not at start: the first screen is faster.
      const [{ preflight }, { planInstall }] = await Promise.all([import('./preflight.js'), import('./plan.js')]);
      const ctx: PreflightContext = { root, log, release, existingConf: conf };
      const report = await preflight(answers, ctx);
      let plan: InstallPlan;
      try {
        plan = await planInstall(answers, report, ctx);
      } catch (error) {
        if (error instanceof KnockerError) throw error;
        // Inspecting the host failed (a file we cannot read, a cluster that does not answer).
        log.error(`planning failed: ${errorMessage(error)}`);
        throw new PreflightError(`could not inspect this host: ${log.scrub(errorMessage(error))}`);
      }
      if (prepareOptions.saveAnswers) {
        const { answersToYaml } = await import('./answers-file.js');
        const saved = answersToYaml(answers, {
          password: 'omit',
          header: ['Answers of an interactive knocker install, for reuse with: knocker install --answers FILE'],
        });
        plan.steps.push(await fileStep({ file: session.answersFileOut, shownAs: session.answersFileOut, content: saved, mode: 0o600 }));
      }
      return { answers, report, plan };
    },
    async apply(prepared, onEvent) {
      if (!log) throw new Error('prepare() must run before apply()');
      // Recorded in the cluster's history; what history has to say goes to the install log (a screen may be drawing).
      const notes = { out: (line: string) => log?.info(line), err: (line: string) => log?.warn(line) };
      try {
        return await applyRecorded(root, 'knocker install', prepared.plan, { log, onEvent }, notes);
      } catch (error) {
        spentInvitationHint(error, session);
        throw error;
      }
    },
    async close() {
      await lock?.release();
      lock = undefined;
    },
  };
  return session;
}

/** The highest folder on the way to `dir` that does not exist yet, if any. */
async function firstMissing(dir: string): Promise<string | undefined> {
  let missing: string | undefined;
  for (let d = dir; d !== path.dirname(d); d = path.dirname(d)) {
    if (
      await fs.stat(d).then(
        () => true,
        () => false,
      )
    )
      break;
    missing = d;
  }
  return missing;
}

function withHint<E extends KnockerError>(error: E, hint: string): E {
  error.hints.push(hint);
  return error;
}

/**
 * What an install that redeemed an invitation says when it then fails: the invitation is spent,
 * nothing of this run remains on this host (the plan was rolled back, or never applied), and
 * the next step is a new invitation.
 */
export function spentInvitationHint(error: unknown, session: Pick<InstallSession, 'joinedInvitation' | 'root'>): void {
  if (!session.joinedInvitation || !(error instanceof KnockerError)) return;
  if (error.hints.some((h) => h.startsWith(`invitation ${session.joinedInvitation} is spent`))) return;
  const left = error.exitCode === EXIT.rollbackIncomplete ? 'see above what remains on this host' : 'nothing of this run remains on this host';
  withHint(
    error,
    `invitation ${session.joinedInvitation} is spent (single use) and ${left}: once this is fixed, ask the primary for a new one (knocker exposedb --invite ADDR/32 there; --invites lists them) and join again with it`,
  );
}

/** The answers when nothing is missing; otherwise UsageError listing every missing answer. */
export function completeAnswers(session: InstallSession): Answers {
  if (session.resolution.missing.length > 0) {
    throw new UsageError(
      `${session.resolution.missing.length} required answer${session.resolution.missing.length === 1 ? ' is' : 's are'} missing; nothing was changed`,
      session.resolution.missing,
    );
  }
  return answersFrom(session.resolution);
}
