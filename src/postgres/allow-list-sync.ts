// The allow-list's source of truth when the primary has a standby: a table, knocker.allow_list in
// database postgres, holding the lines of exposedb's block of pg_hba.conf as the primary wrote
// them. The primary writes it with every rewrite of its block (src/postgres/allow-list.ts); it
// replicates with the WAL, so the standby holds the same list as soon as it has replayed it.
//
// pg_hba.conf is a file on each host, so the other host's copy is written there by
// knocker.apply_allow_list(write), a SECURITY DEFINER function (owner: the cluster's superuser,
// EXECUTE granted to the replication role only) that takes no list from its caller: it reads the
// table on the server it runs on, checks every line (a comment, or one of exposedb's rule forms
// with a real CIDR), puts the lines between the block's BEGIN and END lines of that server's own
// pg_hba.conf (the rest of the file as it was; the block inserted before the first rule when
// missing), keeps the previous file as pg_hba.conf.bak, has PostgreSQL check the new file
// (pg_hba_file_rules) and puts the previous one back if it finds an error, then reloads. With
// write = false it only says whether the file lags ('lags') or not ('unchanged'; 'no-list' when
// the table has no list). It runs on a hot standby as well as on a primary (it writes no WAL).
// It is called by the primary right after a change (on the standby, once it replayed it), by
// `standby switchover` on the standby before it is promoted, by `standby promote` on itself before
// pg_promote, and by `exposedb --sync` by hand.
import { executeQuoted, type AdminSession } from './admin.js';
import { blockMarkers } from './hba.js';

export const ALLOW_LIST_SCHEMA = 'knocker';
export const APPLY_FUNCTION = `${ALLOW_LIST_SCHEMA}.apply_allow_list(boolean)`;

export type ApplyOutcome = 'changed' | 'unchanged' | 'lags' | 'no-list';

/** The function's body: `begin`/`end` are the block's marker lines; no caller input reaches the file. */
function applyBody(begin: string, end: string): string {
  const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
  return `DECLARE
  wanted text[];
  file text := current_setting('hba_file');
  body text;
  lines text[];
  outcome text[];
  n integer;
  b integer;
  e integer;
  at integer;
  l text;
  bad integer;
BEGIN
  SELECT rules INTO wanted FROM ${ALLOW_LIST_SCHEMA}.allow_list WHERE id = 1;
  IF wanted IS NULL THEN RETURN 'no-list'; END IF;
  FOREACH l IN ARRAY wanted LOOP
    CONTINUE WHEN l ~ '^# [^\\r\\n\\x01\\x02]*$';
    IF l !~ '^(host|hostssl) +[A-Za-z0-9_."$-]+ +[+]?[A-Za-z0-9_."$-]+ +[0-9A-Fa-f.:]+/[0-9]{1,3} +(scram-sha-256|reject)$' THEN
      RAISE EXCEPTION 'knocker.allow_list holds a line that is not one of the allow-list''s rules: %', l;
    END IF;
    PERFORM (regexp_split_to_array(l, ' +'))[4]::cidr;
  END LOOP;
  body := pg_read_file(file);
  IF body ~ '[\\r\\x01\\x02]' OR body ~ '(^|\\n)\\\\[.](\\n|$)' THEN
    RAISE EXCEPTION '% holds carriage returns or control characters: knocker does not rewrite it', file;
  END IF;
  lines := string_to_array(body, E'\\n');
  n := coalesce(array_length(lines, 1), 0);
  IF n > 0 AND lines[n] = '' THEN
    lines := lines[1:n - 1];
    n := n - 1;
  END IF;
  b := array_position(lines, ${lit(begin)});
  e := array_position(lines, ${lit(end)});
  IF b IS NULL AND e IS NULL THEN
    at := n + 1;
    FOR i IN 1..n LOOP
      IF lines[i] ~ '^# BEGIN .+ managed block \\(do not edit by hand\\)$' OR (btrim(lines[i]) <> '' AND lines[i] !~ '^\\s*#') THEN
        at := i;
        EXIT;
      END IF;
    END LOOP;
    outcome := lines[1:at - 1] || ARRAY[${lit(begin)}] || wanted || ARRAY[${lit(end)}, ''] || lines[at:n];
  ELSIF b IS NULL OR e IS NULL OR e < b OR array_position(lines, ${lit(begin)}, b + 1) IS NOT NULL OR array_position(lines, ${lit(end)}, e + 1) IS NOT NULL THEN
    RAISE EXCEPTION 'the exposedb managed block in % is damaged (its BEGIN/END lines are missing or repeated); fix it by hand', file;
  ELSE
    outcome := lines[1:b] || wanted || lines[e:n];
  END IF;
  IF outcome = lines THEN RETURN 'unchanged'; END IF;
  IF NOT write THEN RETURN 'lags'; END IF;
  -- One line a row, as they are (CSV with a delimiter and a quote that never occur; an empty line
  -- is NULL, which CSV writes as nothing).
  EXECUTE format('COPY (SELECT nullif(l, %L) FROM unnest(%L::text[]) WITH ORDINALITY AS t(l, k) ORDER BY k) TO %L WITH (FORMAT csv, DELIMITER %L, QUOTE %L)',
                 '', lines, file || '.bak', chr(2), chr(1));
  EXECUTE format('COPY (SELECT nullif(l, %L) FROM unnest(%L::text[]) WITH ORDINALITY AS t(l, k) ORDER BY k) TO %L WITH (FORMAT csv, DELIMITER %L, QUOTE %L)',
                 '', outcome, file, chr(2), chr(1));
  SELECT count(*) INTO bad FROM pg_hba_file_rules WHERE error IS NOT NULL;
  IF bad > 0 THEN
    EXECUTE format('COPY (SELECT nullif(l, %L) FROM unnest(%L::text[]) WITH ORDINALITY AS t(l, k) ORDER BY k) TO %L WITH (FORMAT csv, DELIMITER %L, QUOTE %L)',
                   '', lines, file, chr(2), chr(1));
    RAISE EXCEPTION 'PostgreSQL rejects % with knocker''s allow-list (% error(s)): the previous file was put back', file, bad;
  END IF;
  PERFORM pg_reload_conf();
  RETURN 'changed';
END`;
}

/**
 * The table and the function, made or brought up to date (on the primary: they replicate), and
 * EXECUTE for `replicationRole` when it exists. `session` is in database postgres.
 */
export async function ensureAllowListSync(session: AdminSession, replicationRole: string): Promise<void> {
  const { begin, end } = blockMarkers('exposedb');
  await executeQuoted(session, 'CREATE SCHEMA IF NOT EXISTS %I', [ALLOW_LIST_SCHEMA]);
  await executeQuoted(session, 'REVOKE ALL ON SCHEMA %I FROM PUBLIC', [ALLOW_LIST_SCHEMA]);
  await session.query(
    `CREATE TABLE IF NOT EXISTS ${ALLOW_LIST_SCHEMA}.allow_list (id integer PRIMARY KEY CHECK (id = 1), rules text[] NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())`,
  );
  await session.query(`REVOKE ALL ON ${ALLOW_LIST_SCHEMA}.allow_list FROM PUBLIC`);
  await executeQuoted(
    session,
    `CREATE OR REPLACE FUNCTION %I.apply_allow_list(write boolean) RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS %L`,
    [ALLOW_LIST_SCHEMA, applyBody(begin, end)],
  );
  await session.query(`REVOKE ALL ON FUNCTION ${APPLY_FUNCTION} FROM PUBLIC`);
  // A block written before the table existed (an older knocker) is its first list.
  await session.query(
    `INSERT INTO ${ALLOW_LIST_SCHEMA}.allow_list (id, rules)
       SELECT 1, f.lines[f.b + 1:f.e - 1]
         FROM (SELECT l AS lines, array_position(l, $1) AS b, array_position(l, $2) AS e
                 FROM string_to_array(pg_read_file(current_setting('hba_file')), E'\n') AS t(l)) f
        WHERE f.b IS NOT NULL AND f.e > f.b
       ON CONFLICT (id) DO NOTHING`,
    [begin, end],
  );
  const role = await session.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [replicationRole]);
  if (role.rowCount > 0) {
    await executeQuoted(session, 'GRANT USAGE ON SCHEMA %I TO %I', [ALLOW_LIST_SCHEMA, replicationRole]);
    await executeQuoted(session, `GRANT EXECUTE ON FUNCTION %I.apply_allow_list(boolean) TO %I`, [ALLOW_LIST_SCHEMA, replicationRole]);
  }
}

/** Records the block's lines (on the primary, in database postgres); returns the WAL position to wait for on the standby. */
export async function recordAllowList(session: AdminSession, rules: string[], replicationRole: string): Promise<string> {
  await session.query('BEGIN');
  try {
    await ensureAllowListSync(session, replicationRole);
    await session.query(
      `INSERT INTO ${ALLOW_LIST_SCHEMA}.allow_list (id, rules) VALUES (1, $1::text[]) ON CONFLICT (id) DO UPDATE SET rules = EXCLUDED.rules, updated_at = now()`,
      [rules],
    );
    await session.query('COMMIT');
  } catch (error) {
    await session.query('ROLLBACK').catch(() => {});
    throw error;
  }
  return (await session.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l;
}

/** An admin session here, or a pg client on the peer. */
interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>;
}

/** Whether the server has the function (a pair made by an older knocker has not, until the primary's next change). */
export async function hasApplyFunction(client: Queryable): Promise<boolean> {
  const { rows } = await client.query(`SELECT to_regprocedure('${APPLY_FUNCTION}') IS NOT NULL AS ok`);
  return Boolean(rows[0]?.ok);
}

/** knocker.apply_allow_list(write) on the server `client` is connected to (database postgres). */
export async function applyAllowList(client: Queryable, write: boolean): Promise<ApplyOutcome> {
  if (!(await hasApplyFunction(client))) return 'no-list';
  const { rows } = await client.query(`SELECT ${ALLOW_LIST_SCHEMA}.apply_allow_list($1) AS outcome`, [write]);
  const outcome = rows[0]?.outcome;
  if (outcome !== 'changed' && outcome !== 'unchanged' && outcome !== 'lags' && outcome !== 'no-list')
    throw new Error(`knocker.apply_allow_list answered ${outcome}`);
  return outcome;
}

/** How a rewrite of the primary's block reaches the table (and, through it, the standby). */
export interface AllowListSync {
  /** Records `rules` and brings the standby's file up to date; returns a note for the step's result. Throws only when recording fails. */
  record(rules: string[]): Promise<string | undefined>;
}
