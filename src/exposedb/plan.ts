// What exposedb finds on the server and the plan steps that change it: the remote role, its
// membership in the app role, the allow-list block in pg_hba.conf, listen_addresses (the only
// change that needs a restart), and the file keeping the connection string. Every step can undo
// itself, so a failure leaves the server as it was (src/system/plan.ts).
import fs from 'node:fs/promises';
import path from 'node:path';
import { executeQuoted, type AdminLink, type AdminSession } from '../postgres/admin.js';
import { hbaErrors, reloadConfig, replaceHbaFile, withManagedBlock } from '../postgres/hba.js';
import { scramMatches, scramVerifier } from '../postgres/scram.js';
import { writeFileAtomic } from '../system/files.js';
import type { Logger } from '../system/log.js';
import { run } from '../system/run.js';
import { fileStep, type Step } from '../system/plan.js';
import { allowListRules, EXPOSEDB_BLOCK, type AllowListTarget } from './allow-list.js';
import type { LocalCluster } from './locate.js';

/** Set on the remote role, so exposedb never takes over a role someone else made. */
export const ROLE_COMMENT = 'Managed by knocker exposedb: the login of the other Knocknoc web nodes.';

/** listen_addresses once exposed: every address (IPv4 and IPv6). */
export const LISTEN_EVERYWHERE = '*';

export interface Names {
  database: string;
  /** The application's role (the connection string's user): the rights the other nodes get. */
  appRole: string;
  /** The login role of the other nodes. */
  remoteRole: string;
}

/** `<database>_remote`, cut to PostgreSQL's 63-byte identifier limit. */
export function remoteRoleName(database: string): string {
  let base = database;
  while (Buffer.byteLength(`${base}_remote`) > 63) base = base.slice(0, -1);
  return `${base}_remote`;
}

export interface RemoteRoleFacts {
  verifier: string | null;
  /** LOGIN, INHERIT and no special attribute (superuser, createdb, createrole, replication, bypassrls). */
  plainLogin: boolean;
  managed: boolean;
  member: boolean;
  setRole: boolean;
}

/** Where the running server's files and binaries are, to ask `postgres -C` what a restart would read. */
export interface StartFiles {
  bindir: string;
  configFile: string;
  dataDirectory: string;
  osUser: string;
}

export interface ListenFacts {
  setting: string;
  source: string;
  /** The value in postgresql.auto.conf (ALTER SYSTEM), if any. */
  autoConf: string | undefined;
  /** Other settings waiting for a restart: a restart applies them too. */
  pendingOthers: string[];
}

export interface ServerFacts {
  serverVersion: string;
  hbaFile: string;
  hbaText: string;
  hbaMode: number;
  /**
   * Whether PostgreSQL has loaded pg_hba.conf as it is on disk (its configuration was last read
   * after the file changed). A run killed between writing the file and the reload leaves it false.
   */
  hbaLoaded: boolean;
  ssl: boolean;
  appRole: { exists: boolean; superuser: boolean };
  remote: RemoteRoleFacts | undefined;
  listen: ListenFacts;
  start: StartFiles;
}

/**
 * Whether PostgreSQL listens where the other web nodes reach it: every address on a real host; a
 * sandbox root's private cluster is a "host" of its own address, where it listens already.
 */
export function listensExternally(setting: string, cluster?: Pick<LocalCluster, 'sandbox' | 'address'>): boolean {
  const addresses = setting.split(',').map((a) => a.trim());
  if (cluster?.sandbox && cluster.address !== undefined && addresses.includes(cluster.address)) return true;
  return addresses.some((a) => ['*', '0.0.0.0', '::'].includes(a));
}

async function readListen(session: AdminSession): Promise<ListenFacts> {
  const setting = await session.query<{ setting: string; source: string }>(`SELECT setting, source FROM pg_settings WHERE name = 'listen_addresses'`);
  const auto = await session.query<{ setting: string }>(
    `SELECT setting FROM pg_file_settings WHERE name = 'listen_addresses' AND sourcefile LIKE '%/postgresql.auto.conf' ORDER BY seqno DESC LIMIT 1`,
  );
  const pending = await session.query<{ name: string }>(`SELECT name FROM pg_settings WHERE pending_restart AND name <> 'listen_addresses' ORDER BY name`);
  return {
    setting: setting.rows[0]?.setting ?? '',
    source: setting.rows[0]?.source ?? '',
    autoConf: auto.rows[0]?.setting,
    pendingOthers: pending.rows.map((r) => r.name),
  };
}

/** Everything the plan depends on, read in one admin session. */
export async function readServerFacts(session: AdminSession, names: Names, osUser: string): Promise<ServerFacts> {
  const server = (
    await session.query<{ version: string; hba_file: string; ssl: string; config_file: string; data_directory: string; bindir: string }>(
      `SELECT current_setting('server_version') AS version, current_setting('hba_file') AS hba_file, current_setting('ssl') AS ssl,
              current_setting('config_file') AS config_file, current_setting('data_directory') AS data_directory,
              (SELECT setting FROM pg_config WHERE name = 'BINDIR') AS bindir`,
    )
  ).rows[0]!;
  const roles = await session.query<{ rolname: string; rolsuper: boolean; plain: boolean; rolpassword: string | null; comment: string | null }>(
    `SELECT a.rolname, a.rolsuper, a.rolpassword, shobj_description(a.oid, 'pg_authid') AS comment,
            (a.rolcanlogin AND a.rolinherit AND NOT (a.rolsuper OR a.rolcreatedb OR a.rolcreaterole OR a.rolreplication OR a.rolbypassrls)) AS plain
       FROM pg_authid a WHERE a.rolname = ANY($1::text[])`,
    [[names.appRole, names.remoteRole]],
  );
  const app = roles.rows.find((r) => r.rolname === names.appRole);
  const remote = roles.rows.find((r) => r.rolname === names.remoteRole);
  let remoteFacts: RemoteRoleFacts | undefined;
  if (remote) {
    const member = await session.query(
      `SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE g.rolname = $1 AND u.rolname = $2`,
      [names.appRole, names.remoteRole],
    );
    const setting = await session.query<{ setconfig: string[] }>(
      `SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole JOIN pg_database d ON d.oid = s.setdatabase
        WHERE r.rolname = $1 AND d.datname = $2`,
      [names.remoteRole, names.database],
    );
    remoteFacts = {
      verifier: remote.rolpassword,
      plainLogin: remote.plain,
      managed: remote.comment === ROLE_COMMENT,
      member: member.rowCount > 0,
      // setconfig holds `role=knocknoc` (the name as it is, even "Odd Name").
      setRole: (setting.rows[0]?.setconfig ?? []).includes(`role=${names.appRole}`),
    };
  }
  const hbaText = await fs.readFile(server.hba_file, 'utf8');
  const hbaStat = await fs.stat(server.hba_file);
  const hbaMode = hbaStat.mode & 0o7777;
  const loadedAt = (await session.query<{ ms: string }>(`SELECT (extract(epoch FROM pg_conf_load_time()) * 1000)::text AS ms`)).rows[0]!.ms;
  return {
    // "15.18 (Debian 15.18-0+deb12u1)": the number is what an operator needs.
    serverVersion: server.version.split(' ')[0]!,
    hbaFile: server.hba_file,
    hbaText,
    hbaMode,
    hbaLoaded: Number(loadedAt) >= hbaStat.mtimeMs,
    ssl: server.ssl === 'on',
    appRole: { exists: Boolean(app), superuser: Boolean(app?.rolsuper) },
    remote: remoteFacts,
    listen: await readListen(session),
    start: { bindir: server.bindir, configFile: server.config_file, dataDirectory: server.data_directory, osUser },
  };
}

/**
 * What a restart would read: `postgres -C` parses every configuration file as a start does (an
 * invalid value that pg_file_settings only calls "could not be applied" stops it) and prints the
 * resulting listen_addresses. A restart is only ever tried when this passes.
 */
export async function startConfig(start: StartFiles, log?: Logger): Promise<{ ok: true; listen: string } | { ok: false; problem: string }> {
  const result = await run(
    path.join(start.bindir, 'postgres'),
    ['-C', 'listen_addresses', `--config-file=${start.configFile}`, '-D', start.dataDirectory],
    { asUser: start.osUser, allowFailure: true, log, timeoutMs: 30_000 },
  );
  if (result.exitCode === 0) return { ok: true, listen: result.stdout.trim() };
  const messages = result.stderr
    .split('\n')
    .map((line) => /\b(?:LOG|FATAL|ERROR):\s+(.*)$/.exec(line)?.[1])
    .filter((m): m is string => Boolean(m));
  return { ok: false, problem: messages.join('; ') || result.stderr.trim() || `postgres -C exited with ${result.exitCode}` };
}

const ROLE_ATTRIBUTES = 'LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS';

/** The remote login role with the password of the printed connection string (sent as a SCRAM verifier). */
export function remoteRoleStep(link: AdminLink, names: Names, facts: ServerFacts, password: string): Step {
  const role = names.remoteRole;
  const existing = facts.remote;
  const passwordMatches = existing ? scramMatches(password, existing.verifier) : false;
  const changes = !existing || !passwordMatches || !existing.plainLogin;
  let undo: ((s: AdminSession) => Promise<void>) | undefined;
  return {
    kind: 'database',
    title: !existing
      ? `PostgreSQL: create login role ${role} for the other web nodes`
      : changes
        ? `PostgreSQL: give role ${role} the password of the saved connection string, login only`
        : `PostgreSQL: login role ${role}`,
    details: [
      `${existing ? 'ALTER' : 'CREATE'} ROLE ${role} WITH ${ROLE_ATTRIBUTES} PASSWORD '<SCRAM-SHA-256 verifier of a random password>'`,
      ...(existing ? [] : [`COMMENT ON ROLE ${role} IS '${ROLE_COMMENT}'`]),
    ],
    changes,
    async apply() {
      const session = await link.session();
      const verifier = scramVerifier(password);
      if (!existing) {
        // The role and the comment that makes it exposedb's, together: a run killed between the
        // two would leave a role every later run refuses as someone else's.
        await session.query('BEGIN');
        try {
          await executeQuoted(session, `CREATE ROLE %I WITH ${ROLE_ATTRIBUTES} PASSWORD %L`, [role, verifier]);
          await executeQuoted(session, 'COMMENT ON ROLE %I IS %L', [role, ROLE_COMMENT]);
          await session.query('COMMIT');
        } catch (error) {
          await session.query('ROLLBACK').catch(() => {});
          throw error;
        }
        undo = (s) => executeQuoted(s, 'DROP ROLE IF EXISTS %I', [role]);
        return;
      }
      const previous = existing.verifier;
      await executeQuoted(session, `ALTER ROLE %I WITH ${ROLE_ATTRIBUTES} PASSWORD %L`, [role, verifier]);
      undo = (s) => (previous ? executeQuoted(s, 'ALTER ROLE %I PASSWORD %L', [role, previous]) : executeQuoted(s, 'ALTER ROLE %I PASSWORD NULL', [role]));
    },
    async undo() {
      if (undo) await undo(await link.session());
      undo = undefined;
    },
  };
}

/** Membership in the app role plus `SET role` in its database: the app's full rights, and new objects owned by the app role. */
export function grantsStep(link: AdminLink, names: Names, facts: ServerFacts): Step {
  const { remoteRole, appRole, database } = names;
  const member = facts.remote?.member ?? false;
  const setRole = facts.remote?.setRole ?? false;
  const undos: Array<(s: AdminSession) => Promise<void>> = [];
  return {
    kind: 'database',
    title: `PostgreSQL: ${remoteRole} acts as ${appRole} in database ${database}`,
    details: [`GRANT ${appRole} TO ${remoteRole}`, `ALTER ROLE ${remoteRole} IN DATABASE ${database} SET role = '${appRole}'`],
    changes: !member || !setRole,
    async apply() {
      const session = await link.session();
      if (!member) {
        await executeQuoted(session, 'GRANT %I TO %I', [appRole, remoteRole]);
        undos.unshift((s) => executeQuoted(s, 'REVOKE %I FROM %I', [appRole, remoteRole]));
      }
      if (!setRole) {
        await executeQuoted(session, 'ALTER ROLE %I IN DATABASE %I SET role = %L', [remoteRole, database, appRole]);
        undos.unshift((s) => executeQuoted(s, 'ALTER ROLE %I IN DATABASE %I RESET role', [remoteRole, database]));
      }
    },
    async undo() {
      const session = await link.session();
      for (const action of undos.splice(0)) await action(session);
    },
  };
}

/**
 * Rewrites the allow-list block of pg_hba.conf for `cidrs`; PostgreSQL checks the new file before
 * it is reloaded (no restart), and the previous file is put back on any error.
 */
export async function allowListStep(link: AdminLink, facts: ServerFacts, target: AllowListTarget, cidrs: string[], title: string): Promise<Step> {
  const file = facts.hbaFile;
  const previous = facts.hbaText;
  const next = withManagedBlock(previous, EXPOSEDB_BLOCK, allowListRules(target, cidrs));
  const shown = await fileStep({ file, shownAs: file, content: next, mode: facts.hbaMode });
  let written = false;
  return {
    kind: 'file',
    title: next === previous && !facts.hbaLoaded ? `${title}: reload pg_hba.conf, written but not yet loaded by PostgreSQL` : title,
    details: next === previous && !facts.hbaLoaded ? ['SELECT pg_reload_conf() (after PostgreSQL has checked the file)'] : shown.details,
    changes: next !== previous || !facts.hbaLoaded,
    async apply() {
      written = true;
      await replaceHbaFile(await link.session(), file, previous, next);
      return 'checked by PostgreSQL and reloaded, no restart';
    },
    async undo() {
      if (!written) return;
      await writeFileAtomic(file, previous, { backup: false });
      await reloadConfig(await link.session());
    },
  };
}

/** Where the cluster must listen for the other nodes: every address, or a sandbox root's own. */
export function wantedListen(cluster: Pick<LocalCluster, 'sandbox' | 'address'>): string {
  return cluster.sandbox && cluster.address !== undefined ? cluster.address : LISTEN_EVERYWHERE;
}

/** listen_addresses through ALTER SYSTEM (it wins over postgresql.conf), then a restart and a wait until it accepts connections. */
export function listenStep(link: AdminLink, cluster: LocalCluster, facts: ServerFacts, log: Logger): Step {
  const { setting, autoConf, pendingOthers } = facts.listen;
  const external = listensExternally(setting, cluster);
  const wanted = wantedListen(cluster);
  let altered = false;
  let restarted = false;
  return {
    kind: 'service',
    title: external
      ? `PostgreSQL listens on '${setting}'${cluster.sandbox ? ` (this sandbox root's own address)` : ''}`
      : `PostgreSQL: listen on ${wanted === LISTEN_EVERYWHERE ? 'every address' : `this sandbox root's own address`} (listen_addresses '${setting}' -> '${wanted}'), restart ${cluster.label}`,
    details: [
      `ALTER SYSTEM SET listen_addresses = '${wanted}'`,
      `restart ${cluster.label} (open connections are dropped; the nodes reconnect)`,
      ...(pendingOthers.length > 0 ? [`the restart also applies settings changed earlier: ${pendingOthers.join(', ')}`] : []),
    ],
    changes: !external,
    async apply() {
      const session = await link.session();
      if (autoConf !== wanted) {
        altered = true;
        await executeQuoted(session, 'ALTER SYSTEM SET listen_addresses = %L', [wanted]);
      }
      // A server does not start with a broken configuration or pg_hba.conf: check both first.
      const config = await startConfig(facts.start, log);
      if (!config.ok) throw new Error(`PostgreSQL would not start again with its configuration files (${config.problem}); it was not restarted`);
      if (!listensExternally(config.listen, cluster)) {
        throw new Error(`after ALTER SYSTEM the configuration files still give listen_addresses '${config.listen}'`);
      }
      const hba = await hbaErrors(session);
      if (hba.length > 0) throw new Error(`PostgreSQL would not start again with pg_hba.conf (${hba.map((e) => `line ${e.line}: ${e.error}`).join('; ')}); it was not restarted`);
      restarted = true;
      await cluster.restart(log);
      const now = await readListen(await link.reopen());
      if (!listensExternally(now.setting, cluster)) {
        throw new Error(`after the restart PostgreSQL still listens on '${now.setting}' (set by ${now.source}); a command-line option or a later configuration file may override ALTER SYSTEM`);
      }
      return 'restarted; accepts connections';
    },
    async undo() {
      if (altered) {
        const session = restarted ? await link.reopen() : await link.session();
        if (autoConf === undefined) await session.query('ALTER SYSTEM RESET listen_addresses');
        else await executeQuoted(session, 'ALTER SYSTEM SET listen_addresses = %L', [autoConf]);
        altered = false;
      }
      if (restarted) {
        await cluster.restart(log);
        await link.reopen();
        restarted = false;
      }
    },
  };
}

/** Ends the remote role's open sessions from a CIDR no longer allowed (removing a pg_hba line does not). */
export function endSessionsStep(link: AdminLink, role: string, cidr: string, stillAllowed: string[], report: (ended: number) => void): Step {
  return {
    kind: 'database',
    title: `PostgreSQL: end ${role}'s open sessions from ${cidr}`,
    details: [`SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = '${role}' AND client_addr <<= '${cidr}'`],
    changes: true,
    async apply() {
      const session = await link.session();
      const result = await session.query<{ ended: number }>(
        `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))::int AS ended FROM pg_stat_activity
          WHERE usename = $1 AND client_addr <<= $2::inet AND NOT (client_addr <<= ANY($3::inet[]))`,
        [role, cidr, stillAllowed],
      );
      const ended = result.rows[0]?.ended ?? 0;
      report(ended);
      return `${ended} ended`;
    },
    // An ended session cannot be brought back; the node reconnects once it is allowed again.
    async undo() {},
  };
}
