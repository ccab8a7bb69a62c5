// The server side of `knocker exposedb --invite`: what the primary keeps of an invitation, and the
// plan steps that create, revoke and prune them. An invitation is
//   - a PostgreSQL role `knocker_join_<id>` whose password is the token's secret, stored as a SCRAM
//     verifier only, LOGIN until its VALID UNTIL, member of `knocker_joiners` (which may CONNECT to
//     the Knocknoc database and EXECUTE knocker_join.redeem(), nothing else);
//   - a hostssl line for that role from the invited address only (src/postgres/allow-list.ts);
//   - a row in knocker_join.invites holding the node's lasting connection string and CA sealed with
//     a key derived from the secret (src/join/token.ts): useless to whoever reads the table.
// knocker_join.redeem() (SECURITY DEFINER, fixed search_path, no argument: it acts on session_user)
// marks the row used with one UPDATE … WHERE redeemed_at IS NULL, so of two joins at once exactly
// one gets the payload, then makes the role NOLOGIN. The schema lives in the Knocknoc database, so
// it replicates to a standby with everything else.
import { executeQuoted, type AdminLink, type AdminSession } from '../postgres/admin.js';
import { scramVerifier } from '../postgres/scram.js';
import type { Step } from '../system/plan.js';
import { JOINERS_ROLE } from './token.js';

export const JOIN_SCHEMA = 'knocker_join';

/** One invitation as --invites shows it (never the secret, never the payload). */
export interface Invitation {
  id: string;
  role: string;
  address: string;
  name: string | null;
  createdAt: Date;
  expiresAt: Date;
  /** The invitation added `address` to the allow-list (it was not there): taken out again if never used. */
  allowedByInvite: boolean;
  redeemedAt: Date | null;
  redeemedFrom: string | null;
  revokedAt: Date | null;
  /** Its role and pg_hba.conf line are gone (used, expired or revoked, then cleaned up). */
  prunedAt: Date | null;
  /** The role still exists. */
  roleExists: boolean;
}

export type InvitationState = 'open' | 'used' | 'expired' | 'revoked';

export function invitationState(invite: Invitation, now: Date): InvitationState {
  if (invite.redeemedAt) return 'used';
  if (invite.revokedAt) return 'revoked';
  if (invite.expiresAt.getTime() <= now.getTime()) return 'expired';
  return 'open';
}

/** Whether an invitation's role and line are still there though it can no longer be redeemed. */
export function needsPruning(invite: Invitation, now: Date): boolean {
  return invitationState(invite, now) !== 'open' && (invite.prunedAt === null || invite.roleExists);
}

/** Every invitation, newest first; none when the schema was never made. */
export async function readInvitations(session: AdminSession): Promise<Invitation[]> {
  const exists = await session.query(`SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = 'invites'`, [
    JOIN_SCHEMA,
  ]);
  if (exists.rowCount === 0) return [];
  const rows = await session.query<{
    id: string;
    role: string;
    address: string;
    name: string | null;
    created_at: Date;
    expires_at: Date;
    allowed_by_invite: boolean;
    redeemed_at: Date | null;
    redeemed_from: string | null;
    revoked_at: Date | null;
    pruned_at: Date | null;
    role_exists: boolean;
  }>(
    `SELECT i.id, i.role, i.address::text AS address, i.name, i.created_at, i.expires_at, i.allowed_by_invite, i.redeemed_at,
            host(i.redeemed_from) AS redeemed_from, i.revoked_at, i.pruned_at, EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = i.role) AS role_exists
       FROM knocker_join.invites i ORDER BY i.created_at DESC, i.id`,
  );
  const date = (v: Date | string | null) => (v === null ? null : new Date(v));
  return rows.rows.map((r) => ({
    id: r.id,
    role: r.role,
    address: r.address,
    name: r.name,
    createdAt: new Date(r.created_at),
    expiresAt: new Date(r.expires_at),
    allowedByInvite: r.allowed_by_invite,
    redeemedAt: date(r.redeemed_at),
    redeemedFrom: r.redeemed_from,
    revokedAt: date(r.revoked_at),
    prunedAt: date(r.pruned_at),
    roleExists: r.role_exists,
  }));
}

const SCHEMA_SQL = [
  `CREATE SCHEMA IF NOT EXISTS ${JOIN_SCHEMA}`,
  `REVOKE ALL ON SCHEMA ${JOIN_SCHEMA} FROM PUBLIC`,
  `CREATE TABLE IF NOT EXISTS ${JOIN_SCHEMA}.invites (
     id text PRIMARY KEY CHECK (id ~ '^[a-z0-9]{10}$'),
     role name NOT NULL UNIQUE,
     address cidr NOT NULL,
     name text,
     created_at timestamptz NOT NULL DEFAULT now(),
     expires_at timestamptz NOT NULL,
     payload bytea NOT NULL,
     allowed_by_invite boolean NOT NULL,
     redeemed_at timestamptz,
     redeemed_from inet,
     revoked_at timestamptz,
     pruned_at timestamptz)`,
  `REVOKE ALL ON ${JOIN_SCHEMA}.invites FROM PUBLIC`,
  `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${JOINERS_ROLE}') THEN CREATE ROLE ${JOINERS_ROLE} NOLOGIN; END IF; END $$`,
  `CREATE OR REPLACE FUNCTION ${JOIN_SCHEMA}.redeem() RETURNS bytea LANGUAGE plpgsql SECURITY DEFINER
     SET search_path = pg_catalog, pg_temp AS $fn$
   DECLARE sealed bytea;
   BEGIN
     UPDATE ${JOIN_SCHEMA}.invites SET redeemed_at = now(), redeemed_from = inet_client_addr()
      WHERE role = session_user AND redeemed_at IS NULL AND revoked_at IS NULL AND expires_at > now()
        AND inet_client_addr() <<= address
      RETURNING payload INTO sealed;
     IF NOT FOUND THEN
       RAISE EXCEPTION 'this invitation was already used, revoked, or has expired' USING ERRCODE = '28000';
     END IF;
     EXECUTE format('ALTER ROLE %I NOLOGIN', session_user);
     RETURN sealed;
   END $fn$`,
  `REVOKE ALL ON FUNCTION ${JOIN_SCHEMA}.redeem() FROM PUBLIC`,
  `GRANT USAGE ON SCHEMA ${JOIN_SCHEMA} TO ${JOINERS_ROLE}`,
  `GRANT EXECUTE ON FUNCTION ${JOIN_SCHEMA}.redeem() TO ${JOINERS_ROLE}`,
];

/** The schema, the joiners' group and redeem(), made or brought up to date (idempotent). */
export function joinSchemaStep(link: AdminLink, database: string, present: boolean): Step {
  // The database is closed to PUBLIC (the installer's REVOKE): the joiners may connect, nothing more.
  const grant = 'GRANT CONNECT ON DATABASE %I TO %I';
  const sql = SCHEMA_SQL;
  return {
    kind: 'database',
    title: present
      ? `PostgreSQL: schema ${JOIN_SCHEMA} and function ${JOIN_SCHEMA}.redeem() (brought up to date)`
      : `PostgreSQL: schema ${JOIN_SCHEMA} (invitations, sealed), role ${JOINERS_ROLE}, function ${JOIN_SCHEMA}.redeem()`,
    details: [...sql.map((s) => s.split('\n')[0]!.trim()), `GRANT CONNECT ON DATABASE ${database} TO ${JOINERS_ROLE}`],
    changes: true,
    async apply() {
      const session = await link.session();
      await session.query('BEGIN');
      try {
        for (const statement of sql) await session.query(statement);
        await executeQuoted(session, grant, [database, JOINERS_ROLE]);
        await session.query('COMMIT');
      } catch (error) {
        await session.query('ROLLBACK').catch(() => {});
        throw error;
      }
    },
    // Kept: an empty schema and a group without members grant nothing, and later invitations use them.
    async undo() {},
  };
}

export interface NewInvitation {
  id: string;
  role: string;
  secret: string;
  address: string;
  name: string | undefined;
  expiresAt: Date;
  sealed: Buffer;
  allowedByInvite: boolean;
}

/** The invitation's role (the secret's SCRAM verifier, VALID UNTIL its expiry) and its row, in one transaction. */
export function createInvitationStep(link: AdminLink, invite: NewInvitation): Step {
  const expires = invite.expiresAt.toISOString();
  return {
    kind: 'database',
    title: `PostgreSQL: invitation ${invite.id}: role ${invite.role} from ${invite.address} only, valid until ${expires}`,
    details: [
      `CREATE ROLE ${invite.role} LOGIN INHERIT IN ROLE ${JOINERS_ROLE} PASSWORD '<SCRAM-SHA-256 verifier of the token's secret>' VALID UNTIL '${expires}'`,
      `INSERT INTO ${JOIN_SCHEMA}.invites (id, role, address, name, expires_at, payload, allowed_by_invite) VALUES ('${invite.id}', '${invite.role}', '${invite.address}', ${invite.name === undefined ? 'NULL' : `'${invite.name}'`}, '${expires}', '<the connection string and CA, sealed with the secret>', ${invite.allowedByInvite})`,
    ],
    changes: true,
    async apply() {
      const session = await link.session();
      await session.query('BEGIN');
      try {
        await executeQuoted(session, `CREATE ROLE %I LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION IN ROLE %I PASSWORD %L VALID UNTIL %L`, [
          invite.role,
          JOINERS_ROLE,
          scramVerifier(invite.secret),
          expires,
        ]);
        await session.query(
          `INSERT INTO ${JOIN_SCHEMA}.invites (id, role, address, name, expires_at, payload, allowed_by_invite) VALUES ($1, $2, $3::cidr, $4, $5::timestamptz, decode($6, 'base64'), $7)`,
          [invite.id, invite.role, invite.address, invite.name ?? null, expires, invite.sealed.toString('base64'), invite.allowedByInvite],
        );
        await session.query('COMMIT');
      } catch (error) {
        await session.query('ROLLBACK').catch(() => {});
        throw error;
      }
    },
    async undo() {
      const session = await link.session();
      await session.query(`DELETE FROM ${JOIN_SCHEMA}.invites WHERE id = $1`, [invite.id]);
      await executeQuoted(session, 'DROP ROLE IF EXISTS %I', [invite.role]);
    },
  };
}

/**
 * Invitations that can no longer be redeemed lose their role (and, with the allow-list step, their
 * line); `revoke` ends an open one first. The rows stay, for --invites' history. Not undone: a
 * role whose secret nobody holds any more cannot be given back, and is not needed.
 */
export function retireInvitationsStep(link: AdminLink, invites: Invitation[], revoke: Invitation | undefined): Step {
  const roles = invites.map((i) => i.role);
  return {
    kind: 'database',
    title: revoke
      ? `PostgreSQL: revoke invitation ${revoke.id} (${revoke.address}${revoke.name ? `, ${revoke.name}` : ''}): role ${revoke.role} dropped, its sessions ended`
      : `PostgreSQL: prune ${invites.length} used, expired or revoked invitation${invites.length === 1 ? '' : 's'} (${invites.map((i) => i.id).join(', ')})`,
    details: [
      ...(revoke ? [`UPDATE ${JOIN_SCHEMA}.invites SET revoked_at = now() WHERE id = '${revoke.id}' AND redeemed_at IS NULL`] : []),
      ...roles.flatMap((role) => [`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${role}'`, `DROP ROLE IF EXISTS ${role}`]),
      `UPDATE ${JOIN_SCHEMA}.invites SET pruned_at = now() WHERE id IN (${invites.map((i) => `'${i.id}'`).join(', ')})`,
    ],
    changes: invites.length > 0,
    async apply() {
      const session = await link.session();
      await session.query('BEGIN');
      try {
        if (revoke) {
          // The same row lock redeem() takes: a join under way either finished first (then it is
          // used, not revoked) or finds the invitation revoked.
          const revoked = await session.query(
            `UPDATE ${JOIN_SCHEMA}.invites SET revoked_at = now() WHERE id = $1 AND redeemed_at IS NULL AND revoked_at IS NULL`,
            [revoke.id],
          );
          if (revoked.rowCount === 0) {
            const row = await session.query<{ redeemed: boolean }>(`SELECT redeemed_at IS NOT NULL AS redeemed FROM ${JOIN_SCHEMA}.invites WHERE id = $1`, [
              revoke.id,
            ]);
            if (row.rows[0]?.redeemed) throw new Error(`invitation ${revoke.id} was used while it was being revoked`);
          }
        }
        for (const role of roles) {
          await session.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [role]);
          await executeQuoted(session, 'DROP ROLE IF EXISTS %I', [role]);
        }
        await session.query(`UPDATE ${JOIN_SCHEMA}.invites SET pruned_at = now() WHERE id = ANY($1::text[])`, [invites.map((i) => i.id)]);
        await session.query('COMMIT');
      } catch (error) {
        await session.query('ROLLBACK').catch(() => {});
        throw error;
      }
    },
    async undo() {},
  };
}
