// pg_autoctl on a data host of an automatic pair, found through /var/lib/knocknoc/ha/node.json
// (HaNodeState): run as the database user with exactly the keeper's environment (env -i: its own
// XDG folders, so two nodes on one machine never share config or state; its passfile, so no
// password is ever in a URI or argv; under a sandbox root the socket folder through pg_autoctl's
// PG_REGRESS_SOCK_DIR hook). Every command that asks or moves an automatic pair goes through here.
import path from 'node:path';
import type { Logger } from '../system/log.js';
import { PATHS, type Root } from '../system/root.js';
import { run } from '../system/run.js';
import type { HaNodeState } from './node-state.js';

export const DB_USER = 'postgres';

/** The one environment of pg_autoctl (monitor and keepers alike): nothing inherited, its XDG folders, its passfile. */
export function autoctlEnvironment(parts: { home: string; xdg: string; passfile: string; socket?: string }): Record<string, string> {
  return {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    LANG: 'C.UTF-8',
    HOME: parts.home,
    XDG_CONFIG_HOME: path.join(parts.xdg, 'config'),
    XDG_DATA_HOME: path.join(parts.xdg, 'share'),
    XDG_RUNTIME_DIR: path.join(parts.xdg, 'run'),
    PGPASSFILE: parts.passfile,
    ...(parts.socket ? { PG_REGRESS_SOCK_DIR: parts.socket } : {}),
  };
}

/** The keeper's environment on this data host (a sandbox root's socket folder is its own). */
export function keeperEnv(root: Root, state: HaNodeState): Record<string, string> {
  return autoctlEnvironment({
    home: path.dirname(state.pgdata),
    xdg: state.xdg,
    passfile: state.passfile,
    ...(root.isSandbox ? { socket: root.path(PATHS.pgSocketDir) } : {}),
  });
}

/** The one way pg_autoctl is run: as the database user with exactly `env` (env -i: nothing of ours leaks in). */
export function runAutoctl(env: Record<string, string>, args: string[], options: { cwd: string; log?: Logger; allowFailure?: boolean; timeoutMs: number }) {
  const pairs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  return run('env', ['-i', ...pairs, 'pg_autoctl', ...args], {
    asUser: DB_USER,
    log: options.log,
    timeoutMs: options.timeoutMs,
    allowFailure: options.allowFailure ?? false,
    cwd: options.cwd,
  });
}

/** pg_autoctl ARGS --pgdata PGDATA as the database user, with exactly the keeper's environment. */
export function keeperCtl(root: Root, state: HaNodeState, args: string[], options: { log?: Logger; allowFailure?: boolean; timeoutMs?: number } = {}) {
  return runAutoctl(keeperEnv(root, state), [...args, '--pgdata', state.pgdata], {
    ...options,
    timeoutMs: options.timeoutMs ?? 60_000,
    cwd: path.dirname(state.pgdata),
  });
}
