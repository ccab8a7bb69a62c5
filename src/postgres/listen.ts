// Where PostgreSQL listens, and the one change of exposedb that needs a restart: listen_addresses
// through ALTER SYSTEM, checked first with `postgres -C` (what a restart would read), then the
// restart and a check that the server now listens where the other web nodes reach it.
import path from 'node:path';
import { executeQuoted, type AdminLink, type AdminSession } from './admin.js';
import { hbaErrors } from './hba.js';
import type { LocalCluster } from './locate.js';
import type { Logger } from '../system/log.js';
import { run } from '../system/run.js';
import type { Step } from '../system/plan.js';

/** listen_addresses once exposed: every address (IPv4 and IPv6). */
export const LISTEN_EVERYWHERE = '*';

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

/**
 * Whether PostgreSQL listens where the other web nodes reach it: every address on a real host; a
 * sandbox root's private cluster is a "host" of its own address, where it listens already.
 */
export function listensExternally(setting: string, cluster?: Pick<LocalCluster, 'sandbox' | 'address'>): boolean {
  const addresses = setting.split(',').map((a) => a.trim());
  if (cluster?.sandbox && cluster.address !== undefined && addresses.includes(cluster.address)) return true;
  return addresses.some((a) => ['*', '0.0.0.0', '::'].includes(a));
}

export async function readListen(session: AdminSession): Promise<ListenFacts> {
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

/**
 * What a restart would read: `postgres -C` parses every configuration file as a start does (an
 * invalid value that pg_file_settings only calls "could not be applied" stops it) and prints the
 * resulting listen_addresses. A restart is only ever tried when this passes.
 */
export async function startConfig(start: StartFiles, log?: Logger): Promise<{ ok: true; listen: string } | { ok: false; problem: string }> {
  const result = await run(path.join(start.bindir, 'postgres'), ['-C', 'listen_addresses', `--config-file=${start.configFile}`, '-D', start.dataDirectory], {
    asUser: start.osUser,
    allowFailure: true,
    log,
    timeoutMs: 30_000,
  });
  if (result.exitCode === 0) return { ok: true, listen: result.stdout.trim() };
  const messages = result.stderr
    .split('\n')
    .map((line) => /\b(?:LOG|FATAL|ERROR):\s+(.*)$/.exec(line)?.[1])
    .filter((m): m is string => Boolean(m));
  return { ok: false, problem: messages.join('; ') || result.stderr.trim() || `postgres -C exited with ${result.exitCode}` };
}

/** Where the cluster must listen for the other nodes: every address, or a sandbox root's own. */
export function wantedListen(cluster: Pick<LocalCluster, 'sandbox' | 'address'>): string {
  return cluster.sandbox && cluster.address !== undefined ? cluster.address : LISTEN_EVERYWHERE;
}

/** listen_addresses through ALTER SYSTEM (it wins over postgresql.conf), then a restart and a wait until it accepts connections. */
export function listenStep(link: AdminLink, cluster: LocalCluster, facts: { listen: ListenFacts; start: StartFiles }, log: Logger): Step {
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
      if (hba.length > 0)
        throw new Error(`PostgreSQL would not start again with pg_hba.conf (${hba.map((e) => `line ${e.line}: ${e.error}`).join('; ')}); it was not restarted`);
      restarted = true;
      await cluster.restart(log);
      const now = await readListen(await link.reopen());
      if (!listensExternally(now.setting, cluster)) {
        throw new Error(
          `after the restart PostgreSQL still listens on '${now.setting}' (set by ${now.source}); a command-line option or a later configuration file may override ALTER SYSTEM`,
        );
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
