// `knocker service start|stop|restart|status [server|postgres|haproxy|all]`: manages what the
// installer set up on this host (or sandbox root), found from knocknoc.conf: the Knocknoc server
// (systemd unit or daemon), the PostgreSQL of database option 1 (the private cluster under a root,
// the host's cluster otherwise), and the HAProxy of `knocker haproxy setup`. Starting and stopping
// are plan steps like every change to a host: shown, applied in order (PostgreSQL before the
// server, the server before HAProxy; stopping in reverse), and undone if a later one fails.
import { adoptedAddress } from '../ha/node-state.js';
import { refuseServiceOnAutomaticPair } from '../ha/refusals.js';
import type { KnocknocConf } from '../config/knocknoc-conf.js';
import { formatListen, parseListen } from '../config/values.js';
import { BACKEND } from '../haproxy/config.js';
import { inspectHaproxy } from '../haproxy/plan.js';
import { inRotation, showStat } from '../haproxy/runtime.js';
import { findHaproxy, haproxyRunState, startHaproxy, stopHaproxy } from '../haproxy/service.js';
import { PreflightError, UsageError } from '../errors.js';
import {
  clusterExists,
  clusterOwner,
  clusterRunning,
  findPgBinaries,
  readClusterSettings,
  startCluster,
  stopCluster,
  type PrivateCluster,
} from '../postgres/cluster.js';
import { findSystemClusters, pickCluster, startSystemCluster, stopSystemCluster, type SystemCluster } from '../postgres/system-cluster.js';
import { describeStatus, fetchStatus, statusUrl } from '../server/probe.js';
import { isServing } from '../server/status-body.js';
import { serverRunState, serverService, startServerService, stopServerService, type ServerService } from '../server/service.js';
import { statIfExists } from '../system/files.js';
import { checkConfBeforeStart, readConfForService } from './config-check.js';
import { packageRoot } from '../system/package.js';
import { hasChanges, type Plan, type Step } from '../system/plan.js';
import { PATHS, type Root } from '../system/root.js';
import { withRun } from '../system/runner.js';
import type { Output } from '../shared/output.js';
import { knockerCommand } from '../shared/hint.js';
export type ServiceName = 'server' | 'postgres' | 'haproxy';
export type ServiceAction = 'start' | 'stop' | 'restart' | 'status';

interface ServiceState {
  /**
   * running, stopped, failing (running but not serving: the server's /_status is not 200), or
   * crashed (not running, and it did not stop cleanly: killed, or it died).
   */
  word: 'running' | 'stopped' | 'failing' | 'crashed';
  detail: string;
  /** Shown indented under the status line (a crashed server's last log lines). */
  more?: string[];
}

/** Not running, whether it stopped or crashed. */
function down(state: ServiceState): boolean {
  return state.word === 'stopped' || state.word === 'crashed';
}

interface Managed {
  name: ServiceName;
  label: string;
  state(): Promise<ServiceState>;
  start(): Promise<string | void>;
  stop(): Promise<string | void>;
}

type Found = Managed | { name: ServiceName; notSetUp: string };

const START_ORDER: ServiceName[] = ['postgres', 'server', 'haproxy'];

async function serverEntry(root: Root, conf: KnocknocConf | undefined, confFile: string, confProblem: string | undefined): Promise<Found> {
  const listen = conf ? parseListen(conf.get('Listen') ?? '') : undefined;
  const service = await serverService(root, packageRoot());
  if (!listen?.ok) {
    const why = !conf
      ? (confProblem ?? `no ${confFile}`)
      : (confProblem ?? `Listen in ${confFile} is not usable: ${listen?.ok === false ? listen.error : 'missing'}`);
    // What knocker started is found from its own records, whatever the configuration says now.
    const recorded = await serverFromRecords(root, service, why);
    if (recorded) return recorded;
    return { name: 'server', notSetUp: conf ? why : `${why} (run \`${knockerCommand(root, 'install')}\`)` };
  }
  const log = root.path(PATHS.serverLog);
  return {
    name: 'server',
    label: 'the Knocknoc server',
    async state() {
      const run = await serverRunState(service);
      if (run.crashed) {
        return {
          word: 'crashed',
          detail: `${run.crashed.what}; last log lines${service.manager === 'daemon' ? ` (${log})` : ''}:`,
          more: run.crashed.lastLines.length > 0 ? run.crashed.lastLines : ['(none)'],
        };
      }
      if (!run.running) return { word: 'stopped', detail: service.manager === 'daemon' ? `log ${log}` : run.where };
      const reply = await fetchStatus(listen.value).catch((error: Error) => error);
      const answer = reply instanceof Error ? `no answer (${reply.message})` : describeStatus(reply);
      const serving = !(reply instanceof Error) && isServing(reply);
      return {
        word: serving ? 'running' : 'failing',
        detail: `${run.where}, ${statusUrl(listen.value)}: ${answer}${service.manager === 'daemon' ? `; log ${log}` : ''}`,
      };
    },
    start: () => startServerService(service, listen.value),
    stop: () => stopServerService(service),
  };
}

/**
 * The server as knocker's records show it (its pid file and log under a root, its systemd unit) when
 * knocknoc.conf cannot say where it listens: running or not, and stoppable; it is not started
 * again until the file is mended.
 */
async function serverFromRecords(root: Root, service: ServerService, confProblem: string): Promise<Found | undefined> {
  // A daemon's pid file while it runs, its log once it has run; the unit under systemd.
  const records = service.manager === 'systemd' ? [PATHS.serverUnit] : [PATHS.serverPid, PATHS.serverLog];
  let recorded = false;
  for (const file of records) if (await statIfExists(root.path(file))) recorded = true;
  if (!recorded) return undefined;
  const log = root.path(PATHS.serverLog);
  const note = `knocknoc.conf is not usable (${confProblem}), so /_status was not asked`;
  return {
    name: 'server',
    label: 'the Knocknoc server',
    async state() {
      const run = await serverRunState(service);
      if (run.crashed)
        return { word: 'crashed', detail: `${run.crashed.what}; ${note}`, more: run.crashed.lastLines.length > 0 ? run.crashed.lastLines : ['(none)'] };
      if (!run.running) return { word: 'stopped', detail: `${note}${service.manager === 'daemon' ? `; log ${log}` : ''}` };
      return { word: 'running', detail: `${run.where}; ${note}${service.manager === 'daemon' ? `; log ${log}` : ''}` };
    },
    start: () => {
      throw new UsageError(`the Knocknoc server cannot be started: ${confProblem}`);
    },
    stop: () => stopServerService(service),
  };
}

/**
 * One of a replicated pair (`knocker standby init` made this host's cluster, or `exposedb
 * --add-standby` made this one the primary): the pair's state names it, with no install needed.
 * Its cluster: the root's private one, or the host's Debian cluster (KNOCKER_PG_CLUSTER), as the
 * standby commands find it.
 */
async function pairCluster(root: Root): Promise<{ system: SystemCluster | undefined } | undefined> {
  const { hostCluster, readState } = await import('../standby/node.js');
  if (!(await readState(root))) return undefined;
  return { system: await hostCluster(root) };
}

/** "a standby of the pair" or "the pair's primary", from the data directory's own settings. */
async function pairRole(dataDir: string): Promise<string> {
  const { hasStandbySignal } = await import('../standby/node.js');
  return (await hasStandbySignal(dataDir)) ? 'a standby of the pair (starts read-only)' : "the pair's primary";
}

async function postgresEntry(root: Root, conf: KnocknocConf | undefined, confProblem: string | undefined): Promise<Found> {
  const option = conf?.get('DatabaseOption');
  // A configuration that cannot be read hides nothing: under a root, the private cluster knocker
  // made is its own record. (On the real system the host's PostgreSQL is not claimed on a guess.)
  const fromRecords = option === undefined && confProblem !== undefined && root.isSandbox && (await clusterExists(root.path(PATHS.pgData)));
  const pair = await pairCluster(root);
  if (option !== '1' && !fromRecords && !pair) {
    return {
      name: 'postgres',
      notSetUp: option ? `the database is external (DatabaseOption ${option}); knocker does not run it` : 'no local database was installed',
    };
  }
  if (root.isSandbox && !pair?.system) {
    const dataDir = root.path(PATHS.pgData);
    const bin = await findPgBinaries();
    const settings = (await clusterExists(dataDir)) ? await readClusterSettings(dataDir, await adoptedAddress(root)) : undefined;
    if (!bin || !settings) return { name: 'postgres', notSetUp: `no private cluster knocker made in ${dataDir}` };
    const cluster: PrivateCluster = {
      bin,
      dataDir,
      socketDir: root.path(PATHS.pgSocketDir),
      logFile: root.path(PATHS.pgLog),
      host: settings.host,
      port: settings.port,
      osUser: await clusterOwner(),
    };
    const where = `private cluster ${dataDir} on ${settings.host}:${settings.port}`;
    return {
      name: 'postgres',
      label: `PostgreSQL (${where})`,
      state: async () => ({ word: (await clusterRunning(cluster)) ? 'running' : 'stopped', detail: pair ? `${where}, ${await pairRole(dataDir)}` : where }),
      async start() {
        // One of a replicated pair whose peer was promoted meanwhile starts as a read-only standby.
        const { fenceBeforeStart } = await import('../standby/fence.js');
        const note = await fenceBeforeStart(root, cluster);
        await startCluster(cluster);
        return note;
      },
      stop: () => stopCluster(cluster),
    };
  }
  const found = pair?.system ?? pickCluster(await findSystemClusters());
  if (!found) return { name: 'postgres', notSetUp: 'no PostgreSQL cluster found on this host' };
  const where = `cluster ${found.label} on port ${found.port}`;
  return {
    name: 'postgres',
    label: `PostgreSQL (${where})`,
    state: async () => {
      const now = (await findSystemClusters()).find((c) => c.label === found.label);
      return { word: now?.running ? 'running' : 'stopped', detail: pair ? `${where}, ${await pairRole(found.dataDir)}` : where };
    },
    async start() {
      // As for the private cluster: one of a replicated pair whose peer may have been promoted starts read-only.
      const { fenceBeforeStart } = await import('../standby/fence.js');
      const note = await fenceBeforeStart(root, { dataDir: found.dataDir, port: found.port });
      await startSystemCluster(found);
      return note;
    },
    stop: () => stopSystemCluster(found),
  };
}

async function haproxyEntry(root: Root): Promise<Found> {
  const facts = await inspectHaproxy(root);
  const { paths } = facts.service;
  if (facts.existing.kind !== 'knocker') {
    return {
      name: 'haproxy',
      notSetUp: `no HAProxy configuration written by knocker in ${paths.conf} (run \`${knockerCommand(root, 'haproxy setup NAME=HOST:PORT …')}\`)`,
    };
  }
  const { bind, tls } = facts.existing.settings;
  const frontend = `${tls ? 'https' : 'http'}://${formatListen(bind)}`;
  const log = facts.service.manager === 'daemon' ? `; log ${paths.logFile}` : '';
  return {
    name: 'haproxy',
    label: `HAProxy (${frontend})`,
    async state() {
      const run = await haproxyRunState(facts.service);
      if (!run.running) return { word: 'stopped', detail: `${frontend}${log}` };
      const stat = await showStat(paths.statusSocket).catch((error: Error) => error);
      if (stat instanceof Error) return { word: 'failing', detail: `${run.where}, ${frontend}: ${stat.message}${log}` };
      const servers = stat.servers.filter((s) => s.backend === BACKEND);
      const up = servers.filter((s) => inRotation(s.status));
      const nodes = `${up.length}/${servers.length} web nodes in rotation${
        up.length < servers.length
          ? ` (${servers
              .filter((s) => !inRotation(s.status))
              .map((s) => `${s.name} ${s.status.text}`)
              .join(', ')})`
          : ''
      }`;
      return { word: up.length > 0 ? 'running' : 'failing', detail: `${run.where}, ${frontend}: ${nodes}${log}` };
    },
    async start() {
      const binary = facts.binary ?? (await findHaproxy());
      if (!binary) throw new Error('haproxy is not installed');
      return startHaproxy(facts.service, binary);
    },
    stop: () => stopHaproxy(facts.service),
  };
}

/** What the installer set up here, in start order. */
async function findServices(root: Root): Promise<Found[]> {
  const confFile = root.path(PATHS.conf);
  let read;
  try {
    read = readConfForService(confFile);
  } catch (error) {
    throw new PreflightError(
      `cannot read ${confFile}: ${(error as NodeJS.ErrnoException).code === 'EACCES' ? 'permission denied' : (error as Error).message}`,
      ['run it as root (sudo), as knocker install was'],
    );
  }
  const { conf, problem } = read;
  return [await postgresEntry(root, conf, problem), await serverEntry(root, conf, confFile, problem), await haproxyEntry(root)];
}

function isManaged(found: Found): found is Managed {
  return !('notSetUp' in found);
}

function stepFor(service: Managed, verb: 'start' | 'stop', state: ServiceState): Step {
  const starting = verb === 'start';
  return {
    kind: 'service',
    title: `${starting ? 'Start' : 'Stop'} ${service.label}`,
    details: [`now: ${state.word}, ${state.detail}`],
    changes: starting ? down(state) : !down(state),
    apply: starting ? () => service.start() : () => service.stop(),
    undo: async () => {
      await (starting ? service.stop() : service.start());
    },
  };
}

function planFor(action: 'start' | 'stop' | 'restart', services: Managed[], states: ServiceState[]): Plan {
  const inOrder = services.map((service, i) => ({ service, state: states[i]! }));
  const stops = [...inOrder].reverse().map(({ service, state }) => stepFor(service, 'stop', state));
  const starts = inOrder.map(({ service, state }) => stepFor(service, 'start', state));
  // A restart starts everything again, including what it has just stopped.
  const restartStarts = inOrder.map(({ service, state }) => ({ ...stepFor(service, 'start', state), changes: true }));
  const steps = action === 'start' ? starts : action === 'stop' ? stops : [...stops, ...restartStarts];
  return { title: `knocker service ${action}`, steps, warnings: [] };
}

function notSetUp(root: Root): PreflightError {
  return new PreflightError(`nothing here was set up by knocker install${root.isSandbox ? ` (root ${root.dir})` : ''}`, [
    `run ${knockerCommand(root, 'install')} first`,
  ]);
}

/** The steps that stop everything set up here (HAProxy, then the server, then PostgreSQL), by service. */
export async function stopSteps(root: Root): Promise<Array<{ name: ServiceName; step: Step }>> {
  const managed = (await findServices(root)).filter(isManaged).sort((a, b) => START_ORDER.indexOf(b.name) - START_ORDER.indexOf(a.name));
  const states = await Promise.all(managed.map((m) => m.state()));
  return managed.map((service, i) => ({ name: service.name, step: stepFor(service, 'stop', states[i]!) }));
}

/** Runs the command; returns the exit code (status: 0 everything set up runs, 1 something is stopped or failing). */
export async function serviceCommand(action: ServiceAction, which: ServiceName | 'all', root: Root, io: Output): Promise<number> {
  // The keeper (pg_autoctl run) owns this PostgreSQL on a data host of an automatic pair: a pg_ctl here would fight it.
  await refuseServiceOnAutomaticPair(root, action, which);
  const found = (await findServices(root)).filter((f) => which === 'all' || f.name === which);
  const target = found[0];
  if (which !== 'all' && target && !isManaged(target)) {
    throw new PreflightError(`${which}: not set up on this host: ${target.notSetUp}`);
  }
  const managed = found.filter(isManaged).sort((a, b) => START_ORDER.indexOf(a.name) - START_ORDER.indexOf(b.name));
  const states = await Promise.all(managed.map((m) => m.state()));

  if (action === 'status') {
    for (const f of found) {
      const state = isManaged(f) ? states[managed.indexOf(f)]! : undefined;
      io.out(`${f.name.padEnd(9)} ${(state?.word ?? 'not set up').padEnd(11)} ${state?.detail ?? (f as { notSetUp: string }).notSetUp}`);
      for (const line of state?.more ?? []) io.out(`${' '.repeat(22)}${line}`);
    }
    if (managed.length === 0) throw notSetUp(root);
    return states.every((s) => s.word === 'running') ? 0 : 1;
  }
  if (managed.length === 0) throw notSetUp(root);
  // knocknoc-server would refuse the file: say where, before anything is stopped (a restart never takes a serving node down for it).
  const server = managed.findIndex((m) => m.name === 'server');
  if (server !== -1 && (action === 'restart' || (action === 'start' && down(states[server]!)))) {
    await checkConfBeforeStart(root, root.path(PATHS.conf), `service ${action} ${which}`);
  }
  // Progress and notes on stderr: start, stop and restart have no result for stdout.
  for (const f of found) if (!isManaged(f)) io.err(`${f.name}: not set up: ${f.notSetUp}`);
  const plan = planFor(action, managed, states);
  if (!hasChanges(plan)) {
    const already = (word: ServiceState['word']) =>
      word === 'failing'
        ? `running, but failing (see \`${knockerCommand(root, 'service status')}\`)`
        : word === 'crashed'
          ? `stopped (it had crashed: see \`${knockerCommand(root, 'service status')}\`)`
          : word;
    io.err(`Nothing to do: ${managed.map((m, i) => `${m.name} is already ${already(states[i]!.word)}`).join(', ')}.`);
    return 0;
  }
  const spec = { command: `knocker service ${action}${which === 'all' ? '' : ` ${which}`}`, logFile: PATHS.opsLog };
  await withRun(root, spec, { dryRun: false, json: false }, io, (run) => run.showOrApply(plan));
  return 0;
}
