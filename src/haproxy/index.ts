// `knocker haproxy setup|add|remove|list|drain|maint|ready|status`: a local HAProxy in front of
// the Knocknoc web nodes, health-checked on /_status (seed, "Setting up multiple web nodes", step
// 4). setup, add and remove rewrite the configuration as a plan (checked with `haproxy -c`,
// replaced atomically with a backup, then a reload that keeps DRAIN/MAINT and drops no
// connection); drain, maint and ready go through the runtime API; list reads the configuration
// and status reads HAProxy's read-only socket.
import { formatListen, parseListen, type ListenAddress } from '../config/values.js';
import { PreflightError, UsageError } from '../errors.js';
import { checkLine, PreflightFailed } from '../shared/checks.js';
import { knockerCommand } from '../shared/hint.js';
import type { Output } from '../shared/output.js';
import { withLock } from '../system/lock.js';
import { fileLogger, nullLogger, type Logger } from '../system/log.js';
import { applyPlan, formatPlan, hasChanges, planToJson, type ApplyEvent, type Plan, type Step } from '../system/plan.js';
import { progressPrinter } from '../system/progress.js';
import { PATHS, type Root } from '../system/root.js';
import { freePort } from '../system/host.js';
import { age } from '../system/units.js';
import { journalOwnerAlive, readJournal } from '../upgrade/journal.js';
import {
  addressOf,
  BACKEND,
  DEFAULT_HTTP_PORT,
  DEFAULT_HTTPS_PORT,
  DEFAULT_METRICS_PORT,
  haproxyWordProblem,
  isLoopbackHost,
  nodeAddress,
  nodeSpec,
  parseNodes,
  settingsProblems,
  type HaproxyNode,
  type HaproxySettings,
} from './config.js';
import { forwarderWarnings, localNode, nodesFromRegistry } from './nodes.js';
import { describeSettings, haproxyChecks, haproxySteps, inspectHaproxy, type HaproxyFacts } from './plan.js';
import { adminStateOf, CheckTimeout, describeServer, readyAfterCheck, serverStat, setAdminState } from './rotation.js';
import { RuntimeApiError, showInfo, showStat, type AdminState, type ServerStat } from './runtime.js';
import { haproxyPaths, saveServerState } from './service.js';

const LOCK_WHAT = 'knocker command changing this host';

export interface SetupOptions {
  nodes: string[];
  backup: string[];
  fromRegistry: boolean;
  conn?: string;
  bind?: string;
  /** An absolute path; false: back to plain HTTP. */
  cert?: string | false;
  httpBind?: string;
  /** false: no Prometheus exporter (--no-metrics). */
  metrics?: boolean;
  metricsBind?: string;
  dryRun: boolean;
  json: boolean;
}

export interface ChangeOptions {
  dryRun: boolean;
  json: boolean;
}

function listenOption(flag: string, text: string): ListenAddress {
  const parsed = parseListen(text);
  if (!parsed.ok) throw new UsageError(`${flag}: ${parsed.error}; nothing was changed`);
  return parsed.value;
}

function nodesOption(active: string[], backup: string[]): HaproxyNode[] {
  const a = parseNodes(active, false);
  const b = parseNodes(backup, true);
  const problems = [...a.problems, ...b.problems.map((p) => `--backup ${p}`)];
  if (problems.length > 0) throw new UsageError(`invalid node${problems.length === 1 ? '' : 's'} (write them NAME=HOST:PORT); nothing was changed`, problems);
  return [...a.nodes, ...b.nodes];
}

function knockerSettings(facts: HaproxyFacts): HaproxySettings {
  const { existing } = facts;
  const conf = facts.service.paths.conf;
  if (existing.kind === 'knocker') return existing.settings;
  const root = facts.service.root;
  if (existing.kind === 'unreadable') throw new PreflightError(`${conf} was written by knocker but cannot be read back: ${existing.problem}`, [`write it again with the nodes: ${knockerCommand(root, 'haproxy setup NAME=HOST:PORT …')}`]);
  throw new PreflightError(`HAProxy is not set up by knocker on this host (${existing.kind === 'none' ? `no ${conf}` : `${conf} was not written by knocker`})`, [
    `set it up first: ${knockerCommand(root, 'haproxy setup NAME=HOST:PORT …')}`,
  ]);
}

interface Change {
  title: string;
  /** setup starts a stopped HAProxy; add and remove only change its configuration. */
  startIfStopped: boolean;
  /** The settings wanted, from what is in place now. */
  settings(facts: HaproxyFacts): Promise<HaproxySettings> | HaproxySettings;
  /** Lines printed before anything else (where the nodes came from). */
  notes?: string[];
}

/** Inspects, checks, plans and (unless a dry run) applies one change of the configuration. */
async function applyChange(root: Root, change: Change, options: ChangeOptions, io: Output): Promise<number> {
  const prepare = async (log: Logger) => {
    const facts = await inspectHaproxy(root);
    const settings = await change.settings(facts);
    const problems = settingsProblems(settings);
    if (problems.length > 0) throw new UsageError(`these nodes cannot be set up as they are; nothing was changed`, problems);
    const checks = await haproxyChecks(settings, facts);
    if (checks.some((c) => !c.ok)) throw new PreflightFailed(checks);
    const local = await localNode(root);
    const warnings = await forwarderWarnings(
      settings.nodes,
      local && { listen: local.listenText, trustedForwarders: local.trustedForwarders, confFile: local.file, root },
    );
    if (facts.existing.kind === 'foreign') warnings.push(`${facts.service.paths.conf} was not written by knocker: it is replaced, and kept as ${facts.service.paths.conf}.bak`);
    const { steps } = await haproxySteps(settings, facts, { log, startIfStopped: change.startIfStopped });
    const plan: Plan = { title: change.title, steps, warnings };
    return { plan, checks, settings, running: facts.run.running };
  };

  const notes = change.notes ?? [];
  if (!options.json) notes.forEach((note) => io.out(note));
  if (options.dryRun) {
    const { plan, checks, settings } = await prepare(nullLogger());
    if (options.json) {
      io.out(JSON.stringify({ dryRun: true, root: root.dir, notes, settings, preflight: checks, plan: planToJson(plan) }, null, 2));
    } else {
      io.out('Preflight:');
      checks.forEach((c) => io.out(checkLine(c)));
      formatPlan(plan).forEach((l) => io.out(l));
      io.out('Dry run: nothing was changed.');
    }
    return 0;
  }
  return withLock(root.path(PATHS.installLock), LOCK_WHAT, async () => {
    const log = fileLogger(root.path(PATHS.opsLog));
    const { plan, settings, running } = await prepare(log);
    for (const warning of plan.warnings) io.out(`warning: ${warning}`);
    const sandbox = root.isSandbox ? ` --root ${root.dir}` : '';
    if (!hasChanges(plan)) {
      io.out(running ? 'Nothing to change: HAProxy already runs this configuration.' : 'Nothing to change in the configuration.');
    } else {
      await applyPlan(plan, { log, onEvent: progressPrinter(plan, io.out) });
    }
    if (!running && !change.startIfStopped) io.out(`HAProxy is stopped; it uses this configuration when it starts (knocker service start haproxy${sandbox}).`);
    describeSettings(settings).forEach((l) => io.out(l));
    if (settings.metrics) io.out(`Prometheus metrics (HAProxy's own exporter, no authentication): http://${formatListen(settings.metrics)}/metrics`);
    io.out(`Health of the nodes: knocker haproxy status${sandbox}`);
    return 0;
  });
}

export async function haproxySetup(root: Root, options: SetupOptions, io: Output): Promise<number> {
  const given = nodesOption(options.nodes, options.backup);
  const certProblem = typeof options.cert === 'string' ? haproxyWordProblem(options.cert) : undefined;
  if (certProblem) throw new UsageError(`--cert: ${certProblem}; nothing was changed`, [], ['move or link the PEM file to a path without them']);
  const bind = options.bind === undefined ? undefined : listenOption('--bind', options.bind);
  const httpBind = options.httpBind === undefined ? undefined : listenOption('--http-bind', options.httpBind);
  if (options.metrics === false && options.metricsBind !== undefined) throw new UsageError('--metrics-bind and --no-metrics ask for two things: give one');
  const metricsBind = options.metricsBind === undefined ? undefined : listenOption('--metrics-bind', options.metricsBind);
  let registry: HaproxyNode[] = [];
  const notes: string[] = [];
  if (metricsBind && !isLoopbackHost(metricsBind.host)) {
    notes.push(`warning: HAProxy's Prometheus exporter on ${formatListen(metricsBind)} has no authentication: whoever reaches it reads the nodes' names, states and counters (allow only your Prometheus server there)`);
  }
  if (options.fromRegistry) {
    const found = await nodesFromRegistry(root, options.conn);
    // A node also given on the command line is taken as given there (its address, or as a backup).
    registry = found.nodes.filter((n) => !given.some((g) => g.name === n.name));
    notes.push(`From the servers registry: ${found.notes.join(', ')}`);
  } else if (options.conn !== undefined) {
    throw new UsageError('--conn goes with --from-registry');
  }
  return applyChange(
    root,
    {
      title: 'knocker haproxy setup',
      startIfStopped: true,
      notes,
      async settings(facts) {
        const existing = facts.existing.kind === 'knocker' ? facts.existing.settings : undefined;
        let nodes = [...registry, ...given];
        if (nodes.length === 0 && !options.fromRegistry) {
          if (!existing) throw new UsageError('which web nodes? Give them as NAME=HOST:PORT (or --from-registry); nothing was changed');
          nodes = existing.nodes;
        }
        const cert = options.cert === false ? undefined : (options.cert ?? existing?.tls?.cert);
        if (httpBind && !cert) throw new UsageError('--http-bind goes with --cert: without TLS there is nothing to redirect to');
        let listenOn: ListenAddress;
        if (bind) listenOn = bind;
        else if (existing && Boolean(existing.tls) === Boolean(cert)) listenOn = existing.bind;
        // TLS dropped: plain HTTP is served where the redirect was.
        else if (existing?.tls && !cert) listenOn = existing.tls.httpBind;
        else listenOn = addressOf(existing?.bind.host ?? '0.0.0.0', cert ? DEFAULT_HTTPS_PORT : DEFAULT_HTTP_PORT);
        // TLS added: the redirect takes over where plain HTTP was served.
        const redirectFrom = httpBind ?? existing?.tls?.httpBind ?? (existing && !existing.tls ? existing.bind : addressOf(listenOn.host, DEFAULT_HTTP_PORT));
        const metrics = options.metrics === false ? undefined : (metricsBind ?? existing?.metrics ?? (await defaultMetricsBind(root, listenOn)));
        return {
          bind: listenOn,
          ...(cert ? { tls: { cert, httpBind: redirectFrom } } : {}),
          nodes,
          ...(metrics ? { metrics } : {}),
        };
      },
    },
    options,
    io,
  );
}

/**
 * Where the Prometheus exporter listens unless told: 127.0.0.1:8405 on a real host; under a sandbox
 * root (several on one machine, CONTRACTS.md) a free port on the loopback address HAProxy binds, or
 * 127.0.0.1.
 */
async function defaultMetricsBind(root: Root, bind: ListenAddress): Promise<ListenAddress> {
  if (!root.isSandbox) return addressOf('127.0.0.1', DEFAULT_METRICS_PORT);
  const host = isLoopbackHost(bind.host) && bind.family === 4 ? bind.host : '127.0.0.1';
  return addressOf(host, await freePort(host));
}

export async function haproxyAdd(root: Root, active: string[], backup: string[], options: ChangeOptions, io: Output): Promise<number> {
  const added = nodesOption(active, backup);
  if (added.length === 0) throw new UsageError('which nodes? Give them as NAME=HOST:PORT (--backup NAME=HOST:PORT for a standby)');
  return applyChange(
    root,
    {
      title: `knocker haproxy add ${added.map(nodeSpec).join(' ')}`,
      startIfStopped: false,
      settings(facts) {
        const settings = knockerSettings(facts);
        // A node already there as given is no change (a re-run after a cut-off one finishes its reload);
        // one of that name elsewhere, or of the other role, is a mistake.
        const same = (n: HaproxyNode) => settings.nodes.some((e) => nodeSpec(e) === nodeSpec(n) && e.backup === n.backup);
        const taken = added.filter((n) => !same(n) && settings.nodes.some((e) => e.name === n.name));
        if (taken.length > 0) {
          throw new UsageError(
            'already nodes of this HAProxy; nothing was changed',
            taken.map((n) => `${n.name} is ${nodeSpec(settings.nodes.find((e) => e.name === n.name)!)}${settings.nodes.find((e) => e.name === n.name)!.backup ? ' (backup)' : ''}: remove it first to change it`),
          );
        }
        return { ...settings, nodes: [...settings.nodes, ...added.filter((n) => !same(n))] };
      },
    },
    options,
    io,
  );
}

export async function haproxyRemove(root: Root, names: string[], options: ChangeOptions, io: Output): Promise<number> {
  return applyChange(
    root,
    {
      title: `knocker haproxy remove ${names.join(' ')}`,
      startIfStopped: false,
      settings(facts) {
        const settings = knockerSettings(facts);
        const unknown = names.filter((name) => !settings.nodes.some((n) => n.name === name));
        if (unknown.length > 0) {
          throw new UsageError(`no such node${unknown.length === 1 ? '' : 's'}: ${unknown.join(', ')}; nothing was changed`, [
            `the nodes are: ${settings.nodes.map((n) => n.name).join(', ')}`,
          ]);
        }
        return { ...settings, nodes: settings.nodes.filter((n) => !names.includes(n.name)) };
      },
    },
    options,
    io,
  );
}

export async function haproxyList(root: Root, options: { json: boolean }, io: Output): Promise<number> {
  const settings = knockerSettings(await inspectHaproxy(root));
  if (options.json) {
    io.out(
      JSON.stringify(
        {
          bind: formatListen(settings.bind),
          tls: settings.tls ? { cert: settings.tls.cert, httpBind: formatListen(settings.tls.httpBind) } : null,
          nodes: settings.nodes.map((n) => ({ name: n.name, address: nodeAddress(n), role: n.backup ? 'backup' : 'active' })),
        },
        null,
        2,
      ),
    );
  } else {
    describeSettings(settings).forEach((l) => io.out(l));
  }
  return 0;
}

function unreachable(error: unknown, root: Root): never {
  if (error instanceof RuntimeApiError && error.unreachable) {
    throw new PreflightError(`HAProxy does not answer: ${error.message}`, [`is it running? knocker service status haproxy${root.isSandbox ? ` --root ${root.dir}` : ''}`]);
  }
  throw error;
}

/** The backend's servers as `show stat` reports them, from the read-only socket. Exit 0 when every node is UP, else 1. */
export async function haproxyStatus(root: Root, options: { json: boolean }, io: Output): Promise<number> {
  const settings = knockerSettings(await inspectHaproxy(root));
  const socket = haproxyPaths(root).statusSocket;
  const [info, stat] = await Promise.all([showInfo(socket), showStat(socket)]).catch((error: unknown) => unreachable(error, root));
  const servers = settings.nodes.map((node) => ({ node, stat: stat.servers.find((s) => s.name === node.name && s.backend === BACKEND) }));
  const healthy = servers.every((s) => s.stat?.status.state === 'UP');
  if (options.json) {
    io.out(
      JSON.stringify(
        {
          haproxy: { version: info.version, pid: info.pid, uptimeSeconds: info.uptimeSeconds },
          healthy,
          servers: servers.map(({ node, stat: s }) => ({
            name: node.name,
            address: nodeAddress(node),
            role: node.backup ? 'backup' : 'active',
            ...(s
              ? {
                  status: s.status.state,
                  statusText: s.status.text,
                  check: { status: s.check.status, code: s.check.code ?? null, durationMs: s.check.durationMs ?? null, detail: s.check.detail },
                  sessions: s.sessions,
                  totalSessions: s.totalSessions,
                  secondsInState: s.secondsInState,
                }
              : { status: 'NOT LOADED', statusText: 'not in the running configuration' }),
          })),
        },
        null,
        2,
      ),
    );
    return healthy ? 0 : 1;
  }
  const up = servers.filter((s) => s.stat?.status.state === 'UP');
  io.out(
    `HAProxy ${info.version}, worker pid ${info.pid}, up ${age(info.uptimeSeconds)}; ${settings.tls ? 'https' : 'http'}://${formatListen(settings.bind)}: ` +
      `${up.filter((s) => !s.node.backup).length}/${servers.filter((s) => !s.node.backup).length} active nodes UP` +
      (servers.some((s) => s.node.backup) ? `, ${up.filter((s) => s.node.backup).length}/${servers.filter((s) => s.node.backup).length} backup` : ''),
  );
  const rows = [
    ['NAME', 'ADDRESS', 'ROLE', 'STATUS', 'LAST CHECK', 'SESSIONS', 'TOTAL', 'IN STATE'],
    ...servers.map(({ node, stat: s }) => [
      node.name,
      nodeAddress(node),
      node.backup ? 'backup' : 'active',
      s ? s.status.text : 'NOT LOADED',
      s ? checkText(s) : 'not in the running configuration (reload: knocker haproxy setup)',
      s ? String(s.sessions) : '',
      s ? String(s.totalSessions) : '',
      s ? age(s.secondsInState) : '',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows) io.out(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
  return healthy ? 0 : 1;
}

function checkText(stat: ServerStat): string {
  const c = stat.check;
  if (c.status === '') return 'paused (MAINT)';
  const parts = [c.status, c.code === undefined ? undefined : String(c.code), c.durationMs === undefined ? undefined : `${c.durationMs}ms`].filter(Boolean);
  const detail = !c.status.startsWith('L7OK') && c.detail ? ` ${c.detail}` : '';
  return `${parts.join(' ')}${detail}`;
}

export type RotationAction = 'drain' | 'maint' | 'ready';

const ACTION_STATE: Record<RotationAction, AdminState> = { drain: 'drain', maint: 'maint', ready: 'ready' };

export interface RotationOptions {
  /** How long `ready` waits for a passing check. */
  timeoutSeconds: number;
  /** Who holds the host's lock meanwhile ("knocker command changing this host", "knocker status --admin"). */
  holder?: string;
  /** Each status HAProxy reports while `ready` waits for its check. */
  onStatus?: (stat: ServerStat) => void;
  /** Told before anything changes, as a plan of one step (not called when there is nothing to change). */
  onPlan?: (plan: Plan) => ((event: ApplyEvent) => void) | undefined;
}

export interface RotationResult {
  changed: boolean;
  /** What HAProxy says of the node now ("DRAIN, check L7OK 200"), or was already saying. */
  now: string;
}

/**
 * drain, maint and ready through the admin socket, as a one-step plan that undoes itself on
 * failure, under the host's lock; the state is saved for the next reload. `knocker haproxy
 * drain|maint|ready` and the dashboard's --admin keys both change rotation through this.
 */
export async function rotateNode(root: Root, action: RotationAction, name: string, options: RotationOptions): Promise<RotationResult> {
  const facts = await inspectHaproxy(root);
  const settings = knockerSettings(facts);
  if (!settings.nodes.some((n) => n.name === name)) {
    throw new UsageError(`no such node: ${name}`, [`the nodes are: ${settings.nodes.map((n) => n.name).join(', ')}`]);
  }
  const { paths } = facts.service;
  const socket = paths.adminSocket;
  const upgrade = await readJournal(root.path(PATHS.upgradeJournal)).catch(() => undefined);
  if (upgrade && journalOwnerAlive(upgrade)) {
    throw new PreflightError(`knocker upgrade is taking servers in and out of rotation (pid ${upgrade.pid}): ${action} ${name} would work against it`, [
      'wait for it to finish, or stop it (Ctrl-C) first',
    ]);
  }
  return withLock(root.path(PATHS.installLock), options.holder ?? LOCK_WHAT, async () => {
    const log = fileLogger(root.path(PATHS.opsLog));
    const before = await serverStat(socket, name).catch((error: unknown) => unreachable(error, root));
    if (!before) throw new PreflightError(`the running HAProxy has no node ${name}: it runs an older configuration`, [`reload it: ${knockerCommand(root, 'haproxy setup')}`]);
    const previous = (await adminStateOf(socket, name)) ?? 'ready';
    const wanted = ACTION_STATE[action];
    const already = action === 'ready' ? previous === 'ready' && before.status.state === 'UP' : previous === wanted;
    if (already) return { changed: false, now: describeServer(before) };
    const titles: Record<RotationAction, string> = {
      drain: `Drain ${name}: no new sessions; clients holding its cookie still reach it`,
      maint: `Put ${name} in maintenance: no traffic at all, health checks paused`,
      ready: `Bring ${name} back into rotation once a health check passes (at most ${options.timeoutSeconds} s)`,
    };
    let now = describeServer(before);
    const step: Step = {
      kind: 'command',
      title: titles[action],
      details: [`now: ${describeServer(before)}`],
      changes: true,
      async apply() {
        log.info(`${action} ${name}: was ${describeServer(before)} (admin state ${previous})`);
        if (action === 'ready') {
          try {
            const stat = await readyAfterCheck(socket, name, { timeoutMs: options.timeoutSeconds * 1000, onStatus: options.onStatus });
            await saveServerState(paths, log);
            now = describeServer(stat);
            return `now ${now}`;
          } catch (error) {
            if (error instanceof CheckTimeout) throw new Error(`${error.message}; it stays out of rotation`);
            throw error;
          }
        }
        await setAdminState(socket, name, wanted);
        await saveServerState(paths, log);
        const stat = await serverStat(socket, name);
        if (!stat) return undefined;
        now = describeServer(stat);
        return `now ${now}, ${stat.sessions} session${stat.sessions === 1 ? '' : 's'}`;
      },
      async undo() {
        await setAdminState(socket, name, previous);
        await saveServerState(paths, log);
        log.info(`${name}: admin state back to ${previous}`);
      },
    };
    const plan: Plan = { title: `knocker haproxy ${action} ${name}`, steps: [step], warnings: [] };
    await applyPlan(plan, { log, onEvent: options.onPlan?.(plan) });
    return { changed: true, now };
  });
}

/** `knocker haproxy drain|maint|ready NAME`: the change with its progress printed. */
export async function haproxyRotation(root: Root, action: RotationAction, name: string, options: { timeoutSeconds: number }, io: Output): Promise<number> {
  const result = await rotateNode(root, action, name, {
    timeoutSeconds: options.timeoutSeconds,
    onStatus: (stat) => io.out(`    ${name}: ${describeServer(stat)}`),
    onPlan: (plan) => progressPrinter(plan, io.out),
  });
  if (!result.changed) {
    io.out(`Nothing to change: ${name} is already ${action === 'ready' ? 'in rotation' : action === 'drain' ? 'drained' : 'in maintenance'} (${result.now}).`);
  }
  return 0;
}
