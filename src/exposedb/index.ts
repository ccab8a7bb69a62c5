// knocker exposedb: turns a single-node install into the database of other web nodes. `--init`
// makes the local PostgreSQL listen externally and creates their login role; `--add`/`--remove`
// edit the allow-list of their addresses in pg_hba.conf; `--list` shows it; `--renew-cert` and
// `--add-standby` look after TLS and replication. One action per file (init.ts, add.ts, …); every
// change goes through the one runner (src/system/runner.ts): the host's lock, the exposedb log
// with secrets scrubbed, --dry-run as text or the one JSON shape, progress on stderr.
import { refuseOnAutomaticPair } from '../ha/node-state.js';
import { INSTEAD } from '../ha/refusals.js';
import { parseIp, parseNarrowCidr, parseServerName } from '../config/values.js';
import { DEFAULT_TTL_MS, parseTtl } from '../join/token.js';
import { PreflightError, UsageError } from '../errors.js';
import { adminLink, type AdminLink } from '../postgres/admin.js';
import type { AllowListTarget } from '../postgres/allow-list.js';
import { remoteRoleName } from '../postgres/allow-list.js';
import { findLocalCluster, type ClusterFinder } from '../postgres/locate.js';
import type { Output } from '../shared/output.js';
import { quoted } from '../shared/printable.js';
import { nullLogger, type Logger } from '../system/log.js';
import { PATHS, type Root } from '../system/root.js';
import { dryRunJson, withRun, type Run } from '../system/runner.js';
import { isRoot } from '../system/users.js';
import { checkTarget, connectionString, HOST_NAME, inspect, type ConnectionSource, type Context } from './context.js';
import type { Names } from './plan.js';

export type ExposeAction = 'init' | 'add' | 'remove' | 'list' | 'sync' | 'renew-cert' | 'add-standby' | 'invite' | 'invites' | 'revoke' | 'add-monitor';

export interface ExposeRequest {
  action: ExposeAction;
  /** The CIDR of --add / --remove, as typed. */
  cidr?: string;
  /** --conn: instead of knocknoc.conf's DatabaseURL. */
  conn?: string;
  /** --host: the host written into the printed connection string. */
  host?: string;
  /** --add-standby ADDR[:PORT], as typed. */
  standby?: string;
  /** --invite: the new node's address (ADDR/32), as typed; --ttl and --name with it. */
  invite?: string;
  ttl?: string;
  name?: string;
  /** --revoke ID. */
  revoke?: string;
  /** --add-monitor ADDR[:PORT], as typed. */
  monitor?: string;
  /** --dry-run: show the plan, change nothing (every action but --list). */
  dryRun?: boolean;
  /** With --dry-run: the plan as the one JSON shape of every command. */
  json?: boolean;
}

export interface ExposeEnvironment {
  root: Root;
  io: Output;
  /** How the local cluster is found; default: the root's private cluster, or the host's own. */
  findCluster?: ClusterFinder;
}

function checkCidr(option: string, text: string): string {
  const parsed = parseNarrowCidr(text, 'that would let the role in from anywhere; allow each web node, or its subnet, instead');
  if (!parsed.ok)
    throw new UsageError(
      `${option}: ${parsed.error}; nothing was changed`,
      [],
      ['write an address range as ADDRESS/PREFIX, e.g. 192.168.1.0/24, or 203.0.113.7/32 for one node'],
    );
  return parsed.value;
}

function checkHost(text: string): string {
  const value = text.trim();
  const ip = parseIp(value);
  if (ip.ok) return ip.value.toString();
  if (HOST_NAME.test(value)) return value;
  throw new UsageError(`--host: ${quoted(text)} is neither an IP address nor a host name; nothing was changed`);
}

interface Checked {
  parsedCidr: string | undefined;
  ttlMs: number;
  name: string | undefined;
  host: string | undefined;
  connection: ConnectionSource;
}

/** Input first: a mistake is reported before anything is read, locked or changed. */
async function checkInput(request: ExposeRequest, root: Root): Promise<Checked> {
  const typedCidr = request.action === 'invite' ? request.invite : request.cidr;
  const parsedCidr = typedCidr === undefined ? undefined : checkCidr(`--${request.action}`, typedCidr);
  const host = request.host === undefined ? undefined : checkHost(request.host);
  const ttl = request.ttl === undefined ? { ok: true as const, ms: DEFAULT_TTL_MS } : parseTtl(request.ttl);
  if (!ttl.ok) throw new UsageError(`--ttl: ${ttl.error}; nothing was changed`);
  const name = request.name === undefined ? undefined : parseServerName(request.name);
  if (name && !name.ok) throw new UsageError(`--name: ${name.error}; nothing was changed`);
  if (request.action !== 'list' && request.action !== 'invites' && !root.isSandbox && !isRoot()) {
    throw new PreflightError("knocker exposedb changes this host's PostgreSQL (its configuration, roles and pg_hba.conf): run it as root", [
      `sudo knocker exposedb --${request.action}${request.cidr ? ` ${request.cidr}` : ''}`,
    ]);
  }
  return { parsedCidr, host, ttlMs: ttl.ms, name: name?.value, connection: await connectionString(root, request.conn) };
}

/** Finds the cluster, reads what its server holds, checks it, and runs `work` with an admin link open. */
async function withCluster(env: ExposeEnvironment, checked: Checked, log: Logger, work: (ctx: Context) => Promise<number>): Promise<number> {
  const { root, io } = env;
  const { url, source, hints } = checked.connection;
  log.addSecret(url.password);
  log.info(`database ${url.host}:${url.port}/${url.database} (${source})${checked.parsedCidr ? `, ${checked.parsedCidr}` : ''}`);
  let link: AdminLink | undefined;
  try {
    const cluster = await (env.findCluster ?? findLocalCluster)(root, url, log, { source, hints });
    link = adminLink(cluster.access, log);
    const names: Names = { database: url.database, appRole: url.user, remoteRole: remoteRoleName(url.database) };
    const facts = await inspect(link, names, cluster, log);
    checkTarget(names, facts, cluster);
    const target: AllowListTarget = { database: names.database, role: names.remoteRole, ssl: facts.ssl };
    return await work({ root, io, log, cluster, link, names, facts, target, url });
  } finally {
    await link?.close();
  }
}

/** The action that changes the host, in its own module (loaded when it runs). */
async function change(request: ExposeRequest, checked: Checked, ctx: Context, run: Run): Promise<number> {
  const changeCtx = { ...ctx, run };
  switch (request.action) {
    case 'init':
      return (await import('./init.js')).init(changeCtx, { host: checked.host });
    case 'add':
      return (await import('./add.js')).add(changeCtx, request.cidr!, checked.parsedCidr!);
    case 'remove':
      return (await import('./remove.js')).remove(changeCtx, request.cidr!, checked.parsedCidr!);
    case 'renew-cert':
      return (await import('./renew-cert.js')).renewCert(changeCtx);
    case 'sync':
      return (await import('./sync.js')).sync(changeCtx);
    case 'invite':
      return (await import('./invite.js')).invite(changeCtx, { typed: request.invite!, parsed: checked.parsedCidr!, ttlMs: checked.ttlMs, name: checked.name });
    case 'revoke':
      return (await import('./revoke.js')).revoke(changeCtx, request.revoke!);
    case 'add-monitor':
      return (await import('./add-monitor.js')).addMonitor(changeCtx, request.monitor!);
    default:
      return (await import('./add-standby.js')).addStandby(changeCtx, request.standby!);
  }
}

/** Runs one exposedb action; returns the exit code (errors are thrown as KnockerErrors). */
export async function runExposeDb(request: ExposeRequest, env: ExposeEnvironment): Promise<number> {
  const { root, io } = env;
  const flags = { dryRun: Boolean(request.dryRun), json: Boolean(request.json) };
  const command = `knocker exposedb --${request.action}`;
  let checked: Checked;
  try {
    if (request.action === 'add-standby') await refuseOnAutomaticPair(root, 'knocker exposedb --add-standby', INSTEAD.standby);
    checked = await checkInput(request, root);
  } catch (error) {
    // Every --json run prints its one JSON object, whatever its exit code.
    if (flags.dryRun && flags.json) io.out(JSON.stringify(dryRunJson(command, root, { error }), null, 2));
    throw error;
  }
  if (request.action === 'list') {
    const { list } = await import('./list.js');
    return withCluster(env, checked, nullLogger(), list);
  }
  if (request.action === 'invites') {
    const { listInvitations } = await import('./invitations.js');
    return withCluster(env, checked, nullLogger(), listInvitations);
  }
  return withRun(root, { command, logFile: PATHS.exposedbLog }, flags, io, (run) =>
    withCluster(env, checked, run.log, (ctx) => change(request, checked, ctx, run)),
  );
}
