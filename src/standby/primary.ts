// On the primary (`knocker exposedb --add-standby ADDR[:PORT]`): what replication needs, as plan
// steps. The replication role (its SCRAM verifier only is sent), its grants for pg_rewind, promote
// and CHECKPOINT, knocker's fence function, a bound on the WAL a slot may hold, the replication
// lines for the standby's address in a managed block of pg_hba.conf, and a bundle file for the
// standby's host: the password, the cluster's CA and a server certificate for the standby from it.
import fs from 'node:fs/promises';
import path from 'node:path';
import { PreflightError } from '../errors.js';
import { adminLink, executeQuoted, type AdminLink, type AdminSession } from '../postgres/admin.js';
import { readManagedBlock, reloadConfig, replaceHbaFile, withManagedBlock } from '../postgres/hba.js';
import { ensureAllowListSync } from '../postgres/allow-list-sync.js';
import { generatePassword, scramMatches, scramVerifier } from '../postgres/scram.js';
import type { LocalCluster } from '../postgres/locate.js';
import { findSystemClusters } from '../postgres/system-cluster.js';
import { readIfExists, writeFileAtomic } from '../system/files.js';
import type { Logger } from '../system/log.js';
import { fileStep, type Step } from '../system/plan.js';
import { PATHS, type Root } from '../system/root.js';
import { lookupUser } from '../system/users.js';
import { writeBundleWithCertificate } from './bundle.js';
import { passfileText, passwordFrom } from './conninfo.js';
import { bootFenceStep } from './boot-unit.js';
import { hbaLinesFor, pairNodes, type PairNodes } from './hba-lines.js';
import { followPairSteps } from './local-node.js';
import { readState, type Endpoint, type PairState } from './node.js';
import { bundleFile, FENCE_SCHEMA, REPLICATION_ROLE, ROLE_COMMENT, STANDBY_BLOCK, STANDBY_PATHS } from './paths.js';

/** What the standby's host is handed (one file, 0600: it holds the password and a private key). */
export interface StandbyBundle {
  version: 1;
  primary: Endpoint;
  standby: Endpoint;
  database: string;
  password: string;
  ca: string;
  certificate: string;
  key: string;
  /** The web nodes' connection string from exposedb --init (for the printed multi-host URL). */
  nodesUrl: string | undefined;
}

export interface PrimaryFacts {
  role: { verifier: string | null; managed: boolean } | undefined;
  walLevel: string;
  maxWalSenders: number;
  walSendersInUse: number;
  fullPageWrites: boolean;
  maxSlotWalKeepSize: string;
  checksums: boolean;
  walLogHints: boolean;
  fenceExists: boolean;
  slots: Array<{ slot_name: string; active: boolean; active_pid: number | null }>;
}

export async function readPrimaryFacts(session: AdminSession): Promise<PrimaryFacts> {
  const role = (
    await session.query<{ rolpassword: string | null; comment: string | null }>(
      `SELECT rolpassword, shobj_description(oid, 'pg_authid') AS comment FROM pg_authid WHERE rolname = $1`,
      [REPLICATION_ROLE],
    )
  ).rows[0];
  const s = (
    await session.query<{ wal_level: string; senders: string; fpw: string; keep: string; checksums: string; hints: string; in_use: number; fence: boolean }>(
      `SELECT current_setting('wal_level') AS wal_level, current_setting('max_wal_senders') AS senders,
              current_setting('full_page_writes') AS fpw, current_setting('max_slot_wal_keep_size') AS keep,
              current_setting('data_checksums') AS checksums, current_setting('wal_log_hints') AS hints,
              (SELECT count(*)::int FROM pg_stat_replication) AS in_use,
              EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 AND p.proname = 'set_fence') AS fence`,
      [FENCE_SCHEMA],
    )
  ).rows[0]!;
  const slots = (
    await session.query<{ slot_name: string; active: boolean; active_pid: number | null }>('SELECT slot_name, active, active_pid FROM pg_replication_slots')
  ).rows;
  return {
    role: role ? { verifier: role.rolpassword, managed: role.comment === ROLE_COMMENT } : undefined,
    walLevel: s.wal_level,
    maxWalSenders: Number(s.senders),
    walSendersInUse: s.in_use,
    fullPageWrites: s.fpw === 'on',
    maxSlotWalKeepSize: s.keep,
    checksums: s.checksums === 'on',
    walLogHints: s.hints === 'on',
    fenceExists: s.fence,
    slots,
  };
}

/** The reasons the primary cannot feed a standby (empty: it can). */
export function replicationProblems(facts: PrimaryFacts): string[] {
  const problems: string[] = [];
  if (!['replica', 'logical'].includes(facts.walLevel))
    problems.push(`wal_level is ${facts.walLevel}: replication needs replica (ALTER SYSTEM SET wal_level = replica, then a restart)`);
  if (facts.maxWalSenders - facts.walSendersInUse < 2)
    problems.push(`max_wal_senders ${facts.maxWalSenders} with ${facts.walSendersInUse} in use: a clone needs 2 free`);
  if (!facts.fullPageWrites) problems.push('full_page_writes is off: pg_rewind cannot use this server as its source (ALTER SYSTEM SET full_page_writes = on)');
  if (facts.role && !facts.role.managed) problems.push(`a role named ${REPLICATION_ROLE} exists and knocker did not create it: rename or drop it`);
  return problems;
}

/** Whether a failed primary can later be rewound (pg_rewind needs one of them); else it is re-cloned. */
export function rewindWarning(facts: Pick<PrimaryFacts, 'checksums' | 'walLogHints'>): string | undefined {
  if (facts.checksums || facts.walLogHints) return undefined;
  return 'this cluster has neither data checksums nor wal_log_hints: after a failover the old primary cannot be rewound and is re-cloned instead; to allow pg_rewind run ALTER SYSTEM SET wal_log_hints = on and restart PostgreSQL (knocker service restart postgres)';
}

const GRANTS = [
  'GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO %I',
  'GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO %I',
  'GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO %I',
  'GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO %I',
  'GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO %I',
  'GRANT pg_checkpoint TO %I',
  'GRANT pg_monitor TO %I',
];

/**
 * The fence (see peer.ts fencePeer): a function owned by the superuser, callable by the replication
 * role only, that turns default_transaction_read_only on (or off) in the postgresql.auto.conf of the
 * server it runs on, reloads, and ends the Knocknoc database's sessions. That file is the server's
 * own: not WAL, so it never replicates (ALTER DATABASE … SET did, and fenced the new primary too);
 * a clone or a rewind that copies it is cleaned by applyNodeConfig. ALTER SYSTEM cannot run inside a
 * function, so the function rewrites the file itself (one line per row, CSV with delimiter and quote
 * characters that never occur in it, so nothing is escaped).
 */
async function createFence(session: AdminSession, database: string): Promise<void> {
  const { literal } = (await session.query<{ literal: string }>('SELECT quote_literal($1) AS literal', [database])).rows[0]!;
  const body = `DECLARE
  kept text[];
  ended integer := 0;
BEGIN
  SELECT coalesce(array_agg(l ORDER BY n), '{}') INTO kept
    FROM regexp_split_to_table(pg_read_file('postgresql.auto.conf'), E'\\n') WITH ORDINALITY AS t(l, n)
   WHERE l <> '' AND l !~* '^\\s*default_transaction_read_only\\s*=';
  IF fenced THEN
    kept := kept || 'default_transaction_read_only = ''on''  # knocker standby: fenced, another host is the primary'::text;
  END IF;
  EXECUTE format('COPY (SELECT unnest(%L::text[])) TO %L WITH (FORMAT csv, DELIMITER %L, QUOTE %L)',
                 kept, current_setting('data_directory') || '/postgresql.auto.conf', chr(2), chr(1));
  PERFORM pg_reload_conf();
  IF fenced THEN
    SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) INTO ended FROM pg_stat_activity
     WHERE datname = ${literal} AND backend_type = 'client backend' AND pid <> pg_backend_pid();
  END IF;
  RETURN ended;
END`;
  await executeQuoted(session, 'CREATE SCHEMA IF NOT EXISTS %I', [FENCE_SCHEMA]);
  await executeQuoted(session, 'REVOKE ALL ON SCHEMA %I FROM PUBLIC', [FENCE_SCHEMA]);
  // The fence of earlier versions (ALTER DATABASE, which replicated).
  await executeQuoted(session, 'DROP FUNCTION IF EXISTS %I.fence()', [FENCE_SCHEMA]);
  await executeQuoted(
    session,
    `CREATE OR REPLACE FUNCTION %I.set_fence(fenced boolean) RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS %L`,
    [FENCE_SCHEMA, body],
  );
  await executeQuoted(session, 'REVOKE ALL ON FUNCTION %I.set_fence(boolean) FROM PUBLIC', [FENCE_SCHEMA]);
  await executeQuoted(session, 'GRANT USAGE ON SCHEMA %I TO %I', [FENCE_SCHEMA, REPLICATION_ROLE]);
  await executeQuoted(session, 'GRANT EXECUTE ON FUNCTION %I.set_fence(boolean) TO %I', [FENCE_SCHEMA, REPLICATION_ROLE]);
  // The allow-list's table and knocker.apply_allow_list(), which the primary calls on the standby.
  await ensureAllowListSync(session, REPLICATION_ROLE);
}

/** The replication role with the password's SCRAM verifier, its grants (in database postgres, where pg_rewind connects) and the fence. */
export function replicationRoleStep(link: AdminLink, facts: Pick<PrimaryFacts, 'role' | 'fenceExists'>, password: string, database: string): Step {
  const existing = facts.role;
  const changes = !existing || !scramMatches(password, existing.verifier) || !facts.fenceExists;
  let created = false;
  return {
    kind: 'database',
    title: existing
      ? `PostgreSQL: replication role ${REPLICATION_ROLE}, its grants and knocker's fence function`
      : `PostgreSQL: create replication role ${REPLICATION_ROLE} (LOGIN REPLICATION), its grants and knocker's fence function`,
    details: [
      `${existing ? 'ALTER' : 'CREATE'} ROLE ${REPLICATION_ROLE} WITH LOGIN REPLICATION NOSUPERUSER PASSWORD '<SCRAM-SHA-256 verifier>'`,
      ...GRANTS.map((g) => g.replace('%I', REPLICATION_ROLE)),
      `CREATE FUNCTION ${FENCE_SCHEMA}.set_fence(boolean) SECURITY DEFINER: default_transaction_read_only in that server's own postgresql.auto.conf (never replicated), reload, end ${database}'s sessions`,
    ],
    changes,
    async apply() {
      const session = await link.session();
      const verifier = scramVerifier(password);
      if (!existing) {
        await executeQuoted(session, 'CREATE ROLE %I WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', [REPLICATION_ROLE, verifier]);
        await executeQuoted(session, 'COMMENT ON ROLE %I IS %L', [REPLICATION_ROLE, ROLE_COMMENT]);
        created = true;
      } else {
        await executeQuoted(session, 'ALTER ROLE %I WITH LOGIN REPLICATION PASSWORD %L', [REPLICATION_ROLE, verifier]);
      }
      for (const grant of GRANTS) await executeQuoted(session, grant, [REPLICATION_ROLE]);
      await createFence(session, database);
    },
    async undo() {
      if (!created) return;
      const session = await link.session();
      await session.query(`DROP SCHEMA IF EXISTS ${FENCE_SCHEMA} CASCADE`);
      await executeQuoted(session, 'DROP OWNED BY %I', [REPLICATION_ROLE]).catch(() => {});
      await executeQuoted(session, 'DROP ROLE IF EXISTS %I', [REPLICATION_ROLE]);
    },
  };
}

/**
 * The replication role and knocker's fence function dropped, in one transaction (all or nothing),
 * when the pair is taken apart on its primary (`standby remove`). The undo creates them again with
 * the password kept in the passfile (read before it is removed).
 */
export function dropReplicationRoleStep(link: AdminLink, password: string | undefined, database: string): Step {
  let dropped = false;
  return {
    kind: 'database',
    title: `PostgreSQL: drop the replication role ${REPLICATION_ROLE} and knocker's fence function (no standby replicates any more)`,
    details: [`BEGIN; DROP SCHEMA IF EXISTS ${FENCE_SCHEMA} CASCADE; DROP OWNED BY ${REPLICATION_ROLE}; DROP ROLE ${REPLICATION_ROLE}; COMMIT`],
    changes: true,
    async apply() {
      const session = await link.session();
      const exists = (await session.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [REPLICATION_ROLE])).rows.length > 0;
      if (!exists) return 'not there';
      await session.query('BEGIN');
      try {
        await executeQuoted(session, 'DROP SCHEMA IF EXISTS %I CASCADE', [FENCE_SCHEMA]);
        await executeQuoted(session, 'DROP OWNED BY %I', [REPLICATION_ROLE]);
        await executeQuoted(session, 'DROP ROLE %I', [REPLICATION_ROLE]);
        await session.query('COMMIT');
      } catch (error) {
        await session.query('ROLLBACK').catch(() => {});
        throw error;
      }
      dropped = true;
    },
    async undo() {
      if (!dropped || password === undefined) return;
      await replicationRoleStep(link, { role: undefined, fenceExists: false }, password, database).apply();
    },
  };
}

/** A bound on the WAL a slot may hold, so a standby that is gone cannot fill the primary's disk (trap 2). */
export function slotBoundStep(link: AdminLink, facts: PrimaryFacts, bound = '8GB'): Step {
  return {
    kind: 'database',
    title: `PostgreSQL: a standby's slot holds at most ${bound} of WAL (max_slot_wal_keep_size, reload)`,
    details: [`ALTER SYSTEM SET max_slot_wal_keep_size = '${bound}'`, 'SELECT pg_reload_conf()'],
    changes: facts.maxSlotWalKeepSize === '-1',
    async apply() {
      const session = await link.session();
      await executeQuoted(session, 'ALTER SYSTEM SET max_slot_wal_keep_size = %L', [bound]);
      await reloadConfig(session);
    },
    async undo() {
      const session = await link.session();
      await session.query('ALTER SYSTEM RESET max_slot_wal_keep_size');
      await reloadConfig(session);
    },
  };
}

/** The standby block of pg_hba.conf with lines for these peers (checked by PostgreSQL, then reloaded). */
export async function standbyHbaStep(link: AdminLink, hbaFile: string, peers: string[], tls: boolean, sandbox: boolean, nodes?: PairNodes): Promise<Step> {
  const previous = await fs.readFile(hbaFile, 'utf8');
  const next = peers.length > 0 ? withManagedBlock(previous, STANDBY_BLOCK, hbaLinesFor(peers, tls, sandbox, nodes)) : withoutBlock(previous);
  const shown = await fileStep({ file: hbaFile, shownAs: hbaFile, content: next, mode: 0o600 });
  let written = false;
  return {
    kind: 'file',
    title:
      peers.length > 0
        ? `pg_hba.conf: replication from ${peers.join(', ')}${nodes ? `, the web nodes of ${nodes.hosts.join(' and ')}` : ''} (${tls ? 'TLS and ' : ''}SCRAM only)`
        : 'pg_hba.conf: no replication lines',
    details: shown.details,
    changes: next !== previous,
    async apply() {
      written = true;
      await replaceHbaFile(await link.session(), hbaFile, previous, next);
      return 'checked by PostgreSQL and reloaded';
    },
    async undo() {
      if (!written) return;
      await writeFileAtomic(hbaFile, previous, { backup: false });
      await reloadConfig(await link.session());
    },
  };
}

/** pg_hba.conf text without knocker's replication block. */
export function withoutBlock(text: string): string {
  const block = readManagedBlock(text, STANDBY_BLOCK);
  return block ? text.replace(`${block.text}\n\n`, '').replace(block.text, '') : text;
}

/** A file owned by the database's OS user (the walreceiver reads it), written atomically; undo restores it. */
export async function ownedFileStep(file: string, content: string, mode: number, osUser: string, redact?: (t: string) => string): Promise<Step> {
  const inner = await fileStep({ file, shownAs: file, content, mode, redact });
  const user = await lookupUser(osUser);
  return {
    ...inner,
    async apply() {
      // Parents made 0755 (a recursive mkdir would give them the folder's own 0700).
      await fs.mkdir(path.dirname(path.dirname(file)), { recursive: true, mode: 0o755 });
      await fs.mkdir(path.dirname(file), { recursive: true, mode: file.endsWith('.crt') || file.endsWith('.key') ? 0o755 : 0o700 });
      if (user) await fs.chown(path.dirname(file), user.uid, user.gid);
      await inner.apply();
      if (user) await fs.chown(file, user.uid, user.gid);
    },
  };
}

export interface AddStandbyInput {
  root: Root;
  log: Logger;
  cluster: LocalCluster;
  /** An admin link on the app's database (exposedb's). */
  link: AdminLink;
  hbaFile: string;
  database: string;
  tls: boolean;
  standby: Endpoint;
  nodesUrl: string | undefined;
}

export interface AddStandbyPlan {
  steps: Step[];
  warnings: string[];
  bundle: string;
  /** Closes the extra admin session (database postgres). */
  close(): Promise<void>;
}

/** The password kept in this host's passfile by an earlier run (a re-run converges on it). */
async function keptPassword(root: Root): Promise<string | undefined> {
  const text = await readIfExists(root.path(STANDBY_PATHS.passfile));
  return text === undefined ? undefined : passwordFrom(text, REPLICATION_ROLE);
}

export async function planAddStandby(input: AddStandbyInput): Promise<AddStandbyPlan> {
  const { root, log, cluster, standby } = input;
  // A sandbox root's private cluster knows its address; a host's own cluster is reached at the
  // address exposedb printed for the web nodes.
  const address = cluster.address ?? (input.nodesUrl ? new URL(input.nodesUrl).hostname.replace(/^\[|\]$/g, '') : undefined);
  if (!address)
    throw new PreflightError('cannot tell the address the standby reaches this primary at', ['run knocker exposedb --init (with --host ADDR) first']);
  const postgresLink = adminLink({ ...cluster.access, database: 'postgres' }, log);
  const facts = await readPrimaryFacts(await postgresLink.session());
  const problems = replicationProblems(facts);
  if (problems.length > 0) {
    await postgresLink.close();
    throw new PreflightError(`this primary cannot feed a standby: ${problems.join('; ')}`);
  }
  if (!input.tls || !(await readIfExists(root.path(PATHS.clusterCaKey)))) {
    await postgresLink.close();
    throw new PreflightError("the standby is verified with the cluster's CA, which this primary does not have yet (or PostgreSQL has ssl off)", [
      'run knocker exposedb --init first',
    ]);
  }
  const self: Endpoint = { host: address, port: cluster.access.port };
  if (standby.host === self.host) {
    await postgresLink.close();
    throw new PreflightError(`${standby.host} is this primary's own address`, ["give the standby host's address"]);
  }
  const state = await readState(root);
  if (state && state.peer.host !== standby.host) {
    await postgresLink.close();
    throw new PreflightError(`this primary has a standby already (${state.peer.host}:${state.peer.port}); knocker keeps one standby per primary`, [
      'remove it first: knocker standby remove',
    ]);
  }
  const password = (await keptPassword(root)) ?? generatePassword();
  log.addSecret(password);
  const osUser = cluster.access.osUser;
  const hosts = [self, standby];
  const ca = await fs.readFile(root.path(PATHS.clusterCaCert), 'utf8');
  const bundlePath = bundleFile(root, standby.host);
  const pairState: PairState = { version: 1, self, peer: standby, database: input.database, promoted: state?.promoted };
  const warnings = [rewindWarning(facts)].filter((w): w is string => Boolean(w));
  const steps: Step[] = [
    await ownedFileStep(root.path(STANDBY_PATHS.passfile), passfileText(hosts, REPLICATION_ROLE, password), 0o600, osUser, (t) => log.scrub(t)),
    await ownedFileStep(root.path(STANDBY_PATHS.ca), ca, 0o644, osUser),
    replicationRoleStep(postgresLink, facts, password, input.database),
    slotBoundStep(postgresLink, facts),
    await standbyHbaStep(input.link, input.hbaFile, [standby.host], true, root.isSandbox, pairNodes([self.host, standby.host], input.database)),
    await fileStep({
      file: root.path(STANDBY_PATHS.state),
      shownAs: root.path(STANDBY_PATHS.state),
      content: `${JSON.stringify(pairState, null, 2)}\n`,
      mode: 0o600,
    }),
    bundleStep(root, bundlePath, { primary: self, standby, database: input.database, password, ca, nodesUrl: input.nodesUrl }, log),
  ];
  // A host's own Debian cluster: systemd asks the standby before it starts this one (at boot too).
  const system = cluster.sandbox ? undefined : (await findSystemClusters(log)).find((c) => c.layout === 'debian' && c.port === cluster.access.port);
  if (system) steps.push(await bootFenceStep(root, system, log));
  // Last, this host's own web node: it follows the pair as every other node does.
  const follow = await followPairSteps(root, { hosts: [self, standby], self, ca }, log).catch(async (error: unknown) => {
    await postgresLink.close();
    throw error;
  });
  steps.push(...follow.steps);
  warnings.push(...follow.warnings);
  return { steps, warnings, bundle: bundlePath, close: () => postgresLink.close() };
}

function bundleStep(root: Root, file: string, parts: Omit<StandbyBundle, 'version' | 'certificate' | 'key'>, log: Logger): Step {
  return {
    kind: 'file',
    title: `Create ${file} (mode 0600): for the standby's host, with the replication password and a certificate for ${parts.standby.host} from the cluster's CA`,
    details: [`openssl: a server certificate for ${parts.standby.host}, signed by ${root.path(PATHS.clusterCaCert)}`],
    changes: true,
    async apply() {
      await writeBundleWithCertificate(root, file, parts.standby.host, { version: 1, ...parts }, log);
    },
    async undo() {
      await fs.rm(file, { force: true });
    },
  };
}
