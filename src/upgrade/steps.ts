// The upgrade as a plan of steps (src/system/plan.ts): each describes itself for --dry-run and the
// screen, applies, and undoes what can be undone. What can: rotation (a server taken out is put
// back, and comes back into rotation only once HAProxy's checks pass) and the health checks turned
// off for the lone server. What cannot: an upgrade command (releases are not downgraded). Every
// step records its progress in the journal before and after, so a run cut off anywhere resumes.
import { BACKEND, nodeAddress } from '../haproxy/config.js';
import { adminStateOf, describeServer, readyAfterCheck, restoreRotation, serverStat } from '../haproxy/rotation.js';
import { setHealthChecks, setServerState, showStat, shutdownSessions, type ServerStat } from '../haproxy/runtime.js';
import { saveServerState, type HaproxyPaths } from '../haproxy/service.js';
import type { StatusBody } from '../server/http.js';
import { probeStatus } from '../status/sources.js';
import type { Logger } from '../system/log.js';
import type { Step } from '../system/plan.js';
import { plural, seconds } from '../system/units.js';
import { orGiveUp, waitForOrUndefined } from '../system/wait.js';
import { commandFor, newMarker, runUpgradeCommand, showArgv, type UpgradeCommand } from './command.js';
import type { JournalServer, JournalWriter } from './journal.js';

export interface StepContext {
  paths: HaproxyPaths;
  log: Logger;
  journal: JournalWriter;
  command: UpgradeCommand;
  drainTimeoutMs: number;
  /** How long a server may take to answer on the new version, and to pass HAProxy's check. */
  timeoutMs: number;
  commandTimeoutMs: number;
  /** Each line an upgrade command prints. */
  onOutput?: (server: string, line: string) => void;
  /** What putting a server back did to it, in words. */
  onNote?: (server: string, text: string) => void;
  /** Set once the operator asked to stop: the next step does not start. */
  stopRequested?: () => boolean;
  /** How long each upgrade command ran (the outcome tells the time spent in them). */
  onCommandDone?: (ms: number) => void;
  pollMs?: number;
}

function list(names: string[]): string {
  return names.length <= 1 ? (names[0] ?? '') : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

function sessions(n: number): string {
  return plural(n, 'session');
}

/**
 * A step that starts new work (taking servers out, a server's upgrade command) first looks whether
 * the operator asked to stop: the steps that finish a server (its wait, its checks, its return to
 * rotation) always run, so a stop never leaves a server half done.
 */
function guarded(ctx: StepContext, step: Step): Step {
  return {
    ...step,
    async apply() {
      if (ctx.stopRequested?.()) throw new Error('stopped by the operator (Ctrl-C) before this step');
      return step.apply();
    },
  };
}

/**
 * Puts one server the upgrade took out back. In step with the database (or not answering, so that
 * only a passing check can bring it back), it goes back to ready with its health forced down: HAProxy
 * returns it once its checks pass (they need versionMatch), never before. Out of step — an old
 * release after the migration — it stays in maintenance, so not even a cookie holder reaches it.
 * Its phase goes back to waiting unless it was already upgraded. Returns what was done, in words.
 */
export async function putBackServer(ctx: Pick<StepContext, 'paths' | 'journal'>, name: string): Promise<string> {
  const socket = ctx.paths.adminSocket;
  const server = ctx.journal.server(name);
  const body = (await probeStatus(nodeAddress(server), 1_500)).body;
  // Its release's schema against the one the upgrade migrates to: a node's own answer may still say
  // "in step" for a moment after the migration (it checks the database at most once a second).
  const migratedTo = Math.max(ctx.journal.journal.targetSchema ?? 0, body?.databaseSchemaVersion ?? 0);
  const outOfStep = body !== undefined && (!body.versionMatch || body.schemaVersion < migratedTo);
  let text: string;
  if (body && outOfStep) {
    if ((await adminStateOf(socket, name)) !== 'maint') await setServerState(socket, BACKEND, name, 'maint');
    text = `stays in maintenance: out of step (it runs ${body.version}, schema ${body.schemaVersion}; the database is at ${migratedTo})`;
  } else {
    text = `back in rotation once its check passes (now ${await restoreRotation(socket, name)})`;
  }
  await ctx.journal.update(() => {
    const s = ctx.journal.server(name);
    if (s.phase !== 'upgraded' && s.phase !== 'done') s.phase = 'waiting';
    if (outOfStep) s.heldOut = true;
    else delete s.heldOut;
  }, `${name}: ${text}`);
  return text;
}

/** Puts back the servers a failed run took out (those not done). */
async function putBack(ctx: StepContext, names: string[]): Promise<void> {
  for (const name of names) {
    if (ctx.journal.server(name).phase === 'done') continue;
    ctx.onNote?.(name, await putBackServer(ctx, name));
  }
  await saveServerState(ctx.paths, ctx.log);
}

/** Drain, wait until their sessions end or the bound passes, then MAINT. */
export function takeOutStep(ctx: StepContext, names: string[]): Step {
  const socket = ctx.paths.adminSocket;
  const bound = Math.round(ctx.drainTimeoutMs / 1000);
  return guarded(ctx, {
    kind: 'command',
    title: `Take ${list(names)} out of rotation: drain, wait until ${names.length === 1 ? 'its' : 'their'} sessions end (at most ${bound} s), then maintenance`,
    details: [
      ...names.map((n) => `set server ${BACKEND}/${n} state drain`),
      `wait until show stat gives ${names.length === 1 ? 'it' : 'them'} no session and no queue, at most ${bound} s`,
      ...names.map((n) => `set server ${BACKEND}/${n} state maint`),
    ],
    changes: true,
    async apply() {
      for (const name of names) {
        // One already in maintenance (a resumed run) is not drained again: that would open it to
        // the clients holding its cookie, and it may be out of step by now.
        if ((await adminStateOf(socket, name)) === 'maint') {
          await ctx.journal.setPhase(name, 'out', `${name}: already in maintenance`);
          continue;
        }
        await setServerState(socket, BACKEND, name, 'drain');
        await ctx.journal.setPhase(name, 'out', `${name}: drained`);
      }
      await saveServerState(ctx.paths, ctx.log);
      const started = Date.now();
      let busy: ServerStat[] = [];
      // Still busy at the bound: put in maintenance all the same (their requests in flight finish).
      await waitForOrUndefined(
        `${list(names)} to have no session and no queue`,
        async () => {
          const stat = await orGiveUp(showStat(socket));
          busy = stat.servers.filter((s) => s.backend === BACKEND && names.includes(s.name) && (s.sessions > 0 || s.queued > 0));
          return busy.length === 0 ? true : undefined;
        },
        { timeoutMs: ctx.drainTimeoutMs, everyMs: ctx.pollMs ?? 100 },
      );
      const waited = seconds(Date.now() - started);
      for (const name of names) await setServerState(socket, BACKEND, name, 'maint');
      await saveServerState(ctx.paths, ctx.log);
      await ctx.journal.update(() => {}, `${list(names)}: in maintenance`);
      return busy.length === 0
        ? `no session left after ${waited}; now in maintenance`
        : `after ${waited} ${busy.map((s) => `${s.name} still had ${sessions(s.sessions)}`).join(', ')}: in maintenance, their requests in flight finish`;
    },
    async undo() {
      await putBack(ctx, names);
    },
  });
}

/**
 * Reads HAProxy's counters until each server shows MAINT, no session, no queue, and a total that no
 * longer grows. Sessions still open when the drain bound has passed (a slow download, a long poll)
 * are ended with `shutdown sessions server`: an old release must not keep serving once the database
 * is migrated.
 */
export function confirmStep(ctx: StepContext, names: string[]): Step {
  const socket = ctx.paths.adminSocket;
  const bound = Math.round(ctx.drainTimeoutMs / 1000);
  return {
    kind: 'command',
    title: `Confirm from HAProxy's counters that ${list(names)} ${names.length === 1 ? 'gets' : 'get'} no traffic`,
    details: [
      `show stat: ${names.length === 1 ? 'its' : 'each'} status MAINT, 0 sessions, 0 queued, total sessions unchanged over 1 s`,
      `sessions still open after ${bound} s: shutdown sessions server ${BACKEND}/NAME`,
    ],
    changes: true,
    async apply() {
      const started = Date.now();
      let previous: Map<string, number> | undefined;
      let steady = 0;
      let last: ServerStat[] = [];
      const ended: string[] = [];
      const confirmed = await waitForOrUndefined(
        `HAProxy to give ${list(names)} no traffic`,
        async () => {
          const stat = await orGiveUp(showStat(socket));
          last = stat.servers.filter((s) => s.backend === BACKEND && names.includes(s.name));
          const lingering = last.filter((s) => s.sessions > 0);
          if (lingering.length > 0 && Date.now() - started >= ctx.drainTimeoutMs && ended.length === 0) {
            for (const s of lingering) {
              await orGiveUp(shutdownSessions(socket, BACKEND, s.name));
              ended.push(`${s.name}: ${sessions(s.sessions)} ended`);
            }
            ctx.log.info(`sessions still open after ${bound} s ended: ${ended.join(', ')}`);
          }
          const quiet = last.length === names.length && last.every((s) => s.status.state === 'MAINT' && s.sessions === 0 && s.queued === 0);
          const totals = new Map(last.map((s) => [s.name, s.totalSessions]));
          const same = previous !== undefined && [...totals].every(([n, t]) => previous!.get(n) === t);
          steady = quiet && same ? steady + 1 : 0;
          previous = totals;
          // Three reads 0.5 s apart agreeing: 1 s without a new session.
          return steady >= 2 ? true : undefined;
        },
        { timeoutMs: ctx.drainTimeoutMs + 5_000, everyMs: 500 },
      );
      if (!confirmed) {
        const why = last.map((s) => `${s.name}: ${s.status.text}, ${sessions(s.sessions)}, ${s.queued} queued, ${s.totalSessions} in total`).join('; ');
        throw new Error(`HAProxy still gives traffic to ${list(names)} (${why})`);
      }
      return [...last.map((s) => `${s.name} MAINT, 0 sessions, ${s.totalSessions} in total unchanged`), ...ended].join('; ');
    },
    async undo() {},
  };
}

/** Health checks of the lone server on again (the undo of holdStep, its normal end, and --rollback). */
export async function healthChecksOn(ctx: Pick<StepContext, 'paths' | 'journal'>, name: string): Promise<void> {
  await setHealthChecks(ctx.paths.adminSocket, BACKEND, name, true);
  await ctx.journal.update((j) => {
    j.healthDisabled = undefined;
  }, `${name}: health checks on again`);
}

/** The lone server's health checks off while it restarts, so HAProxy keeps it and requests wait through the retries. */
export function holdStep(ctx: StepContext, name: string): Step {
  const socket = ctx.paths.adminSocket;
  return {
    kind: 'command',
    title: `Keep requests for ${name} waiting while it restarts: its health checks off, so HAProxy retries instead of answering 503`,
    details: [`disable health ${BACKEND}/${name}`, 'a refused connection is retried on it one second apart, as many times as `retries` in haproxy.cfg allows'],
    changes: true,
    async apply() {
      await ctx.journal.update((j) => {
        j.healthDisabled = name;
      }, `${name}: health checks off`);
      await setHealthChecks(socket, BACKEND, name, false);
    },
    async undo() {
      await healthChecksOn(ctx, name);
    },
  };
}

/** The version every server must reach: the first server's new one, or --to-version until then. */
function wanted(ctx: StepContext): string | undefined {
  return ctx.journal.journal.target ?? ctx.journal.journal.toVersion;
}

/** Records a server found on the target, in step; the first one found sets the target. */
function recordUpgraded(ctx: StepContext, name: string, body: StatusBody, note: string): Promise<void> {
  return ctx.journal.update((j) => {
    j.target ??= body.version;
    j.targetSchema = Math.max(j.targetSchema ?? 0, body.schemaVersion);
    ctx.journal.server(name).phase = 'upgraded';
  }, `${name}: ${note}`);
}

function reachedTarget(server: JournalServer, body: StatusBody | undefined, target: string | undefined): boolean {
  if (body?.status !== 'ok' || !body.versionMatch) return false;
  return target !== undefined ? body.version === target : body.version !== server.fromVersion;
}

/** The organisation's command for one server (not run when the server already answers on the target). */
export function upgradeCommandStep(ctx: StepContext, name: string): Step {
  const server = ctx.journal.server(name);
  const argv = commandFor(ctx.command, server);
  return guarded(ctx, {
    kind: 'command',
    title: `Upgrade ${name}: ${showArgv(argv)}`,
    details: [showArgv(argv), `(run without a shell; at most ${Math.round(ctx.commandTimeoutMs / 1000)} s)`],
    changes: true,
    async apply() {
      // Already there (a resumed run whose command had finished): not run again.
      const target = wanted(ctx);
      const probe = await probeStatus(nodeAddress(server), 1_500);
      if (reachedTarget(server, probe.body, target)) {
        await recordUpgraded(ctx, name, probe.body!, `already on ${probe.body!.version}, command not run`);
        return `${name} already answers on ${probe.body!.version}: not run`;
      }
      // Recorded before it starts: a run cut off between its start and the pid below still finds it.
      const marker = newMarker();
      await ctx.journal.update((j) => {
        j.running = { server: name, marker };
      });
      await ctx.journal.setPhase(name, 'upgrading', `${name}: upgrade command started`);
      const started = Date.now();
      let ms = 0;
      try {
        await runUpgradeCommand(argv, {
          log: ctx.log,
          timeoutMs: ctx.commandTimeoutMs,
          target: server,
          onLine: (line) => ctx.onOutput?.(name, line),
          marker,
          onStart: (pid) =>
            ctx.journal.update((j) => {
              j.running = { server: name, marker, pid };
            }),
        });
      } finally {
        ms = Date.now() - started;
        ctx.onCommandDone?.(ms);
        await ctx.journal.update((j) => {
          delete j.running;
        });
      }
      await ctx.journal.update(() => {}, `${name}: upgrade command done in ${ms} ms`);
      return undefined;
    },
    async undo() {},
  });
}

/** Waits until the server answers /_status 200 on the new version, in step with the database. */
export function waitVersionStep(ctx: StepContext, name: string, targetShown: string | undefined): Step {
  const server = ctx.journal.server(name);
  const atMost = seconds(Math.round(ctx.timeoutMs / 1000) * 1000);
  return {
    kind: 'command',
    title: `Wait until ${name} answers /_status on ${targetShown ?? `a release newer than ${server.fromVersion}`}, in step with the database (at most ${atMost})`,
    details: [`GET http://${nodeAddress(server)}/_status every 0.2 s: 200, versionMatch true, version ${targetShown ?? `not ${server.fromVersion}`}`],
    changes: true,
    async apply() {
      const started = Date.now();
      let seen = 'no answer yet';
      const body = await waitForOrUndefined(
        `${name} to answer on the new version`,
        async () => {
          const probe = await probeStatus(nodeAddress(server), 1_500);
          const body = probe.body;
          if (reachedTarget(server, body, wanted(ctx))) return body!;
          seen = body
            ? `${probe.http} ${body.status} on ${body.version}${body.versionMatch ? '' : ` (release schema ${body.schemaVersion}, database ${body.databaseSchemaVersion})`}`
            : (probe.error ?? `HTTP ${probe.http}`);
          return undefined;
        },
        { timeoutMs: ctx.timeoutMs, everyMs: ctx.pollMs ?? 200 },
      );
      if (!body)
        throw new Error(`${name} did not answer on ${wanted(ctx) ?? 'a new version'} within ${atMost} (last: ${seen}); did its upgrade command restart it?`);
      await recordUpgraded(ctx, name, body, `answers on ${body.version}, schema ${body.schemaVersion}, in step`);
      return `${body.version}, schema ${body.schemaVersion}, in step, after ${seconds(Date.now() - started)}`;
    },
    async undo() {},
  };
}

/** Health checks of the lone server on again, once it answers on the new version; waits for HAProxy to see it UP. */
export function checksOnStep(ctx: StepContext, name: string): Step {
  const socket = ctx.paths.adminSocket;
  const seconds = Math.round(ctx.timeoutMs / 1000);
  return {
    kind: 'command',
    title: `Health checks of ${name} on again; HAProxy must show it UP with its last check passed (at most ${seconds} s)`,
    details: [`enable health ${BACKEND}/${name}`],
    changes: true,
    async apply() {
      await healthChecksOn(ctx, name);
      let now: ServerStat | undefined;
      const up = await waitForOrUndefined(
        `HAProxy to see ${name} UP`,
        async () => {
          now = await orGiveUp(serverStat(socket, name));
          return now && now.status.state === 'UP' && !now.status.transition && now.check.status.startsWith('L7OK') ? now : undefined;
        },
        { timeoutMs: ctx.timeoutMs, everyMs: ctx.pollMs ?? 100 },
      );
      if (!up) throw new Error(`HAProxy does not see ${name} UP within ${seconds} s (now ${now ? describeServer(now) : 'gone'})`);
      await ctx.journal.setPhase(name, 'done', `${name}: in rotation on the new version`);
      return describeServer(up);
    },
    async undo() {},
  };
}

/** Back into rotation only after a passing check (drain with health forced down, then ready). */
export function readyStep(ctx: StepContext, name: string): Step {
  const seconds = Math.round(ctx.timeoutMs / 1000);
  return {
    kind: 'command',
    title: `Bring ${name} back into rotation once HAProxy's health check passes (at most ${seconds} s)`,
    details: [
      `set server ${BACKEND}/${name} state drain; set server ${BACKEND}/${name} health down`,
      `wait for status DRAIN (rise passing checks), then set server ${BACKEND}/${name} state ready`,
    ],
    changes: true,
    async apply() {
      const stat = await readyAfterCheck(ctx.paths.adminSocket, name, { timeoutMs: ctx.timeoutMs, pollMs: ctx.pollMs });
      await saveServerState(ctx.paths, ctx.log);
      await ctx.journal.setPhase(name, 'done', `${name}: back in rotation`);
      return describeServer(stat);
    },
    async undo() {},
  };
}

/** A server a resumed run finds in rotation although it is not done: out first. */
export async function needsTakingOut(ctx: StepContext, name: string): Promise<boolean> {
  return (await adminStateOf(ctx.paths.adminSocket, name)) !== 'maint';
}
