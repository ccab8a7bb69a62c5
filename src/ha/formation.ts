// What an automatic pair is, as pg_auto_failover knows it, read on a data host through its keeper's
// config (keeper.ts): the monitor's `show state --json` (each node's reported and goal state,
// health, LSN) and `show events --json`, the keeper's own `show state --local --json` and `status
// --json` (what this host knows when the monitor does not answer). Everything pg_autoctl prints is
// read from outside: validated field by field before use, and a value that does not fit is an
// error, never guessed. knocker never re-implements pg_auto_failover's state machine: it shows it.
import type { Logger } from '../system/log.js';
import type { Root } from '../system/root.js';
import { keeperCtl } from './keeper.js';
import type { HaNodeState } from './node-state.js';

export type Health = 'healthy' | 'unhealthy' | 'unknown';

export interface FormationNode {
  name: string;
  address: string;
  port: number;
  /** pg_auto_failover's states: what the node last reported, what the monitor assigned it. */
  reportedState: string;
  goalState: string;
  /** reported ≠ goal: the node is moving (a switchover, a failover, a rejoin). */
  inTransition: boolean;
  health: Health;
  lsn: string;
  timeline: number;
}

export interface FormationEvent {
  id: number;
  at: string;
  node: string;
  reportedState: string;
  goalState: string;
  description: string;
}

/**
 * `sync`: the primary waits for its standby at every commit (`primary`); `wait_primary`: the standby
 * is not there, writes go on one copy and no failover is possible; `none`: no primary (a failover or
 * switchover under way); `unknown`: the monitor does not answer.
 */
export type ReplicationMode = 'sync' | 'wait_primary' | 'none' | 'unknown';

export interface FormationReport {
  mode: 'automatic';
  /** This host's node (node.json). */
  self: { name: string; address: string };
  monitor: { uri: string; reachable: boolean; error?: string };
  nodes: FormationNode[];
  primary: string | null;
  replication: ReplicationMode;
  /** The monitor's last events, oldest first. */
  events: FormationEvent[];
  /** What this host's keeper knows by itself (its state file, its processes). */
  local: { reportedState: string | null; goalState: string | null; keeperRunning: boolean; postgresRunning: boolean };
  problems: string[];
}

const STATE = /^[a-z_]{1,40}$/;
const LSN = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i;
const HOST = /^[A-Za-z0-9.:_-]{1,253}$/;

function field<T>(row: Record<string, unknown>, key: string, check: (v: unknown) => v is T, what: string): T {
  const value = row[key];
  if (!check(value)) throw new Error(`pg_autoctl's ${key} is not ${what}: ${JSON.stringify(value)?.slice(0, 80)}`);
  return value;
}
const isState = (v: unknown): v is string => typeof v === 'string' && STATE.test(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const isLsn = (v: unknown): v is string => typeof v === 'string' && LSN.test(v);
const isHost = (v: unknown): v is string => typeof v === 'string' && HOST.test(v);
const isName = (v: unknown): v is string => typeof v === 'string' && /^[A-Za-z0-9_.-]{1,63}$/.test(v);
const isText = (v: unknown): v is string => typeof v === 'string' && v.length <= 2000;
const isTime = (v: unknown): v is string => typeof v === 'string' && !Number.isNaN(Date.parse(v));

function rows(text: string): Record<string, unknown>[] {
  const value: unknown = JSON.parse(text);
  if (!Array.isArray(value) || value.some((r) => !r || typeof r !== 'object' || Array.isArray(r))) throw new Error('pg_autoctl printed no list of objects');
  return value as Record<string, unknown>[];
}

/** `pg_autoctl show state --json`, validated. */
export function parseState(text: string): FormationNode[] {
  return rows(text).map((row) => {
    const health = field(row, 'health', isInt, 'a health code');
    const reportedState = field(row, 'current_group_state', isState, 'a state');
    const goalState = field(row, 'assigned_group_state', isState, 'a state');
    const port = field(row, 'nodeport', isInt, 'a port');
    if (port < 1 || port > 65535) throw new Error(`pg_autoctl's nodeport is not a port: ${port}`);
    return {
      name: field(row, 'nodename', isName, 'a node name'),
      address: field(row, 'nodehost', isHost, 'a host'),
      port,
      reportedState,
      goalState,
      inTransition: reportedState !== goalState,
      health: health === 1 ? 'healthy' : health === 0 ? 'unhealthy' : 'unknown',
      lsn: field(row, 'reported_lsn', isLsn, 'an LSN'),
      timeline: field(row, 'reported_tli', isInt, 'a timeline'),
    };
  });
}

/** `pg_autoctl show events --json`, validated (oldest first). */
export function parseEvents(text: string): FormationEvent[] {
  return rows(text).map((row) => ({
    id: field(row, 'eventid', isInt, 'an event id'),
    at: field(row, 'eventtime', isTime, 'a time'),
    node: field(row, 'nodename', isName, 'a node name'),
    reportedState: field(row, 'reportedstate', isState, 'a state'),
    goalState: field(row, 'goalstate', isState, 'a state'),
    description: field(row, 'description', isText, 'a description'),
  }));
}

/** `pg_autoctl show state --local --json`: this node's states as its keeper's state file has them. */
export function parseLocalState(text: string): { reportedState: string; goalState: string } {
  const value: unknown = JSON.parse(text);
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('pg_autoctl printed no object');
  const row = value as Record<string, unknown>;
  return { reportedState: field(row, 'current_group_state', isState, 'a state'), goalState: field(row, 'assigned_group_state', isState, 'a state') };
}

/** `pg_autoctl status --json`: whether the keeper and its PostgreSQL run. */
export function parseKeeperStatus(text: string): { keeperRunning: boolean; postgresRunning: boolean } {
  const value: unknown = JSON.parse(text);
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('pg_autoctl printed no object');
  const row = value as { pg_autoctl?: { status?: unknown }; postgres?: { postmaster?: { status?: unknown }; pid?: unknown } };
  return { keeperRunning: row.pg_autoctl?.status === 'running', postgresRunning: row.postgres?.postmaster?.status === 'ready' };
}

/** The replication mode from the primary's state (see ReplicationMode). */
export function replicationMode(nodes: FormationNode[]): { primary: string | null; mode: ReplicationMode } {
  const writer = nodes.find((n) => n.reportedState === 'primary' || n.reportedState === 'wait_primary' || n.reportedState === 'single');
  if (!writer) return { primary: null, mode: 'none' };
  return { primary: writer.name, mode: writer.reportedState === 'primary' ? 'sync' : 'wait_primary' };
}

/** How long a question to the monitor may take (pg_autoctl retries a monitor that does not answer). */
const MONITOR_TIMEOUT_MS = 15_000;

/**
 * The monitor's view (state and last events), or why it could not be had: `unreachable` (pg_autoctl
 * failed or did not return in time) or `unreadable` (it printed what does not validate).
 */
export async function monitorView(
  root: Root,
  state: HaNodeState,
  eventCount: number,
  log?: Logger,
): Promise<{ nodes: FormationNode[]; events: FormationEvent[] } | { error: string; unreadable?: boolean }> {
  const ask = (args: string[]) => keeperCtl(root, state, args, { log, allowFailure: true, timeoutMs: MONITOR_TIMEOUT_MS });
  let shown: Awaited<ReturnType<typeof ask>>;
  try {
    shown = await ask(['show', 'state', '--json']);
  } catch (error) {
    return { error: (error as Error).message };
  }
  if (shown.exitCode !== 0) return { error: lastLine(shown.stderr) };
  try {
    const nodes = parseState(shown.stdout);
    if (eventCount === 0) return { nodes, events: [] };
    const events = await ask(['show', 'events', '--json', '--count', String(eventCount)]).catch(() => undefined);
    return { nodes, events: events?.exitCode === 0 ? parseEvents(events.stdout) : [] };
  } catch (error) {
    return { error: `pg_autoctl printed what knocker cannot read: ${(error as Error).message}`, unreadable: true };
  }
}

function lastLine(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.replace(/^\d\d:\d\d:\d\d \d+ (ERROR|FATAL|WARN) +/, '').trim())
    .filter(Boolean);
  return lines.at(-1) ?? 'pg_autoctl failed';
}

/** Everything `standby status` and `status` show of an automatic pair, from this data host. */
export async function readFormation(root: Root, state: HaNodeState, options: { events?: number; log?: Logger } = {}): Promise<FormationReport> {
  const [view, local, keeper] = await Promise.all([
    monitorView(root, state, options.events ?? 5, options.log),
    keeperCtl(root, state, ['show', 'state', '--local', '--json'], { allowFailure: true, log: options.log })
      .then((r) => (r.exitCode === 0 ? parseLocalState(r.stdout) : undefined))
      .catch(() => undefined),
    keeperCtl(root, state, ['status', '--json'], { allowFailure: true, log: options.log })
      .then((r) => parseKeeperStatus(r.stdout))
      .catch(() => ({ keeperRunning: false, postgresRunning: false })),
  ]);
  const report: FormationReport = {
    mode: 'automatic',
    self: { name: state.name, address: state.address },
    monitor: { uri: state.monitorUri, reachable: !('error' in view) || view.unreadable === true },
    nodes: [],
    primary: null,
    replication: 'unknown',
    events: [],
    local: { reportedState: local?.reportedState ?? null, goalState: local?.goalState ?? null, ...keeper },
    problems: [],
  };
  if ('error' in view && view.unreadable) {
    report.monitor.error = view.error;
    report.problems.push(view.error);
  } else if ('error' in view) {
    report.monitor.error = view.error;
    report.problems.push(
      `the monitor does not answer (${view.error}): no failover can be decided until it is back; this host's keeper says ${local ? `${local.reportedState} (goal ${local.goalState})` : 'nothing'}`,
    );
  } else {
    report.nodes = view.nodes;
    report.events = view.events;
    const { primary, mode } = replicationMode(view.nodes);
    report.primary = primary;
    report.replication = mode;
    if (!primary) report.problems.push('no node is the primary now (a failover or a switchover is under way?)');
    if (mode === 'wait_primary')
      report.problems.push(`degraded: ${primary} takes writes on one copy (wait_primary): its standby is not in sync, no failover possible`);
    for (const n of view.nodes) if (n.health === 'unhealthy') report.problems.push(`${n.name} (${n.address}:${n.port}) is unhealthy as the monitor sees it`);
  }
  if (!keeper.keeperRunning) report.problems.push(`this host's keeper (pg_autoctl run) is not running`);
  return report;
}

export function formatFormation(report: FormationReport): string[] {
  const lines = [
    `Automatic pair (pg_auto_failover); this host is ${report.self.name} (${report.self.address})`,
    `Monitor    ${report.monitor.uri}  ${report.monitor.reachable ? 'reachable' : `NOT REACHABLE: ${report.monitor.error}`}`,
  ];
  for (const n of report.nodes)
    lines.push(
      `Node       ${n.name}  ${n.address}:${n.port}  ${n.reportedState}${n.inTransition ? ` -> ${n.goalState} (in transition)` : ''}  ${n.health}  LSN ${n.lsn}  timeline ${n.timeline}`,
    );
  if (report.monitor.reachable)
    lines.push(
      `Replication ${report.replication === 'sync' ? 'sync: every commit waits for the standby' : report.replication === 'wait_primary' ? 'wait_primary: writes on one copy, no failover possible' : 'none: no primary now'}`,
    );
  lines.push(
    `This host  keeper ${report.local.keeperRunning ? 'running' : 'NOT RUNNING'}, PostgreSQL ${report.local.postgresRunning ? 'running' : 'not running'}, state ${report.local.reportedState ?? 'unknown'}${report.local.goalState && report.local.goalState !== report.local.reportedState ? ` (goal ${report.local.goalState})` : ''}`,
  );
  for (const e of report.events) lines.push(`Event      ${e.at}  ${e.node}  ${e.reportedState} -> ${e.goalState}  ${e.description}`);
  for (const p of report.problems) lines.push(`problem: ${p}`);
  if (report.problems.length === 0) lines.push('OK');
  return lines;
}

/** standby status' exit code on an automatic pair: 3 this host's PostgreSQL is not running, 1 degraded, 0 healthy. */
export function formationExit(report: FormationReport): number {
  if (!report.local.postgresRunning) return 3;
  return report.problems.length === 0 ? 0 : 1;
}

/** The dashboard's and `status --once`'s lines for an automatic pair (screens only display them). */
export function formationPanelLines(report: FormationReport): Array<{ health: 'ok' | 'warn' | 'fail'; text: string }> {
  const lines: Array<{ health: 'ok' | 'warn' | 'fail'; text: string }> = [];
  lines.push({
    health: report.monitor.reachable ? 'ok' : 'warn',
    text: `automatic pair (pg_auto_failover): monitor ${report.monitor.reachable ? 'reachable' : `NOT reachable (${report.monitor.error})`}${report.monitor.reachable ? `, replication ${report.replication}` : ''}`,
  });
  for (const n of report.nodes)
    lines.push({
      health: n.health === 'unhealthy' ? 'fail' : n.inTransition || n.health === 'unknown' ? 'warn' : 'ok',
      text: `node ${n.name} ${n.address}:${n.port}: ${n.reportedState}${n.inTransition ? ` -> ${n.goalState}` : ''}, ${n.health}, LSN ${n.lsn}${n.name === report.self.name ? ' (this host)' : ''}`,
    });
  if (!report.monitor.reachable)
    lines.push({ health: 'warn', text: `this host's keeper: ${report.local.reportedState ?? 'unknown'}${report.local.keeperRunning ? '' : ' (not running)'}` });
  for (const p of report.problems) lines.push({ health: /unhealthy|no node is the primary/.test(p) ? 'fail' : 'warn', text: p });
  for (const e of report.events.slice(-3)) lines.push({ health: 'ok', text: `event ${e.at.slice(11, 19)} ${e.node}: ${e.description}` });
  return lines;
}
