// knocker exposedb: turns a single-node install into the database of other web nodes. `--init`
// makes the local PostgreSQL listen externally and creates their login role; `--add`/`--remove`
// edit the allow-list of their addresses in pg_hba.conf; `--list` shows it. Every change goes
// through the plan model (src/system/plan.ts), under the host's lock, logged with secrets scrubbed.
import ipaddr from 'ipaddr.js';
import os from 'node:os';
import { KnocknocConf } from '../config/knocknoc-conf.js';
import { parseIp, parseNarrowCidr } from '../config/values.js';
import { errorMessage, EXIT, KnockerError, PreflightError, UsageError } from '../errors.js';
import type { Output } from '../shared/output.js';
import { knockerCommand } from '../shared/hint.js';
import { quoted } from '../shared/printable.js';
import { adminLink, SqlError, type AdminLink } from '../postgres/admin.js';
import { hbaErrors, hbaName } from '../postgres/hba.js';
import { generatePassword } from '../postgres/scram.js';
import { buildDatabaseUrl, parseDatabaseUrl, type DatabaseUrl } from '../postgres/url.js';
import { readIfExists } from '../system/files.js';
import { acquireLock } from '../system/lock.js';
import { fileLogger, nullLogger, type Logger } from '../system/log.js';
import { applyPlan, fileStep, hasChanges, type Plan } from '../system/plan.js';
import { progressPrinter } from '../system/progress.js';
import { PATHS, type Root } from '../system/root.js';
import { which } from '../system/run.js';
import { plural } from '../system/units.js';
import { isRoot } from '../system/users.js';
import { readCertificate } from '../postgres/certificates.js';
import { readAllowList, sortCidrs, type AllowList, type AllowListTarget } from './allow-list.js';
import { findLocalCluster, hostAddresses, primaryAddress, type ClusterFinder, type LocalCluster } from './locate.js';
import { checkKeyPair, chooseTls, commandLineSettings, readTlsFacts, renewStep, tlsChanges, tlsFiles, tlsStep, type TlsChoice, type TlsContext } from './tls.js';
import {
  allowListStep,
  endSessionsStep,
  grantsStep,
  listensExternally,
  listenStep,
  readServerFacts,
  remoteRoleName,
  remoteRoleStep,
  startConfig,
  type Names,
  type ServerFacts,
} from './plan.js';

export type ExposeAction = 'init' | 'add' | 'remove' | 'list' | 'renew-cert' | 'add-standby';

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
}

export interface ExposeEnvironment {
  root: Root;
  io: Output;
  /** How the local cluster is found; default: the root's private cluster, or the host's own. */
  findCluster?: ClusterFinder;
}

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function checkCidr(option: string, text: string): string {
  const parsed = parseNarrowCidr(text, 'that would let the role in from anywhere; allow each web node, or its subnet, instead');
  if (!parsed.ok) throw new UsageError(`${option}: ${parsed.error}; nothing was changed`, [], ['write an address range as ADDRESS/PREFIX, e.g. 192.168.1.0/24, or 203.0.113.7/32 for one node']);
  return parsed.value;
}

function checkHost(text: string): string {
  const value = text.trim();
  const ip = parseIp(value);
  if (ip.ok) return ip.value.toString();
  if (HOST_NAME.test(value)) return value;
  throw new UsageError(`--host: ${quoted(text)} is neither an IP address nor a host name; nothing was changed`);
}

interface ConnectionSource {
  url: DatabaseUrl;
  /** For messages: where the string came from. */
  source: string;
  hints: string[];
}

async function connectionString(root: Root, conn: string | undefined): Promise<ConnectionSource> {
  if (conn !== undefined) {
    const parsed = parseDatabaseUrl(conn);
    if (!parsed.ok) throw new UsageError(`--conn: ${parsed.error}; nothing was changed`);
    return { url: parsed.value, source: 'the --conn connection string', hints: [] };
  }
  const file = root.path(PATHS.conf);
  const text = await readIfExists(file);
  if (text === undefined) {
    throw new PreflightError(`no connection string: ${file} does not exist`, [`install Knocknoc on this host first (${knockerCommand(root, 'install')}), or give the connection string with --conn URI`]);
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
async function inspect(link: AdminLink, names: Names, cluster: LocalCluster, log: Logger): Promise<ServerFacts> {
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

function checkTarget(names: Names, facts: ServerFacts, cluster: LocalCluster): void {
  if (!facts.appRole.exists) {
    throw new PreflightError(`role "${names.appRole}" (the connection string's user) does not exist in ${cluster.label}`, ['use the application\'s connection string (knocknoc.conf\'s DatabaseURL)']);
  }
  if (facts.appRole.superuser) {
    throw new PreflightError(`role "${names.appRole}" is a superuser: the other nodes would get superuser rights through it`, [
      'use the application\'s own connection string (knocknoc.conf\'s DatabaseURL), whose role owns the Knocknoc database',
    ]);
  }
  if (names.appRole === names.remoteRole) {
    throw new PreflightError(`the connection string's user is ${names.remoteRole}, the other nodes' own role`, ['use the application\'s connection string (knocknoc.conf\'s DatabaseURL)']);
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

function allowListOf(facts: ServerFacts, target: AllowListTarget): AllowList {
  try {
    return readAllowList(facts.hbaText, target);
  } catch (error) {
    throw new PreflightError(`${facts.hbaFile}: ${errorMessage(error)}`);
  }
}

/** Lines in the block that exposedb did not write are never dropped silently. */
function refuseHandEdits(allow: AllowList, facts: ServerFacts): void {
  if (allow.foreign.length === 0) return;
  throw new PreflightError(`the exposedb block in ${facts.hbaFile} holds rules exposedb did not write: ${allow.foreign.join(' | ')}`, [
    'move your own rules out of the block (between its BEGIN and END lines), then run this again',
  ]);
}

interface Context {
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

/** The connection string kept by an earlier --init: its password (and host) are reused. */
async function storedConnection(root: Root, names: Names): Promise<{ password: string; host: string } | undefined> {
  const text = await readIfExists(root.path(PATHS.exposedbUrl));
  const line = text?.split('\n').find((l) => /^postgres(ql)?:\/\//.test(l.trim()));
  const parsed = line ? parseDatabaseUrl(line) : undefined;
  if (!parsed?.ok || parsed.value.user !== names.remoteRole || parsed.value.database !== names.database || !parsed.value.password) return undefined;
  return { password: parsed.value.password, host: parsed.value.host };
}

const SSL_OFF = 'PostgreSQL has ssl off: the other nodes\' connections are not encrypted (pg_hba uses host lines); run knocker exposedb --init to turn TLS on';

/** The addresses and names the nodes may reach this host at: the printed host first. */
function certificateHosts(root: Root, cluster: LocalCluster, printed: string): string[] {
  if (root.isSandbox) return [...new Set([printed, ...(cluster.address ? [cluster.address] : [])])];
  const name = os.hostname();
  return [...new Set([printed, ...hostAddresses(), ...(HOST_NAME.test(name) ? [name] : [])])];
}

async function tlsContext(ctx: Context): Promise<TlsContext> {
  const session = await ctx.link.session();
  const facts = await readTlsFacts(session, ctx.facts.start.dataDirectory);
  const caName = ctx.root.isSandbox ? (ctx.cluster.address ?? ctx.url.host) : os.hostname();
  return { link: ctx.link, log: ctx.log, files: tlsFiles(ctx.root), facts, start: ctx.facts.start, probeAt: { hosts: [...new Set([ctx.url.host, ...(ctx.cluster.address ? [ctx.cluster.address] : []), '127.0.0.1', '::1'])], port: ctx.url.port }, caName };
}

async function requireOpenssl(): Promise<void> {
  if (!(await which('openssl'))) {
    throw new PreflightError('the openssl command is not installed: knocker makes the cluster\'s certificates with it', ['apt-get install openssl (dnf install openssl), then run this again']);
  }
}

/** What the other nodes are told about verifying this server. */
function caLines(ctx: Context, choice: TlsChoice): string[] {
  const caFile = ctx.root.path(PATHS.clusterCaCert);
  if (choice.kind === 'knocker') {
    return [
      `The nodes verify this server (sslmode=verify-full) with the cluster's CA certificate, kept in ${caFile}.`,
      'Give each node a copy and install it with: knocker install --database-option 3 --database-ca FILE',
    ];
  }
  if ('file' in choice.nodeCa) {
    return [
      `The nodes verify this server (sslmode=verify-full) with its own self-signed certificate, ${choice.nodeCa.file}.`,
      'Give each node a copy and install it with: knocker install --database-option 3 --database-ca FILE',
    ];
  }
  return [
    `The nodes verify this server (sslmode=verify-full) with the CA that issued its certificate (${choice.nodeCa.unknown}).`,
    'Give each node that CA\'s certificate and install it with: knocker install --database-option 3 --database-ca FILE',
  ];
}

async function init(ctx: Context, request: ExposeRequest): Promise<number> {
  const { root, io, log, cluster, link, names, facts, target } = ctx;
  const allow = allowListOf(facts, target);
  refuseHandEdits(allow, facts);
  if (!listensExternally(facts.listen.setting, cluster)) {
    if (facts.listen.source === 'command line') {
      throw new PreflightError(`listen_addresses of ${cluster.label} is set on the server's command line ('${facts.listen.setting}'), which ALTER SYSTEM cannot override`, [
        'remove -c listen_addresses (or -i/-h) from how the server is started (a service unit, Patroni, pg_ctl -o), or make it listen externally there, then run this again',
      ]);
    }
    // The restart --init needs must not be the one that finds the configuration broken.
    const config = await startConfig(facts.start, log);
    if (!config.ok) {
      throw new PreflightError(`PostgreSQL would not start again with its configuration files, so exposedb will not restart it: ${config.problem}`, [
        `fix ${facts.start.configFile} (or the file named above), then run this again`,
      ]);
    }
  }
  const stored = await storedConnection(root, names);
  const password = stored?.password ?? generatePassword();
  log.addSecret(password);
  const host = request.host ?? stored?.host ?? cluster.address ?? primaryAddress();
  if (!host) {
    throw new PreflightError('cannot tell the address the other nodes reach this host at (it has no address but loopback)', ['give it with --host ADDR']);
  }
  await requireOpenssl();
  const tls = await tlsContext(ctx);
  const choice = await chooseTls(tls.facts, tls.files, certificateHosts(root, cluster, host));
  const blocked = commandLineSettings(tls.facts);
  if (tlsChanges(choice) && blocked.length > 0) {
    throw new PreflightError(`${blocked.join(', ')} of ${cluster.label} ${blocked.length === 1 ? 'is' : 'are'} set on the server's command line, which ALTER SYSTEM cannot override`, [
      'remove them from how the server is started (a service unit, pg_ctl -o), then run this again',
    ]);
  }
  if (choice.kind === 'operator' && choice.turnOn) {
    // ssl on must not be what finds the operator's files unusable (the next start would fail).
    await checkKeyPair(choice.certFile, tls.facts.keyFile, facts.start.osUser, log).catch((error: Error) => {
      throw new PreflightError(`PostgreSQL would not start again with ssl on: ${error.message}`, [`fix ssl_cert_file / ssl_key_file of ${cluster.label}, then run this again`]);
    });
  }
  // verify-full: the nodes check the certificate's CA and that it names this host.
  const printed = buildDatabaseUrl({ host, port: ctx.url.port, user: names.remoteRole, password, database: names.database, params: { sslmode: 'verify-full' } });
  const urlFile = root.path(PATHS.exposedbUrl);
  const plan: Plan = {
    title: `Expose database ${names.database}`,
    steps: [
      // The string (with its password) is kept before the role is given the password: a run cut
      // off in between gives the same password again next time.
      await fileStep({
        file: urlFile,
        shownAs: urlFile,
        content: [
          '# The connection string of the other Knocknoc web nodes, written by knocker exposedb --init.',
          `# It holds the password of role ${names.remoteRole}: keep this file secret (root only, mode 0600).`,
          printed,
          '',
        ].join('\n'),
        mode: 0o600,
        redact: (t) => log.scrub(t),
      }),
      remoteRoleStep(link, names, facts, password),
      grantsStep(link, names, facts),
      tlsStep(tls, choice, () => {}),
      // hostssl lines only: a node's connection without TLS is refused.
      await allowListStep(link, facts, { ...target, ssl: true }, allow.cidrs, `pg_hba.conf: allow-list block for ${names.remoteRole} (TLS and SCRAM only, refused from unlisted addresses)`),
      listenStep(link, cluster, facts, log),
    ],
    warnings: [],
  };
  if (choice.kind === 'operator' && choice.uncovered.length > 0) {
    plan.warnings.push(`the certificate in place (${choice.certFile}) does not name ${choice.uncovered.join(', ')}: the nodes' verify-full connections will fail until it does (or give --host a name it covers)`);
  }
  if (!listensExternally(facts.listen.setting, cluster) && facts.listen.pendingOthers.length > 0) {
    plan.warnings.push(`the restart also applies settings changed earlier that wait for one: ${facts.listen.pendingOthers.join(', ')}`);
  }
  // stdout carries the result alone, the connection string: `URL=$(knocker exposedb --init)`
  // works, and a re-run prints exactly the same. Progress and notes go to stderr.
  const changing = hasChanges(plan);
  io.err(
    changing
      ? `Exposing database ${names.database} of ${cluster.label} (PostgreSQL ${facts.serverVersion}) to other web nodes:`
      : `Nothing to change: database ${names.database} of ${cluster.label} is already exposed.`,
  );
  for (const warning of plan.warnings) io.err(`warning: ${warning}`);
  if (choice.kind === 'knocker' && choice.replacing && choice.replacing !== 'none') {
    io.err(`note: PostgreSQL presents ${choice.replacing}, which verifies nothing: it is replaced by a certificate from the cluster's CA`);
  }
  if (changing) await applyPlan(plan, { log, onEvent: progressPrinter(plan, io.err) });
  io.err(
    allow.cidrs.length === 0
      ? `No web node is allowed yet: allow each one with ${knockerCommand(root, 'exposedb --add <its IP>/32')}.`
      : `Allowed: ${allow.cidrs.join(', ')} (${knockerCommand(root, 'exposedb --list')}).`,
  );
  for (const line of caLines(ctx, choice)) io.err(line);
  const ca = choice.kind === 'knocker' ? await readIfExists(root.path(PATHS.clusterCaCert)) : 'file' in choice.nodeCa ? choice.nodeCa.pem : undefined;
  if (ca) io.err(ca.trimEnd());
  const pair = await nodesMultiHost(root, { host, port: ctx.url.port, user: names.remoteRole, password, database: names.database });
  if (pair) {
    // Once a standby exists the nodes list both hosts and keep the one that takes writes; the
    // CA is the copy knocker install --database-ca keeps on each node.
    io.err(`This primary has a standby (${pair.standby}): the web nodes list both and use whichever takes writes.`);
    io.err(`Connection string for the other web nodes (the single-host one is kept in ${urlFile}); install them with database option 3 and --database-ca:`);
    io.out(pair.url);
    return EXIT.ok;
  }
  io.err(`Connection string for the other web nodes (kept in ${urlFile}); install them with database option 3:`);
  io.out(printed);
  return EXIT.ok;
}

/**
 * The web nodes' connection string once this primary has a standby (knocker standby's state file):
 * libpq's multi-host form, this host first, target_session_attrs=read-write, verify-full with the
 * nodes' copy of the CA. Undefined without a standby.
 */
async function nodesMultiHost(
  root: Root,
  self: { host: string; port: number; user: string; password: string; database: string },
): Promise<{ url: string; standby: string } | undefined> {
  const { readState } = await import('../standby/node.js');
  const state = await readState(root);
  if (!state || (state.peer.host === self.host && state.peer.port === self.port)) return undefined;
  const { multiHostUrl } = await import('../standby/conninfo.js');
  const url = multiHostUrl({
    hosts: [{ host: self.host, port: self.port }, state.peer],
    user: self.user,
    password: self.password,
    database: self.database,
    caFile: root.path(PATHS.databaseCa),
  });
  return { url, standby: `${state.peer.host}:${state.peer.port}` };
}

async function renewCert(ctx: Context): Promise<number> {
  const { root, io, log, cluster } = ctx;
  requireExposed(ctx);
  await requireOpenssl();
  const tls = await tlsContext(ctx);
  const caText = await readIfExists(tls.files.ca.certFile);
  const current = tls.facts.certFile === tls.files.cert ? await readIfExists(tls.files.cert) : undefined;
  if (!caText || !current || !(await readIfExists(tls.files.ca.keyFile))) {
    throw new PreflightError(`${cluster.label} does not present a certificate from the cluster's CA (it uses ${tls.facts.ssl ? tls.facts.certFile : 'no TLS'})`, [
      tls.facts.ssl && tls.facts.certFile !== tls.files.cert ? 'that certificate is not knocker\'s: renew it where it was issued' : `run ${knockerCommand(root, 'exposedb --init')} first`,
    ]);
  }
  const info = readCertificate(current, tls.files.cert);
  const hosts = info.altNames.map((n) => n.replace(/^(IP Address|DNS):/, ''));
  const plan: Plan = { title: 'Renew the server certificate', steps: [renewStep(tls, info, hosts, () => {})], warnings: [] };
  io.err(`Renewing the certificate of ${cluster.label} for ${hosts.join(', ')} (the current one expires ${info.notAfter.toISOString().slice(0, 10)}):`);
  await applyPlan(plan, { log, onEvent: progressPrinter(plan, io.err) });
  const renewed = readCertificate(await readIfExists(tls.files.cert) ?? '', tls.files.cert);
  log.info(`exposedb --renew-cert: ${info.fingerprint256} -> ${renewed.fingerprint256}`);
  io.out(`Renewed: the server certificate for ${hosts.join(', ')} now expires ${renewed.notAfter.toISOString().slice(0, 10)} (same CA, ${root.path(PATHS.clusterCaCert)}; reloaded, no restart; the nodes stay connected).`);
  return EXIT.ok;
}

/** The CIDR as PostgreSQL itself normalises it (network()), which is what pg_hba.conf will hold. */
async function normaliseCidr(link: AdminLink, option: string, typed: string, parsed: string): Promise<string> {
  try {
    const result = await (await link.session()).query<{ cidr: string }>('SELECT network($1::inet)::text AS cidr', [parsed]);
    return result.rows[0]!.cidr;
  } catch (error) {
    throw new UsageError(`${option}: PostgreSQL does not accept ${quoted(typed)}: ${errorMessage(error)}; nothing was changed`);
  }
}

function requireExposed(ctx: Context): void {
  if (!ctx.facts.remote) {
    throw new PreflightError(`database ${ctx.names.database} is not exposed yet: there is no role ${ctx.names.remoteRole}`, [`run ${knockerCommand(ctx.root, 'exposedb --init')} first`]);
  }
}

/** The role's sessions still open from a range no longer allowed. */
async function openSessions(link: AdminLink, role: string, cidr: string, stillAllowed: string[]): Promise<number> {
  const result = await (await link.session()).query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND client_addr <<= $2::inet AND NOT (client_addr <<= ANY($3::inet[]))`,
    [role, cidr, stillAllowed],
  );
  return result.rows[0]?.n ?? 0;
}

/** Whether the range `outer` holds all of `inner` (both normalised CIDRs). */
function contains(outer: string, inner: string): boolean {
  const [outerAddress, outerBits] = ipaddr.parseCIDR(outer);
  const [innerAddress, innerBits] = ipaddr.parseCIDR(inner);
  return outerAddress.kind() === innerAddress.kind() && innerBits >= outerBits && innerAddress.match(outerAddress, outerBits);
}

/** What --add tells when this primary has a standby: the nodes' string, and (`added`) that its pg_hba.conf is its own. */
async function standbyNotes(ctx: Context, added?: string): Promise<void> {
  const { readState } = await import('../standby/node.js');
  const pair = await readState(ctx.root);
  if (!pair) return;
  const peer = `${pair.peer.host}:${pair.peer.port}`;
  if (added) {
    ctx.io.err(`warning: the standby ${peer} keeps the allow-list its clone copied: ${added} is not allowed there, and cannot log in to it after a failover until it is`);
    // The standby's pg_hba.conf is a file on its host: the same --add there, at its own cluster.
    const conn = buildDatabaseUrl({ host: pair.peer.host, port: pair.peer.port, user: ctx.url.user, database: ctx.url.database });
    ctx.io.err(`hint: on the standby's host (${pair.peer.host}) run: knocker exposedb --conn ${conn} --add ${added}`);
  }
  ctx.io.err(`note: this primary has a standby (${peer}): a web node lists both hosts; knocker exposedb${ctx.root.isSandbox ? ` --root ${ctx.root.dir}` : ''} --init prints that connection string (and changes nothing)`);
}

async function change(ctx: Context, action: 'add' | 'remove', typed: string, parsed: string): Promise<number> {
  const { io, log, link, names, facts, target } = ctx;
  requireExposed(ctx);
  const option = `--${action}`;
  const cidr = await normaliseCidr(link, option, typed, parsed);
  const allow = allowListOf(facts, target);
  refuseHandEdits(allow, facts);
  // Say so when the typed range was not a network address (10.1.2.3/24 means 10.1.2.0/24).
  const normalised = typed.includes('/') && typed.trim() !== cidr ? ` (normalised from ${typed.trim()})` : '';
  const listed = allow.cidrs.includes(cidr);
  const next = action === 'add' ? (listed ? allow.cidrs : sortCidrs([...allow.cidrs, cidr])) : allow.cidrs.filter((c) => c !== cidr);
  // The same list again is no change, once PostgreSQL has loaded it and (for --remove) no session
  // from the range is left: a run killed half-way is finished, never called done.
  const leftOpen = action === 'remove' && !listed ? await openSessions(link, names.remoteRole, cidr, next) : 0;
  if (next.length === allow.cidrs.length && facts.hbaLoaded && leftOpen === 0) {
    if (action === 'add') {
      io.out(`Unchanged: ${cidr}${normalised} is already allowed.`);
      await standbyNotes(ctx);
    } else {
      const within = allow.cidrs.find((c) => contains(c, cidr));
      io.out(`Unchanged: ${cidr}${normalised} is not on the allow-list${within ? ` (it lies within ${within}, which stays allowed)` : ''}.`);
    }
    return EXIT.ok;
  }
  let ended = 0;
  const plan: Plan = {
    title: `${action === 'add' ? 'Allow' : 'Disallow'} ${cidr}`,
    steps: [
      await allowListStep(link, facts, target, next, `pg_hba.conf: ${action === 'add' ? 'allow' : 'stop allowing'} ${names.remoteRole} from ${cidr}`),
      ...(action === 'remove' ? [endSessionsStep(link, names.remoteRole, cidr, next, (n) => (ended = n))] : []),
    ].filter((step) => step.changes),
    warnings: [],
  };
  log.info(`exposedb ${option} ${cidr}: allow-list ${allow.cidrs.join(', ') || '(empty)'} -> ${next.join(', ') || '(empty)'}`);
  await applyPlan(plan, { log });
  if (action === 'add') {
    if (!facts.ssl) io.err(`warning: ${SSL_OFF}`);
    io.out(`Allowed ${cidr}${normalised}: ${names.remoteRole} may log in to ${names.database} from it (pg_hba.conf checked and reloaded, no restart).`);
    await standbyNotes(ctx, cidr);
  } else {
    io.out(
      `Removed ${cidr}${normalised}: ${names.remoteRole} can no longer log in from it (pg_hba.conf checked and reloaded, no restart); ` +
        `ended ${plural(ended, 'open session')} from it.`,
    );
  }
  return EXIT.ok;
}

async function list(ctx: Context): Promise<number> {
  const { io, link, facts, target, names, root } = ctx;
  const allow = allowListOf(facts, target);
  for (const cidr of allow.cidrs) io.out(cidr);
  if (!facts.remote) io.err(`note: database ${names.database} is not exposed yet (${knockerCommand(root, 'exposedb --init')})`);
  else if (allow.cidrs.length === 0) io.err(`note: no address is allowed yet (${knockerCommand(root, 'exposedb --add <CIDR>')})`);
  if (allow.foreign.length > 0) {
    io.err(`warning: the exposedb block in ${facts.hbaFile} was edited by hand; it holds rules exposedb did not write (not listed above):`);
    for (const line of allow.foreign) io.err(`  ${line}`);
    io.err('  --add and --remove will not change the block until they are moved out of it');
  } else if (allow.edited) {
    io.err(`warning: the exposedb block in ${facts.hbaFile} was edited by hand; the next --add or --remove rewrites it in exposedb's own form`);
  }
  const errors = await hbaErrors(await link.session());
  if (errors.length > 0) {
    io.err(`warning: ${facts.hbaFile} has errors, so PostgreSQL keeps its previous rules until they are fixed:`);
    for (const e of errors) io.err(`  line ${e.line}: ${e.error}`);
  }
  return EXIT.ok;
}

/** ADDR or ADDR:PORT ([v6]:PORT); the port defaults to the primary's. */
function checkStandby(text: string, defaultPort: number): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text.trim()) ?? /^([^:]+)(?::(\d+))?$/.exec(text.trim()) ?? [text, text.trim(), undefined];
  const ip = parseIp(m[1] ?? '');
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (!ip.ok || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`--add-standby: ${quoted(text)} is not ADDRESS or ADDRESS:PORT of the standby's host; nothing was changed`);
  }
  return { host: ip.value.toString(), port };
}

/** --add-standby: what replication needs on this primary, and the bundle file for the standby's host. */
async function addStandby(ctx: Context, typed: string): Promise<number> {
  const { root, io, log, cluster, link, names, facts } = ctx;
  requireExposed(ctx);
  const standby = checkStandby(typed, ctx.url.port);
  const stored = await readIfExists(root.path(PATHS.exposedbUrl));
  const nodesUrl = stored?.split('\n').find((l) => /^postgres(ql)?:\/\//.test(l.trim()))?.trim();
  const { planAddStandby } = await import('../standby/primary.js');
  const prepared = await planAddStandby({ root, log, cluster, link, hbaFile: facts.hbaFile, database: names.database, tls: facts.ssl, standby, nodesUrl });
  const plan: Plan = { title: `Replication to a standby at ${standby.host}:${standby.port}`, steps: prepared.steps, warnings: prepared.warnings };
  try {
    io.err(`Preparing ${cluster.label} to feed a standby at ${standby.host}:${standby.port}:`);
    for (const warning of plan.warnings) io.err(`warning: ${warning}`);
    await applyPlan(plan, { log, onEvent: progressPrinter(plan, io.err) });
  } finally {
    await prepared.close();
  }
  io.err(`Copy this file (mode 0600: it holds the replication password and the standby's private key) to the standby's host, then run there:`);
  io.err(`  knocker standby init --bundle FILE`);
  io.out(prepared.bundle);
  return EXIT.ok;
}

/** Runs one exposedb action; returns the exit code (errors are thrown as KnockerErrors). */
export async function runExposeDb(request: ExposeRequest, env: ExposeEnvironment): Promise<number> {
  const { root, io } = env;
  // Input first: a mistake is reported before anything is read, locked or changed.
  const option = `--${request.action}`;
  const parsedCidr = request.cidr === undefined ? undefined : checkCidr(option, request.cidr);
  const host = request.host === undefined ? undefined : checkHost(request.host);
  const readOnly = request.action === 'list';
  if (!readOnly && !root.isSandbox && !isRoot()) {
    throw new PreflightError('knocker exposedb changes this host\'s PostgreSQL (its configuration, roles and pg_hba.conf): run it as root', [
      `sudo knocker exposedb --${request.action}${request.cidr ? ` ${request.cidr}` : ''}`,
    ]);
  }
  const { url, source, hints } = await connectionString(root, request.conn);
  const log = readOnly ? nullLogger() : fileLogger(root.path(PATHS.exposedbLog));
  log.addSecret(url.password);
  const lock = readOnly ? undefined : await acquireLock(root.path(PATHS.installLock), 'knocker exposedb');
  let link: AdminLink | undefined;
  try {
    log.info(`exposedb ${option}${parsedCidr ? ` ${parsedCidr}` : ''}: root ${root.dir}, database ${url.host}:${url.port}/${url.database} (${source})`);
    const cluster = await (env.findCluster ?? findLocalCluster)(root, url, log, { source, hints });
    link = adminLink(cluster.access, log);
    const names: Names = { database: url.database, appRole: url.user, remoteRole: remoteRoleName(url.database) };
    const facts = await inspect(link, names, cluster, log);
    checkTarget(names, facts, cluster);
    const target: AllowListTarget = { database: names.database, role: names.remoteRole, ssl: facts.ssl };
    const ctx: Context = { root, io, log, cluster, link, names, facts, target, url };
    if (request.action === 'init') return await init(ctx, { ...request, host });
    if (request.action === 'list') return await list(ctx);
    if (request.action === 'renew-cert') return await renewCert(ctx);
    if (request.action === 'add-standby') return await addStandby(ctx, request.standby!);
    return await change(ctx, request.action, request.cidr!, parsedCidr!);
  } catch (error) {
    log.error(`exposedb ${option} failed: ${errorMessage(error)}`);
    throw error;
  } finally {
    await link?.close();
    await lock?.release();
  }
}
