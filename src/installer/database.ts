// The installer's database steps: the app role and database on a local cluster (option 1), and the
// Knocknoc schema (options 1 and 2). Each is a plan step that inspects, applies and undoes.
import type pg from 'pg';
import { executeQuoted, withAdminSession, type AdminSession, type ClusterAccess } from '../postgres/admin.js';
import { withClient, type ConnectOptions } from '../postgres/connect.js';
import { scramMatches, scramVerifier } from '../postgres/scram.js';
import type { DatabaseUrl } from '../postgres/url.js';
import { databaseSchemaVersion, migrate, type Release } from '../schema/index.js';
import type { Logger } from '../system/log.js';
import type { Step } from '../system/plan.js';

export const APP_ROLE = 'knocknoc';
export const APP_DATABASE = 'knocknoc';

export interface RoleState {
  roleExists: boolean;
  /** Whether the role's stored verifier matches the password we hold. */
  passwordMatches: boolean;
  databaseExists: boolean;
  databaseOwner: string | undefined;
}

async function readRoleState(session: AdminSession, password: string): Promise<RoleState & { verifier: string | null }> {
  const role = await session.query<{ rolpassword: string | null }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [APP_ROLE]);
  const db = await session.query<{ owner: string }>('SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1', [APP_DATABASE]);
  const verifier = role.rows[0]?.rolpassword ?? null;
  return {
    roleExists: role.rowCount > 0,
    passwordMatches: role.rowCount > 0 && scramMatches(password, verifier),
    databaseExists: db.rowCount > 0,
    databaseOwner: db.rows[0]?.owner,
    verifier,
  };
}

/** The role and database as they are now, on a running cluster. */
export async function inspectRole(access: ClusterAccess, password: string, log?: Logger): Promise<RoleState> {
  const { verifier: _verifier, ...state } = await withAdminSession(access, log, (s) => readRoleState(s, password));
  return state;
}

/**
 * Role `knocknoc` (login, SCRAM password sent as a verifier) and database `knocknoc` owned by it,
 * closed to PUBLIC. `state` is what inspection found, or undefined when the cluster does not run
 * yet (the step then checks again when it applies).
 */
export function roleAndDatabaseStep(options: {
  /** The cluster, or how to find it when applying (a cluster installed by an earlier step). */
  access: ClusterAccess | (() => ClusterAccess);
  password: string;
  state: RoleState | undefined;
  log: Logger;
}): Step {
  const { password, state, log } = options;
  const access = () => (typeof options.access === 'function' ? options.access() : options.access);
  const undoActions: Array<(s: AdminSession) => Promise<void>> = [];
  const needsRole = !state?.roleExists;
  const needsPassword = !!state && state.roleExists && !state.passwordMatches;
  const needsDatabase = !state?.databaseExists;
  const parts: string[] = [];
  if (needsRole) parts.push(`create role ${APP_ROLE}`);
  if (needsPassword) parts.push(`set the password of role ${APP_ROLE} to the one in knocknoc.conf`);
  if (needsDatabase) parts.push(`create database ${APP_DATABASE} owned by ${APP_ROLE}`);
  const details = [
    `CREATE ROLE ${APP_ROLE} LOGIN PASSWORD '<SCRAM-SHA-256 verifier of a random password>'`,
    `CREATE DATABASE ${APP_DATABASE} OWNER ${APP_ROLE}`,
    `REVOKE ALL ON DATABASE ${APP_DATABASE} FROM PUBLIC`,
  ];
  if (state?.databaseExists && state.databaseOwner !== APP_ROLE) {
    details.push(`(database ${APP_DATABASE} exists but is owned by ${state.databaseOwner}: this step will stop)`);
  }
  return {
    kind: 'database',
    title: parts.length > 0 ? `PostgreSQL: ${parts.join(', ')}` : `PostgreSQL: role ${APP_ROLE} and database ${APP_DATABASE}`,
    details,
    changes: needsRole || needsPassword || needsDatabase,
    async apply() {
      undoActions.length = 0;
      const notes: string[] = [];
      await withAdminSession(access(), log, async (session) => {
        const now = await readRoleState(session, password);
        const verifier = scramVerifier(password);
        if (!now.roleExists) {
          await executeQuoted(session, 'CREATE ROLE %I LOGIN PASSWORD %L', [APP_ROLE, verifier]);
          undoActions.unshift((s) => executeQuoted(s, 'DROP ROLE IF EXISTS %I', [APP_ROLE]));
        } else if (!now.passwordMatches) {
          await executeQuoted(session, 'ALTER ROLE %I WITH LOGIN PASSWORD %L', [APP_ROLE, verifier]);
          const previous = now.verifier;
          undoActions.unshift((s) =>
            previous ? executeQuoted(s, 'ALTER ROLE %I PASSWORD %L', [APP_ROLE, previous]) : executeQuoted(s, 'ALTER ROLE %I PASSWORD NULL', [APP_ROLE]),
          );
          notes.push('password updated');
        } else {
          notes.push('role already present');
        }
        if (!now.databaseExists) {
          await executeQuoted(session, 'CREATE DATABASE %I OWNER %I', [APP_DATABASE, APP_ROLE]);
          undoActions.unshift((s) => executeQuoted(s, 'DROP DATABASE IF EXISTS %I WITH (FORCE)', [APP_DATABASE]));
          await executeQuoted(session, 'REVOKE ALL ON DATABASE %I FROM PUBLIC', [APP_DATABASE]);
        } else if (now.databaseOwner !== APP_ROLE) {
          throw new Error(
            `database ${APP_DATABASE} exists and is owned by ${now.databaseOwner}, not ${APP_ROLE}; rename or drop it, or use option 2 with a connection string for it`,
          );
        } else {
          notes.push('database already present');
        }
      });
      return notes.join(', ') || undefined;
    },
    async undo() {
      if (undoActions.length === 0) return;
      await withAdminSession(access(), log, async (session) => {
        for (const action of undoActions) await action(session);
      });
      undoActions.length = 0;
    },
  };
}

type Relation = { name: string; kind: string };

async function relationsInSchema(client: pg.Client): Promise<Relation[]> {
  const result = await client.query<{ relname: string; relkind: string }>(
    `SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')`,
  );
  return result.rows.map((r) => ({ name: r.relname, kind: r.relkind }));
}

/**
 * Creates or migrates the Knocknoc schema, connected as the application (so its objects belong to
 * the app role). Undo drops exactly the relations this step created.
 */
export function schemaStep(options: {
  url: DatabaseUrl;
  connect: ConnectOptions;
  release: Release;
  /** The database's schema version now; undefined when unknown yet (database not there). */
  current: number | undefined;
  appliedBy: string;
  log: Logger;
}): Step {
  const { url, connect, release, current, appliedBy, log } = options;
  let created: Relation[] = [];
  const target = release.schemaVersion;
  const title =
    current === undefined || current === 0
      ? `Knocknoc schema: create it (migrations 1–${target}) in ${url.database}`
      : current < target
        ? `Knocknoc schema: migrate ${url.database} from version ${current} to ${target}`
        : `Knocknoc schema: ${url.database} is at version ${current}`;
  return {
    kind: 'database',
    title,
    details: release.migrations
      .filter((m) => current === undefined || m.version > current)
      .map((m) => `migration ${String(m.version).padStart(3, '0')}_${m.name}.sql`),
    changes: current === undefined || current < target,
    async apply() {
      created = [];
      return withClient(url, connect, async (client) => {
        const before = new Set((await relationsInSchema(client)).map((r) => r.name));
        try {
          const result = await migrate(client, release.migrations, appliedBy);
          log.info(`schema: from ${result.from} to ${result.to}, applied [${result.applied.join(', ')}]`);
          return result.applied.length === 0 ? 'already up to date' : `schema version ${result.to}`;
        } finally {
          created = (await relationsInSchema(client)).filter((r) => !before.has(r.name));
        }
      });
    },
    async undo() {
      if (created.length === 0) return;
      await withClient(url, connect, async (client) => {
        for (const kinds of [['r', 'p', 'f'], ['m'], ['v'], ['S']]) {
          for (const relation of created.filter((r) => kinds.includes(r.kind))) {
            const keyword = { r: 'TABLE', p: 'TABLE', f: 'FOREIGN TABLE', m: 'MATERIALIZED VIEW', v: 'VIEW', S: 'SEQUENCE' }[relation.kind]!;
            const statement = await client.query<{ s: string }>(`SELECT format('DROP ${keyword} IF EXISTS %I CASCADE', $1::text) AS s`, [relation.name]);
            await client.query(statement.rows[0]!.s);
          }
        }
      });
      created = [];
    },
  };
}

/** The schema version of a database reachable with `url` (undefined: no Knocknoc schema). */
export async function schemaVersionAt(url: DatabaseUrl, connect: ConnectOptions): Promise<number | undefined> {
  return withClient(url, connect, (client) => databaseSchemaVersion(client));
}
