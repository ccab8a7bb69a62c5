// Knocknoc's database schema: ordered SQL migrations shipped with the package (migrations/NNN_name.sql),
// the schema version kept in the database, and applying what is pending under an advisory lock so
// that when several nodes start together exactly one migrates. Used by the installer (options 1
// and 2 create the schema) and by knocknoc-server on start.
import path from 'node:path';
import type pg from 'pg';
import { listPackageFolder, packageRoot, packageVersion, readPackageFile } from '../system/package.js';

export const MIGRATIONS_TABLE = 'knocknoc_schema_migrations';

/** Key of the session advisory lock held while migrating (any fixed 64-bit number unique to us). */
export const MIGRATION_LOCK_KEY = 4_871_220_415_106_239n;

export interface Migration {
  version: number;
  name: string;
  file: string;
  sql: string;
}

/** A release: this package's version and the migrations it ships, found in its install folder. */
export interface Release {
  root: string;
  version: string;
  migrations: Migration[];
  schemaVersion: number;
}

export function loadRelease(releaseRoot = packageRoot()): Release {
  const migrations = loadMigrations(releaseRoot);
  return { root: releaseRoot, version: packageVersion(releaseRoot), migrations, schemaVersion: releaseSchemaVersion(migrations) };
}

/** The migrations of a release, in order. Throws on gaps or duplicate numbers. */
export function loadMigrations(releaseRoot = packageRoot()): Migration[] {
  const dir = path.join(releaseRoot, 'migrations');
  const migrations = listPackageFolder('migrations', releaseRoot)
    .filter((f) => f.endsWith('.sql'))
    .map((file) => {
      const match = /^(\d+)_([A-Za-z0-9_-]+)\.sql$/.exec(file);
      if (!match) throw new Error(`migration file name ${file} is not NNN_name.sql`);
      return { version: Number(match[1]), name: match[2]!, file: path.join(dir, file), sql: readPackageFile(`migrations/${file}`, releaseRoot) };
    })
    .sort((a, b) => a.version - b.version);
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migrations must be numbered 1, 2, 3, …; found ${path.basename(m.file)} at position ${i + 1}`);
  });
  return migrations;
}

/** The schema version a release expects: its newest migration. */
export function releaseSchemaVersion(migrations: Migration[]): number {
  return migrations.length === 0 ? 0 : migrations[migrations.length - 1]!.version;
}

type Queryable = Pick<pg.Client, 'query'>;

/** The database's schema version, or undefined when it holds no Knocknoc schema. */
export async function databaseSchemaVersion(client: Queryable): Promise<number | undefined> {
  const exists = await client.query<{ present: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS present`, [MIGRATIONS_TABLE]);
  if (!exists.rows[0]?.present) return undefined;
  const result = await client.query<{ version: number | null }>(`SELECT max(version) AS version FROM ${MIGRATIONS_TABLE}`);
  return result.rows[0]?.version ?? 0;
}

export interface MigrationResult {
  from: number;
  to: number;
  applied: number[];
}

/**
 * Applies pending migrations under the advisory lock, each in its own transaction together with
 * its row in the migrations table. A node that waited for the lock finds nothing left to do.
 * A database newer than the release is left alone (the caller reports out-of-step).
 */
export async function migrate(client: Queryable, migrations: Migration[], appliedBy: string): Promise<MigrationResult> {
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
  try {
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (
         version    integer PRIMARY KEY,
         name       text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now(),
         applied_by text NOT NULL
       )`,
    );
    const from = (await databaseSchemaVersion(client)) ?? 0;
    const applied: number[] = [];
    for (const migration of migrations) {
      if (migration.version <= from) continue;
      await client.query('BEGIN');
      try {
        await client.query(migration.sql);
        await client.query(`INSERT INTO ${MIGRATIONS_TABLE} (version, name, applied_by) VALUES ($1, $2, $3)`, [migration.version, migration.name, appliedBy]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw new Error(`migration ${path.basename(migration.file)} failed: ${(error as Error).message}`);
      }
      applied.push(migration.version);
    }
    return { from, to: Math.max(from, releaseSchemaVersion(migrations)), applied };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]).catch(() => {});
  }
}
