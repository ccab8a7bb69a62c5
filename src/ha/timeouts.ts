// The timeouts of an automatic pair: the monitor's (when it declares a node unhealthy, how long it
// waits for a primary to demote itself) and each keeper's (when a primary cut off from both the
// monitor and its standby stops its PostgreSQL). pg_auto_failover's defaults took ≈50 s from a dead
// primary to writes again on this kind of machine; this set took ≈17 s (research/pgaf-experiment.md
// §5), and keeps its split-brain guard sound (splitBrainGuard below).

/** The monitor's settings (pgautofailover.*, milliseconds except the retry count). */
export interface MonitorTimeouts {
  healthCheckPeriodMs: number;
  healthCheckTimeoutMs: number;
  healthCheckMaxRetries: number;
  healthCheckRetryDelayMs: number;
  unhealthyMs: number;
  demoteMs: number;
}

/** What knocker sets on the monitor. */
export const MONITOR_TIMEOUTS: MonitorTimeouts = {
  healthCheckPeriodMs: 2000,
  healthCheckTimeoutMs: 2000,
  healthCheckMaxRetries: 1,
  healthCheckRetryDelayMs: 1000,
  unhealthyMs: 6000,
  demoteMs: 10_000,
};

/** What knocker sets on each keeper: `timeout.network_partition_timeout`, in whole seconds. */
export const NETWORK_PARTITION_TIMEOUT_S = 5;

const GUCS: Record<keyof MonitorTimeouts, string> = {
  healthCheckPeriodMs: 'pgautofailover.health_check_period',
  healthCheckTimeoutMs: 'pgautofailover.health_check_timeout',
  healthCheckMaxRetries: 'pgautofailover.health_check_max_retries',
  healthCheckRetryDelayMs: 'pgautofailover.health_check_retry_delay',
  unhealthyMs: 'pgautofailover.node_considered_unhealthy_timeout',
  demoteMs: 'pgautofailover.primary_demote_timeout',
};

/** The lines for the monitor's postgresql.conf (after pg_autoctl's include: later lines win). */
export function monitorTimeoutLines(t: MonitorTimeouts = MONITOR_TIMEOUTS): string[] {
  return [
    '# knocker ha: failover in ≈17 s; the split-brain guard it keeps is in README, "Automatic failover"',
    ...(Object.keys(GUCS) as Array<keyof MonitorTimeouts>).map((k) => `${GUCS[k]} = ${t[k]}`),
  ];
}

/** The monitor's timeouts in effect, asked of it (any role may read them), in their base unit (pg_settings.setting: ms). */
export async function readMonitorTimeouts(query: (sql: string, values: unknown[]) => Promise<Array<{ v: string }>>): Promise<MonitorTimeouts> {
  const out = {} as MonitorTimeouts;
  for (const [key, guc] of Object.entries(GUCS) as Array<[keyof MonitorTimeouts, string]>) {
    const value = Number((await query('SELECT setting AS v FROM pg_settings WHERE name = $1', [guc]))[0]?.v);
    if (!Number.isInteger(value) || value < 0) throw new Error(`the monitor's ${guc} is not a whole number`);
    out[key] = value;
  }
  return out;
}

/** pg_autoctl's keeper loop: one round (monitor call, partition check) a second (PG_AUTOCTL_KEEPER_SLEEP_TIME). */
export const KEEPER_LOOP_MS = 1000;
/** The keeper counts in whole seconds (time(NULL)) and fences only when the lag is strictly above the timeout. */
export const KEEPER_ROUNDING_MS = 1000;
/** The bound assumed for pg_autoctl's fast stop of a fenced primary (measured well under 1 s here). */
export const STOP_BOUND_MS = 5000;

export interface GuardResult {
  /** When an isolated primary has stopped at the latest, after its last contact (ms). */
  fencedByMs: number;
  /** When the monitor may promote the standby at the earliest, after that primary's last report (ms). */
  promoteNotBeforeMs: number;
  sound: boolean;
}

/**
 * The split-brain guard of pg_auto_failover: a primary cut off from the monitor and its standby
 * must have stopped PostgreSQL before the monitor may promote the standby.
 *
 * - The keeper (service_keeper.c, is_network_healthy) fences when both its monitor lag and its
 *   standby lag are strictly above network_partition_timeout, counted in whole seconds, checked once
 *   per loop; its last standby contact may be up to one loop after its last report to the monitor.
 *   So it has stopped at the latest at lastReport + NPT + 2 × loop + rounding + stop.
 * - The monitor marks a node unhealthy no sooner than node_considered_unhealthy_timeout after its
 *   last report, then waits primary_demote_timeout for it to report `demoted` before it promotes.
 *   So the standby is promoted at the earliest at lastReport + unhealthy + demote.
 *
 * Sound when   NPT + 2 × KEEPER_LOOP + KEEPER_ROUNDING + STOP_BOUND  <  unhealthy + demote.
 */
export function splitBrainGuard(monitor: Pick<MonitorTimeouts, 'unhealthyMs' | 'demoteMs'>, networkPartitionTimeoutS: number): GuardResult {
  const fencedByMs = networkPartitionTimeoutS * 1000 + 2 * KEEPER_LOOP_MS + KEEPER_ROUNDING_MS + STOP_BOUND_MS;
  const promoteNotBeforeMs = monitor.unhealthyMs + monitor.demoteMs;
  return { fencedByMs, promoteNotBeforeMs, sound: fencedByMs < promoteNotBeforeMs };
}

/**
 * The failover time these settings give a dead primary, about: the monitor's decision (the later
 * of the unhealthy timeout and the health checks' detection: period + (retries+1) × timeout +
 * retries × delay for a host that does not answer), the demote timeout, and a second of work.
 */
export function expectedFailoverMs(t: MonitorTimeouts): number {
  const detection = t.healthCheckPeriodMs + (t.healthCheckMaxRetries + 1) * t.healthCheckTimeoutMs + t.healthCheckMaxRetries * t.healthCheckRetryDelayMs;
  return Math.max(t.unhealthyMs, detection) + t.demoteMs + 1000;
}
