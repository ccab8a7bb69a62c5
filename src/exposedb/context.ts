// What every exposedb action starts from: the connection string (knocknoc.conf's DatabaseURL or
// --conn), the local cluster behind it, what its server holds (roles, pg_hba.conf, TLS), and the
// checks that hold for every action. Each action (init.ts, add.ts, remove.ts, list.ts,
// add-standby.ts, renew-cert.ts) receives one Context.
import os from 'node:os';
import { KnocknocConf } from '../config/knocknoc-conf.js';
import { errorMessage, KnockerError, PreflightError, UsageError } from '../errors.js';
import { knockerCommand } from '../shared/hint.js';
import type { Output } from '../shared/output.js';
import { quoted } from '../shared/printable.js';
import { type AdminLink, SqlError } from '../postgres/admin.js';
import { allowListStep, readAllowList, type AllowList, type AllowListTarget } from '../postgres/allow-list.js';
import type { AllowListSync } from '../postgres/allow-list-sync.js';
import { hbaName } from '../postgres/hba.js';
import type { LocalCluster } from '../postgres/locate.js';
import { parseDatabaseUrl, type DatabaseUrl } from '../postgres/url.js';
import { readIfExists } from '../system/files.js';
import type { Logger } from '../system/log.js';
import type { Plan, Step } from '../system/plan.js';
import { PATHS, type Root } from '../system/root.js';
import { which } from '../system/run.js';
import type { Run } from '../system/runner.js';
import { readServerFacts, type Names, type ServerFacts } from './plan.js';
import { readTlsFacts, tlsFiles, type TlsContext } from './tls.js';

export interface Context {
  root: Root;
  io: Output;
  log: Logger;
  cluster: LocalCluster;
  link: AdminLink;
  names: Names;
  facts: ServerFacts;
  target: AllowListTarget;
  url: DatabaseUrl;
}

/** A context for an action that changes the host: the run owns the lock, the log and --dry-run. */
export interface ChangeContext extends Context {
  run: Run;
}

export const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export interface ConnectionSource {
  url: DatabaseUrl;
  /** For messages: where the string came from. */
  source: string;
  hints: string[];
}

export async function connectionString(root: Root, conn: string | undefined): Promise<ConnectionSource> {
  if (conn !== undefined) {
    const parsed = parseDatabaseUrl(conn);
    if (!parsed.ok) throw new UsageError(`--conn: ${parsed.error}; nothing was changed`);
    return { url: parsed.value, source: 'the --conn connection string', hints: [] };
  }
  const file = root.path(PATHS.conf);
  const text = await readIfExists(file);
  if (text === undefined) {
    throw new PreflightError(`no connection string: ${file} does not exist`, [
      `install Knocknoc on this host first (${knockerCommand(root, 'install')}), or give the connection string with --conn URI`,
    ]);
  }
  const conf = KnocknocConf.parse(text);
  const value = conf.get('DatabaseURL');
  if (!value) throw new PreflightError(`${file} has no DatabaseURL`, ['give the connection string with --conn URI']);
  const parsed = parseDatabaseUrl(value);
  if (!parsed.ok) throw new PreflightError(`DatabaseURL in ${file}: ${parsed.error}`);
  const option = conf.get('DatabaseOption');
  const hints =
    option === '3'
      ? ['this node uses a database elsewhere (DatabaseOption = 3): run knocker exposedb on the primary instead']
      : option === '2'
        ? ['this node uses an external database (DatabaseOption = 2): allow the other nodes on that database server instead']
        : [];
  return { url: parsed.value, source: `DatabaseURL in ${file}`, hints };
}

/** The facts, or a PreflightError saying what could not be inspected. */
export async function inspect(link: AdminLink, names: Names, cluster: LocalCluster, log: Logger): Promise<ServerFacts> {
  try {
    return await readServerFacts(await link.session(), names, cluster.access.osUser);
  } catch (error) {
    if (error instanceof KnockerError) throw error;
    log.error(`inspecting ${cluster.label} failed: ${errorMessage(error)}`);
    // The admin session opens in the app's database, so a wrong name shows here.
    if (error instanceof SqlError && error.code === '3D000') {
      throw new PreflightError(`database "${names.database}" does not exist in ${cluster.label}`, ['check the database name in the connection string']);
    }
    const hints = error instanceof SqlError && /needs root/.test(error.message) ? ['run it as root (sudo)'] : [];
    throw new PreflightError(`cannot administer ${cluster.label}: ${log.scrub(errorMessage(error))}`, hints);
  }
}

export function checkTarget(names: Names, facts: ServerFacts, cluster: LocalCluster): void {
  if (!facts.appRole.exists) {
    throw new PreflightError(`role "${names.appRole}" (the connection string's user) does not exist in ${cluster.label}`, [
      "use the application's connection string (knocknoc.conf's DatabaseURL)",
    ]);
  }
  if (facts.appRole.superuser) {
    throw new PreflightError(`role "${names.appRole}" is a superuser: the other nodes would get superuser rights through it`, [
      "use the application's own connection string (knocknoc.conf's DatabaseURL), whose role owns the Knocknoc database",
    ]);
  }
  if (names.appRole === names.remoteRole) {
    throw new PreflightError(`the connection string's user is ${names.remoteRole}, the other nodes' own role`, [
      "use the application's connection string (knocknoc.conf's DatabaseURL)",
    ]);
  }
  try {
    hbaName(names.database);
  } catch (error) {
    throw new PreflightError(`database "${names.database}" cannot be named in pg_hba.conf: ${errorMessage(error)}`);
  }
  if (facts.remote && !facts.remote.managed) {
    throw new PreflightError(`a role named ${names.remoteRole} already exists, and knocker exposedb did not create it`, [
      `rename or drop that role, then run this again (exposedb never takes over a role it did not make)`,
    ]);
  }
}

export function allowListOf(facts: ServerFacts, target: AllowListTarget): AllowList {
  try {
    return readAllowList(facts.hbaText, target);
  } catch (error) {
    throw new PreflightError(`${facts.hbaFile}: ${errorMessage(error)}`);
  }
}

/** On the standby of a knocker pair the allow-list is the primary's (replicated, applied by --sync): changed there only. */
export async function refuseOnStandby(ctx: Pick<Context, 'root' | 'facts'>, option: string): Promise<void> {
  const pair = ctx.facts.inRecovery ? await pairRoles(ctx) : undefined;
  if (!pair) return;
  throw new PreflightError(`${option}: this host is the standby of ${pair.peer.host}: its allow-list is the primary's; nothing was changed`, [
    `run it on the primary (${pair.peer.host}): the standby's pg_hba.conf follows at once`,
    `to bring this host's pg_hba.conf up to date with the primary's list: ${knockerCommand(ctx.root as Root, 'exposedb --sync')}`,
  ]);
}

/** Lines in the block that exposedb did not write are never dropped silently. */
export function refuseHandEdits(allow: AllowList, facts: ServerFacts): void {
  if (allow.foreign.length === 0) return;
  throw new PreflightError(`the exposedb block in ${facts.hbaFile} holds rules exposedb did not write: ${allow.foreign.join(' | ')}`, [
    'move your own rules out of the block (between its BEGIN and END lines), then run this again',
  ]);
}

export function requireExposed(ctx: Context): void {
  if (!ctx.facts.remote) {
    throw new PreflightError(`database ${ctx.names.database} is not exposed yet: there is no role ${ctx.names.remoteRole}`, [
      `run ${knockerCommand(ctx.root, 'exposedb --init')} first`,
    ]);
  }
}

export async function requireOpenssl(): Promise<void> {
  if (!(await which('openssl'))) {
    throw new PreflightError("the openssl command is not installed: knocker makes the cluster's certificates with it", [
      'apt-get install openssl (dnf install openssl), then run this again',
    ]);
  }
}

export async function tlsContext(ctx: Context): Promise<TlsContext> {
  const session = await ctx.link.session();
  const facts = await readTlsFacts(session, ctx.facts.start.dataDirectory);
  const caName = ctx.root.isSandbox ? (ctx.cluster.address ?? ctx.url.host) : os.hostname();
  return {
    link: ctx.link,
    log: ctx.log,
    files: tlsFiles(ctx.root),
    facts,
    start: ctx.facts.start,
    probeAt: { hosts: [...new Set([ctx.url.host, ...(ctx.cluster.address ? [ctx.cluster.address] : []), '127.0.0.1', '::1'])], port: ctx.url.port },
    caName,
  };
}

/**
 * How a rewrite of the block reaches knocker.allow_list and the standby (src/standby/allow-list.ts):
 * on a primary only (a standby's list is the primary's, replicated).
 */
export async function allowListSyncOf(ctx: Pick<Context, 'root' | 'cluster' | 'log' | 'facts'>): Promise<AllowListSync | undefined> {
  if (ctx.facts.inRecovery) return undefined;
  const { allowListSync } = await import('../standby/allow-list.js');
  return allowListSync(ctx.root, ctx.cluster.access, ctx.log);
}

/** The web nodes' connection string kept by --init (its first postgres:// line), if any. */
export async function storedNodesUrl(root: Root): Promise<string | undefined> {
  const text = await readIfExists(root.path(PATHS.exposedbUrl));
  return text
    ?.split('\n')
    .find((l) => /^postgres(ql)?:\/\//.test(l.trim()))
    ?.trim();
}

export const SSL_OFF =
  "PostgreSQL has ssl off: the other nodes' connections are not encrypted (pg_hba uses host lines); run knocker exposedb --init to turn TLS on";

/** The CIDR as PostgreSQL itself normalises it (network()), which is what pg_hba.conf will hold. */
async function normaliseCidr(link: AdminLink, option: string, typed: string, parsed: string): Promise<string> {
  try {
    const result = await (await link.session()).query<{ cidr: string }>('SELECT network($1::inet)::text AS cidr', [parsed]);
    return result.rows[0]!.cidr;
  } catch (error) {
    throw new UsageError(`${option}: PostgreSQL does not accept ${quoted(typed)}: ${errorMessage(error)}; nothing was changed`);
  }
}

/** What --add and --remove start from: the range as PostgreSQL writes it, and the allow-list now. */
export async function allowListChange(ctx: Context, option: '--add' | '--remove' | '--invite', typed: string, parsed: string) {
  requireExposed(ctx);
  await refuseOnStandby(ctx, option);
  const cidr = await normaliseCidr(ctx.link, option, typed, parsed);
  const allow = allowListOf(ctx.facts, ctx.target);
  refuseHandEdits(allow, ctx.facts);
  // Said when the typed range was not a network address (10.1.2.3/24 means 10.1.2.0/24).
  const normalised = typed.includes('/') && typed.trim() !== cidr ? ` (normalised from ${typed.trim()})` : '';
  return { cidr, allow, normalised, listed: allow.cidrs.includes(cidr) };
}

/**
 * --add and --remove: the allow-list rewritten to `next` (and, for --remove, `more` steps), shown
 * for --dry-run or applied. False when nothing was applied (a dry run, or nothing to change).
 */
export async function changeAllowList(
  ctx: ChangeContext,
  change: { title: string; stepTitle: string; cidr: string; before: string[]; next: string[]; unchanged: boolean; more?: Step[] },
): Promise<boolean> {
  const { run, link, facts, target, log } = ctx;
  const steps = change.unchanged
    ? []
    : [await allowListStep(link, facts, target, change.next, change.stepTitle, undefined, await allowListSyncOf(ctx)), ...(change.more ?? [])].filter(
        (step) => step.changes,
      );
  const plan: Plan = { title: change.title, steps, warnings: [] };
  if (!change.unchanged && !run.flags.dryRun)
    log.info(`${run.spec.command} ${change.cidr}: allow-list ${change.before.join(', ') || '(empty)'} -> ${change.next.join(', ') || '(empty)'}`);
  return run.showOrApply(plan, { details: { cidr: change.cidr, allowList: { before: change.before, after: change.next } } });
}

/**
 * This host's part in a knocker standby pair as its server says now, not as the pair was made
 * (roles swap with a switchover or a promote): undefined without a pair.
 */
export async function pairRoles(
  ctx: Pick<Context, 'root' | 'facts'>,
): Promise<{ standbyHere: boolean; peer: { host: string; port: number }; line: string } | undefined> {
  const { readState } = await import('../standby/node.js');
  const state = await readState(ctx.root);
  if (!state) return undefined;
  const peer = `${state.peer.host}:${state.peer.port}`;
  return ctx.facts.inRecovery
    ? { standbyHere: true, peer: state.peer, line: `this host is the standby now; the primary is ${peer}` }
    : { standbyHere: false, peer: state.peer, line: `this host is the primary; its standby is ${peer}` };
}
