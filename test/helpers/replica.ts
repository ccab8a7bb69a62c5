// A real streaming standby of a test cluster, for the tests of web nodes following the primary:
// pg_basebackup -R -X stream with a replication slot from the primary (test set-up only; the
// product's `knocker standby init` is another module), its own address, port and socket folder,
// started as a hot standby. Every libpq client here connects from 127.0.0.1 whatever 127.0.0.x
// it goes to, so the primary's pg_hba.conf allows replication from 127.0.0.1 (see the research
// note on standbys, 4.9 trap 8).
import fs from 'node:fs/promises';
import path from 'node:path';
import { withAdminSession } from '../../src/postgres/admin.js';
import { startCluster, stopCluster, writeClusterSettings, type PrivateCluster } from '../../src/postgres/cluster.js';
import { generatePassword, scramVerifier } from '../../src/postgres/scram.js';
import { freePort } from '../../src/system/host.js';
import { run } from '../../src/system/run.js';
import { isRoot, lookupUser } from '../../src/system/users.js';
import type { TestCluster } from './pg.js';
import { waitFor } from './server.js';
import { makeTempDir } from './temp.js';

export interface TestStandby {
  cluster: PrivateCluster;
  slot: string;
  admin<T = Record<string, unknown>>(sql: string, values?: unknown[], database?: string): Promise<T[]>;
  /** Waits until the standby has replayed everything the primary had written when called (its insert position: with synchronous_commit off a commit may not be written yet). */
  caughtUp(): Promise<void>;
  /** pg_ctl promote; resolves once it accepts writes. */
  promote(): Promise<void>;
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  destroy(): Promise<void>;
}

async function chown(target: string, osUser: string): Promise<void> {
  if (!isRoot()) return;
  const user = (await lookupUser(osUser))!;
  await fs.chown(target, user.uid, user.gid);
}

/** Lets `hosts` (loopback "hosts") log in with a password to every database of the cluster, and reloads. */
export async function allowLogins(cluster: PrivateCluster & { admin: TestCluster['admin'] }, hosts: string[]): Promise<void> {
  await fs.appendFile(path.join(cluster.dataDir, 'pg_hba.conf'), hosts.map((h) => `host    all       all   ${h}/32  scram-sha-256\n`).join(''));
  await cluster.admin('SELECT pg_reload_conf()');
}

/**
 * Clones `primary` into a hot standby listening on `host` and waits until it streams (the
 * primary lists it in pg_stat_replication). `allow`: loopback hosts that may log in to it.
 */
export async function startTestStandby(
  primary: TestCluster,
  options: { host: string; name?: string; allow?: string[]; beforeStart?: (cluster: PrivateCluster) => Promise<void> },
): Promise<TestStandby> {
  const name = options.name ?? 'standby_1';
  const slot = name.replace(/[^a-z0-9_]/g, '_');
  const password = generatePassword();
  await primary.admin(`SELECT 1 FROM pg_roles WHERE rolname = 'test_replicator'`).then(async (rows) => {
    if (rows.length === 0) await primary.admin(`CREATE ROLE test_replicator LOGIN REPLICATION PASSWORD '${scramVerifier(password)}'`);
    else await primary.admin(`ALTER ROLE test_replicator PASSWORD '${scramVerifier(password)}'`);
  });
  await fs.appendFile(
    path.join(primary.dataDir, 'pg_hba.conf'),
    `host    replication  test_replicator  127.0.0.1/32  scram-sha-256\nhost    replication  test_replicator  ${options.host}/32  scram-sha-256\n`,
  );
  await primary.admin('SELECT pg_reload_conf()');

  const base = await makeTempDir('knocker-standby-');
  await chown(base, primary.osUser);
  const passfile = path.join(base, 'pgpass');
  await fs.writeFile(passfile, `*:*:*:test_replicator:${password}\n`, { mode: 0o600 });
  await chown(passfile, primary.osUser);
  const cluster: PrivateCluster = {
    bin: primary.bin,
    dataDir: path.join(base, 'data'),
    socketDir: path.join(base, 'sock'),
    logFile: path.join(base, 'postgresql.log'),
    host: options.host,
    port: await freePort(options.host),
    osUser: primary.osUser,
  };
  // The password comes from the passfile (-R then writes passfile=, never the password).
  await run(
    path.join(primary.bin.dir, 'pg_basebackup'),
    [
      '-h',
      primary.host,
      '-p',
      String(primary.port),
      '-U',
      'test_replicator',
      '-D',
      cluster.dataDir,
      '-R',
      '-X',
      'stream',
      '-C',
      '-S',
      slot,
      '--checkpoint=fast',
      '-w',
      '-d',
      `application_name=${name}`,
    ],
    { asUser: primary.osUser, env: { PGPASSFILE: passfile }, timeoutMs: 120_000 },
  );
  // pg_basebackup copied the primary's address, port and pg_hba.conf: this node's own ones.
  await writeClusterSettings(cluster);
  if (options.allow?.length)
    await fs.appendFile(path.join(cluster.dataDir, 'pg_hba.conf'), options.allow.map((h) => `host    all       all   ${h}/32  scram-sha-256\n`).join(''));
  await fs.writeFile(cluster.logFile, '');
  await chown(cluster.logFile, cluster.osUser);
  await options.beforeStart?.(cluster);
  await startCluster(cluster);
  const access = (database?: string) => ({ socketDir: cluster.socketDir, port: cluster.port, osUser: cluster.osUser, database });
  const admin = async <T>(sql: string, values?: unknown[], database?: string) =>
    withAdminSession(access(database), undefined, async (session) => (await session.query<T>(sql, values)).rows);
  await waitFor(
    `${name} to stream from the primary`,
    async () => {
      const rows = await primary.admin<{ state: string }>('SELECT state FROM pg_stat_replication WHERE application_name = $1', [name]);
      return rows[0]?.state === 'streaming' ? true : undefined;
    },
    60_000,
  );
  return {
    cluster,
    slot,
    admin,
    async caughtUp() {
      const [{ lsn }] = (await primary.admin<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn')) as [{ lsn: string }];
      await waitFor(
        'the standby to replay the primary',
        async () => ((await admin<{ done: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done', [lsn]))[0]?.done ? true : undefined),
        60_000,
      );
    },
    async promote() {
      await run(path.join(cluster.bin.dir, 'pg_ctl'), ['promote', '-w', '-t', '60', '-s', '-D', cluster.dataDir], {
        asUser: cluster.osUser,
        timeoutMs: 90_000,
      });
      await waitFor(
        'the promoted standby to accept writes',
        async () => ((await admin<{ r: boolean }>('SELECT pg_is_in_recovery() AS r'))[0]?.r === false ? true : undefined),
        60_000,
      );
    },
    stop: (mode = 'fast') => stopCluster(cluster, undefined, mode),
    async destroy() {
      await stopCluster(cluster, undefined, 'immediate').catch(() => {});
      await primary.admin('SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active', [slot]).catch(() => {});
      await fs.rm(base, { recursive: true, force: true });
    },
  };
}
