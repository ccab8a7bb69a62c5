// What exposedb finds on the server and the plan steps that change its roles: the remote role
// and its membership in the app role, and the end of sessions from a range no longer allowed.
// The allow-list step and listen_addresses are PostgreSQL plumbing (src/postgres/allow-list.ts,
// src/postgres/listen.ts). Every step can undo itself (src/system/plan.ts).
import fs from 'node:fs/promises';
import { executeQuoted, type AdminLink, type AdminSession } from '../postgres/admin.js';
import { readListen, type ListenFacts, type StartFiles } from '../postgres/listen.js';
import { scramMatches, scramVerifier } from '../postgres/scram.js';
import type { Step } from '../system/plan.js';

/** Set on the remote role, so exposedb never takes over a role someone else made. */
export const ROLE_COMMENT = 'Managed by knocker exposedb: the login of the other Knocknoc web nodes.';

export interface Names {
  database: string;
  /** The application's role (the connection string's user): the rights the other nodes get. */
  appRole: string;
  /** The login role of the other nodes. */
  remoteRole: string;
}

export interface RemoteRoleFacts {
  verifier: string | null;
  /** LOGIN, INHERIT and no special attribute (superuser, createdb, createrole, replication, bypassrls). */
  plainLogin: boolean;
  managed: boolean;
  member: boolean;
  setRole: boolean;
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
  /** pg_is_in_recovery(): this server is a standby now (of a knocker standby pair, after a switchover or promote). */
  inRecovery: boolean;
  appRole: { exists: boolean; superuser: boolean };
  remote: RemoteRoleFacts | undefined;
  listen: ListenFacts;
  start: StartFiles;
}

/** Everything the plan depends on, read in one admin session. */
export async function readServerFacts(session: AdminSession, names: Names, osUser: string): Promise<ServerFacts> {
  const server = (
    await session.query<{
      version: string;
      hba_file: string;
      ssl: string;
      config_file: string;
      data_directory: string;
      bindir: string;
      in_recovery: boolean;
    }>(
      `SELECT current_setting('server_version') AS version, current_setting('hba_file') AS hba_file, current_setting('ssl') AS ssl,
              pg_is_in_recovery() AS in_recovery,
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
    inRecovery: server.in_recovery,
    appRole: { exists: Boolean(app), superuser: Boolean(app?.rolsuper) },
    remote: remoteFacts,
    listen: await readListen(session),
    start: { bindir: server.bindir, configFile: server.config_file, dataDirectory: server.data_directory, osUser },
  };
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
