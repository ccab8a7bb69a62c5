// HAProxy's runtime API over its Unix sockets: one short connection per command (a connection
// kept open stays attached to the old process after a reload and reads stale data), and parsers
// for what knocker and its dashboard read: `show stat`, `show info`, `show servers state`.
// The admin socket changes servers (`set server … state drain|maint|ready`); the read-only socket
// (level user) is enough for everything that only looks.
import net from 'node:net';

export class RuntimeApiError extends Error {
  /** The socket could not be reached at all (HAProxy not running, wrong path, no permission). */
  readonly unreachable: boolean;
  constructor(message: string, unreachable: boolean) {
    super(message);
    this.unreachable = unreachable;
  }
}

/**
 * Sends one line (commands may be joined with "; ") on a fresh connection and returns the whole
 * answer. The connection is half-closed after the line, which the master CLI needs to answer.
 */
export function runtimeCommand(socketPath: string, command: string, timeoutMs = 5_000): Promise<string> {
  if (/[\r\n]/.test(command)) return Promise.reject(new Error('a runtime command is one line'));
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    const chunks: Buffer[] = [];
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(new RuntimeApiError(`HAProxy did not answer "${command}" on ${socketPath} within ${timeoutMs} ms`, false)),
    );
    socket.once('connect', () => socket.end(`${command}\n`));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.once('error', (error: NodeJS.ErrnoException) => {
      const code = error.code ?? '';
      if (error instanceof RuntimeApiError) reject(error);
      else if (['ENOENT', 'ECONNREFUSED', 'EACCES', 'ENOTSOCK'].includes(code)) {
        const why =
          code === 'EACCES' ? 'permission denied (run it as root, as HAProxy was set up)' : code === 'ENOENT' ? 'no such socket' : 'nothing listens there';
        reject(new RuntimeApiError(`cannot reach HAProxy's runtime API on ${socketPath}: ${why}`, true));
      } else reject(new RuntimeApiError(`HAProxy's runtime API on ${socketPath}: ${error.message}`, true));
    });
  });
}

/** A `set …` command answers nothing when it worked, and a reason when it did not. */
async function runtimeChange(socketPath: string, command: string): Promise<void> {
  const answer = (await runtimeCommand(socketPath, command)).trim();
  if (answer !== '') throw new RuntimeApiError(`HAProxy refused "${command}": ${answer.split('\n')[0]}`, false);
}

// ---------------------------------------------------------------------------------------------
// show stat

/** A server's state as `show stat` words it: "UP", "UP 2/3" (going down), "DOWN 1/2" (going up), "DRAIN", "MAINT", … */
export interface ServerStatus {
  state: 'UP' | 'DOWN' | 'DRAIN' | 'MAINT' | 'NOLB' | 'NO CHECK' | 'UNKNOWN';
  /** Set while the state is changing: `checks` of `of` consecutive checks seen towards the other state. */
  transition?: { checks: number; of: number };
  /** What follows, e.g. "(via web_nodes/web-1)", "(agent)". */
  note?: string;
  /** The words as HAProxy gave them. */
  text: string;
}

export function parseServerStatus(text: string): ServerStatus {
  const raw = text.trim();
  const match = /^(UP|DOWN|DRAIN|MAINT|NOLB|no check)(?:\s+(\d+)\/(\d+))?(?:\s*(\(.*\)))?$/i.exec(raw);
  if (!match) return { state: 'UNKNOWN', text: raw };
  const state = match[1]!.toUpperCase() as ServerStatus['state'];
  return {
    state,
    ...(match[2] !== undefined ? { transition: { checks: Number(match[2]), of: Number(match[3]) } } : {}),
    ...(match[4] !== undefined ? { note: match[4] } : {}),
    text: raw,
  };
}

/** True for a server that takes new, load-balanced requests now ("UP", "UP 2/3"). */
export function inRotation(status: ServerStatus): boolean {
  return status.state === 'UP' || status.state === 'NO CHECK';
}

export interface ServerStat {
  backend: string;
  name: string;
  status: ServerStatus;
  /** "10.0.0.11:8756", IPv6 in brackets; like `cookie`, empty on the read-only socket (HAProxy keeps both from level user). */
  address: string;
  cookie: string;
  backup: boolean;
  weight: number;
  /** Sessions now, and waiting in its queue. */
  sessions: number;
  queued: number;
  /** Sessions since HAProxy (re)started, and times it was picked by the balancer (new or redispatched). */
  totalSessions: number;
  timesSelected: number;
  /** Seconds since the last UP/DOWN transition, and the total seconds it has been down. */
  secondsInState: number;
  downtimeSeconds: number;
  /** Seconds since a session was last given to it; undefined if never. */
  secondsSinceLastSession: number | undefined;
  check: {
    /** "L7OK", "L4CON", "L7STS", … ("* " prefix of a running check removed); "" while checks are paused. */
    status: string;
    running: boolean;
    code: number | undefined;
    durationMs: number | undefined;
    /** HAProxy's words for it: "Layer7 check passed", "Connection refused", … */
    description: string;
    /** The last check's content or error text. */
    detail: string;
    failures: number;
    /** UP→DOWN transitions. */
    downTransitions: number;
  };
  retries: number;
  redispatches: number;
  connectionErrors: number;
  responseErrors: number;
  /** Slowstart throttle in percent while it ramps up after coming back. */
  throttlePercent: number | undefined;
}

export interface ProxyStat {
  name: string;
  kind: 'frontend' | 'backend';
  status: string;
  sessions: number;
  totalSessions: number;
  /** Backends: active and backup servers in rotation. */
  activeServers?: number;
  backupServers?: number;
}

export interface StatSnapshot {
  servers: ServerStat[];
  proxies: ProxyStat[];
}

/** Parses the CSV of `show stat` by its header line (the column order is not relied upon). */
export function parseShowStat(csv: string): StatSnapshot {
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const header = lines[0];
  if (!header?.startsWith('# ')) throw new RuntimeApiError(`unexpected answer to "show stat": ${JSON.stringify(csv.slice(0, 120))}`, false);
  const names = header.slice(2).split(',');
  const snapshot: StatSnapshot = { servers: [], proxies: [] };
  for (const line of lines.slice(1)) {
    const cells = line.split(',');
    const field = (name: string) => cells[names.indexOf(name)] ?? '';
    const count = (name: string) => Number(field(name) || 0);
    const optional = (name: string) => (field(name) === '' ? undefined : Number(field(name)));
    const type = field('type');
    if (type === '0' || type === '1') {
      snapshot.proxies.push({
        name: field('pxname'),
        kind: type === '0' ? 'frontend' : 'backend',
        status: field('status'),
        sessions: count('scur'),
        totalSessions: count('stot'),
        ...(type === '1' ? { activeServers: count('act'), backupServers: count('bck') } : {}),
      });
      continue;
    }
    if (type !== '2') continue;
    const checkStatus = field('check_status');
    snapshot.servers.push({
      backend: field('pxname'),
      name: field('svname'),
      status: parseServerStatus(field('status')),
      address: field('addr'),
      cookie: field('cookie'),
      backup: field('bck') === '1',
      weight: count('weight'),
      sessions: count('scur'),
      queued: count('qcur'),
      totalSessions: count('stot'),
      timesSelected: count('lbtot'),
      secondsInState: count('lastchg'),
      downtimeSeconds: count('downtime'),
      secondsSinceLastSession: field('lastsess') === '-1' ? undefined : optional('lastsess'),
      check: {
        status: checkStatus.replace(/^\* /, ''),
        running: checkStatus.startsWith('* '),
        code: optional('check_code'),
        durationMs: optional('check_duration'),
        description: field('check_desc'),
        detail: field('last_chk'),
        failures: count('chkfail'),
        downTransitions: count('chkdown'),
      },
      retries: count('wretr'),
      redispatches: count('wredis'),
      connectionErrors: count('econ'),
      responseErrors: count('eresp'),
      throttlePercent: optional('throttle'),
    });
  }
  return snapshot;
}

export async function showStat(socketPath: string): Promise<StatSnapshot> {
  return parseShowStat(await runtimeCommand(socketPath, 'show stat'));
}

// ---------------------------------------------------------------------------------------------
// show info

export interface ProcessInfo {
  version: string;
  /** The worker's pid: a new one after every reload. */
  pid: number;
  uptimeSeconds: number;
  currentConnections: number;
  /** Everything `show info` said, by name. */
  fields: Record<string, string>;
}

export function parseShowInfo(text: string): ProcessInfo {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  if (fields.Pid === undefined) throw new RuntimeApiError(`unexpected answer to "show info": ${JSON.stringify(text.slice(0, 120))}`, false);
  return {
    version: fields.Version ?? '',
    pid: Number(fields.Pid),
    uptimeSeconds: Number(fields.Uptime_sec ?? 0),
    currentConnections: Number(fields.CurrConns ?? 0),
    fields,
  };
}

export async function showInfo(socketPath: string, timeoutMs?: number): Promise<ProcessInfo> {
  return parseShowInfo(await runtimeCommand(socketPath, 'show info', timeoutMs));
}

// ---------------------------------------------------------------------------------------------
// show servers state: what is saved to the server-state file before a reload

export interface SavedServerState {
  backend: string;
  name: string;
  address: string;
  port: number;
  /** srv_admin_state: 0x01 forced MAINT, 0x08 forced DRAIN, … */
  adminState: number;
  /** The line as HAProxy wrote it. */
  line: string;
}

export interface ServersState {
  /** The format version line and the header line. */
  head: string[];
  servers: SavedServerState[];
}

export function parseServersState(text: string): ServersState {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const head = lines.filter((l, i) => i === 0 || l.startsWith('#'));
  const columns = (lines.find((l) => l.startsWith('# ')) ?? '').slice(2).split(' ');
  const at = (name: string) => columns.indexOf(name);
  if (head.length < 2 || at('srv_name') < 0)
    throw new RuntimeApiError(`unexpected answer to "show servers state": ${JSON.stringify(text.slice(0, 120))}`, false);
  const servers = lines
    .filter((l, i) => i > 0 && !l.startsWith('#'))
    .map((line) => {
      const cells = line.split(' ');
      return {
        backend: cells[at('be_name')] ?? '',
        name: cells[at('srv_name')] ?? '',
        address: cells[at('srv_addr')] ?? '',
        port: Number(cells[at('srv_port')] ?? 0),
        adminState: Number(cells[at('srv_admin_state')] ?? 0),
        line,
      };
    });
  return { head, servers };
}

export async function showServersState(socketPath: string): Promise<ServersState> {
  return parseServersState(await runtimeCommand(socketPath, 'show servers state'));
}

/** The state file's text for the servers `keep` accepts (the others start from the configuration). */
export function serversStateText(state: ServersState, keep: (server: SavedServerState) => boolean = () => true): string {
  return `${[...state.head, ...state.servers.filter(keep).map((s) => s.line)].join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// Changing a server (admin socket)

export type AdminState = 'ready' | 'drain' | 'maint';

/** The admin state of `show servers state`'s srv_admin_state bits: forced MAINT (0x01), forced DRAIN (0x08), else ready. */
export function adminStateFromBits(saved: Pick<SavedServerState, 'adminState'>): AdminState {
  return saved.adminState & 0x01 ? 'maint' : saved.adminState & 0x08 ? 'drain' : 'ready';
}

export function setServerState(socketPath: string, backend: string, server: string, state: AdminState): Promise<void> {
  return runtimeChange(socketPath, `set server ${backend}/${server} state ${state}`);
}

/**
 * Takes a server out of rotation with its health checks running, marked down until `rise` checks
 * pass: from there it shows DRAIN, proof that it passed a check after this moment. (From MAINT,
 * `state ready` alone would put it in rotation before any check.)
 */
export function drainUntilChecked(socketPath: string, backend: string, server: string): Promise<void> {
  return runtimeChange(socketPath, `set server ${backend}/${server} state drain; set server ${backend}/${server} health down`);
}

/** Ends the sessions a server still has (HAProxy: "after a server is put into maintenance mode"). */
export function shutdownSessions(socketPath: string, backend: string, server: string): Promise<void> {
  return runtimeChange(socketPath, `shutdown sessions server ${backend}/${server}`);
}

/**
 * Ready again, but marked down until `rise` checks pass: HAProxy brings it back into rotation by
 * itself once they do, and never before.
 */
export function readyWhenChecked(socketPath: string, backend: string, server: string): Promise<void> {
  const s = `${backend}/${server}`;
  return runtimeChange(socketPath, `set server ${s} state drain; set server ${s} health down; set server ${s} state ready`);
}

// ---------------------------------------------------------------------------------------------
// The master CLI

export interface MasterProcesses {
  masterPid: number;
  reloads: number;
  /** Reloads whose new configuration could not start (the old worker kept serving). */
  failedReloads: number;
  workers: number[];
  /** Workers of earlier configurations still finishing their connections. */
  oldWorkers: number[];
}

/** Parses the master CLI's `show proc`. */
export function parseShowProc(text: string): MasterProcesses {
  const result: MasterProcesses = { masterPid: 0, reloads: 0, failedReloads: 0, workers: [], oldWorkers: [] };
  let section = 'current';
  for (const line of text.split('\n')) {
    if (/^# old workers/.test(line)) section = 'old';
    else if (/^# workers/.test(line)) section = 'current';
    else if (/^# programs/.test(line)) section = 'programs';
    const master = /^(\d+)\s+master\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?/.exec(line);
    if (master) {
      result.masterPid = Number(master[1]);
      result.reloads = Number(master[2]);
      result.failedReloads = Number(master[3] ?? 0);
      continue;
    }
    const worker = /^(\d+)\s+worker\b/.exec(line);
    if (worker && section !== 'programs') (section === 'old' ? result.oldWorkers : result.workers).push(Number(worker[1]));
  }
  return result;
}

export async function showProc(masterSocket: string): Promise<MasterProcesses> {
  return parseShowProc(await runtimeCommand(masterSocket, 'show proc'));
}

/**
 * Turns a server's health checks off or on. Off, HAProxy keeps the state it had (UP) whatever the
 * node does: while the only server in rotation restarts, requests wait through the retries
 * instead of meeting a server marked DOWN (HAProxy answers 503 at once when no server is usable).
 */
export function setHealthChecks(socketPath: string, backend: string, server: string, enabled: boolean): Promise<void> {
  return runtimeChange(socketPath, `${enabled ? 'enable' : 'disable'} health ${backend}/${server}`);
}
