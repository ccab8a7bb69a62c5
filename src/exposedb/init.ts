// knocker exposedb --init: the local PostgreSQL listens where the other web nodes reach it, with
// TLS from the cluster's CA, a login role for them and the allow-list block in pg_hba.conf. stdout
// carries the result alone, the connection string: `URL=$(knocker exposedb --init)` works, and a
// re-run prints exactly the same. Progress and notes go to stderr.
import os from 'node:os';
import { EXIT, PreflightError } from '../errors.js';
import { knockerCommand } from '../shared/hint.js';
import { allowListStep } from '../postgres/allow-list.js';
import { listensExternally, listenStep, startConfig } from '../postgres/listen.js';
import { primaryAddress, hostAddresses, type LocalCluster } from '../postgres/locate.js';
import { generatePassword } from '../postgres/scram.js';
import { buildDatabaseUrl, parseDatabaseUrl, redactUrl } from '../postgres/url.js';
import { readIfExists } from '../system/files.js';
import { fileStep, hasChanges, type Plan } from '../system/plan.js';
import { PATHS, type Root } from '../system/root.js';
import {
  allowListOf,
  allowListSyncOf,
  HOST_NAME,
  pairRoles,
  refuseHandEdits,
  requireOpenssl,
  storedNodesUrl,
  tlsContext,
  type ChangeContext,
  type Context,
} from './context.js';
import { grantsStep, remoteRoleStep, type Names } from './plan.js';
import { checkKeyPair, chooseTls, commandLineSettings, tlsChanges, tlsStep, type TlsChoice } from './tls.js';

/** The connection string kept by an earlier --init: its password (and host) are reused. */
async function storedConnection(root: Root, names: Names): Promise<{ password: string; host: string } | undefined> {
  const line = await storedNodesUrl(root);
  const parsed = line ? parseDatabaseUrl(line) : undefined;
  if (!parsed?.ok || parsed.value.user !== names.remoteRole || parsed.value.database !== names.database || !parsed.value.password) return undefined;
  return { password: parsed.value.password, host: parsed.value.host };
}

/** The addresses and names the nodes may reach this host at: the printed host first. */
function certificateHosts(root: Root, cluster: LocalCluster, printed: string): string[] {
  if (root.isSandbox) return [...new Set([printed, ...(cluster.address ? [cluster.address] : [])])];
  const name = os.hostname();
  return [...new Set([printed, ...hostAddresses(), ...(HOST_NAME.test(name) ? [name] : [])])];
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
    "Give each node that CA's certificate and install it with: knocker install --database-option 3 --database-ca FILE",
  ];
}

export async function init(ctx: ChangeContext, request: { host?: string }): Promise<number> {
  const { root, io, log, cluster, link, names, facts, target, run } = ctx;
  const allow = allowListOf(facts, target);
  refuseHandEdits(allow, facts);
  if (!listensExternally(facts.listen.setting, cluster)) {
    if (facts.listen.source === 'command line') {
      throw new PreflightError(
        `listen_addresses of ${cluster.label} is set on the server's command line ('${facts.listen.setting}'), which ALTER SYSTEM cannot override`,
        [
          'remove -c listen_addresses (or -i/-h) from how the server is started (a service unit, Patroni, pg_ctl -o), or make it listen externally there, then run this again',
        ],
      );
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
    throw new PreflightError(
      `${blocked.join(', ')} of ${cluster.label} ${blocked.length === 1 ? 'is' : 'are'} set on the server's command line, which ALTER SYSTEM cannot override`,
      ['remove them from how the server is started (a service unit, pg_ctl -o), then run this again'],
    );
  }
  if (choice.kind === 'operator' && choice.turnOn) {
    // ssl on must not be what finds the operator's files unusable (the next start would fail).
    await checkKeyPair(choice.certFile, tls.facts.keyFile, facts.start.osUser, log).catch((error: Error) => {
      throw new PreflightError(`PostgreSQL would not start again with ssl on: ${error.message}`, [
        `fix ssl_cert_file / ssl_key_file of ${cluster.label}, then run this again`,
      ]);
    });
  }
  // verify-full: the nodes check the certificate's CA and that it names this host.
  const printed = buildDatabaseUrl({
    host,
    port: ctx.url.port,
    user: names.remoteRole,
    password,
    database: names.database,
    params: { sslmode: 'verify-full' },
  });
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
      await allowListStep(
        link,
        facts,
        { ...target, ssl: true },
        allow.cidrs,
        `pg_hba.conf: allow-list block for ${names.remoteRole} (TLS and SCRAM only, refused from unlisted addresses)`,
        undefined,
        await allowListSyncOf(ctx),
      ),
      listenStep(link, cluster, facts, log),
    ],
    warnings: [],
  };
  if (choice.kind === 'operator' && choice.uncovered.length > 0) {
    plan.warnings.push(
      `the certificate in place (${choice.certFile}) does not name ${choice.uncovered.join(', ')}: the nodes' verify-full connections will fail until it does (or give --host a name it covers)`,
    );
  }
  if (!listensExternally(facts.listen.setting, cluster) && facts.listen.pendingOthers.length > 0) {
    plan.warnings.push(`the restart also applies settings changed earlier that wait for one: ${facts.listen.pendingOthers.join(', ')}`);
  }
  const changing = hasChanges(plan);
  const notes: string[] = [];
  if (!run.flags.dryRun) {
    notes.push(
      changing
        ? `Exposing database ${names.database} of ${cluster.label} (PostgreSQL ${facts.serverVersion}) to other web nodes:`
        : `Nothing to change: database ${names.database} of ${cluster.label} is already exposed.`,
    );
  }
  if (choice.kind === 'knocker' && choice.replacing && choice.replacing !== 'none') {
    notes.push(`note: PostgreSQL presents ${choice.replacing}, which verifies nothing: it is replaced by a certificate from the cluster's CA`);
  }
  if (run.flags.dryRun || changing) {
    const details = {
      database: names.database,
      cluster: cluster.label,
      serverVersion: facts.serverVersion,
      connectionString: redactUrl(printed),
      allowed: allow.cidrs,
      tls: choice.kind,
    };
    await run.showOrApply(plan, { notes, details });
    if (run.flags.dryRun) return EXIT.ok;
  } else {
    for (const note of notes) io.err(note);
    for (const warning of plan.warnings) io.err(`warning: ${warning}`);
  }
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
    const roles = await pairRoles(ctx);
    io.err(
      `${roles?.standbyHere ? `This host is the standby now (the primary is ${pair.standby})` : `This primary has a standby (${pair.standby})`}: the web nodes list both and use whichever takes writes.`,
    );
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
export async function nodesMultiHost(
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
