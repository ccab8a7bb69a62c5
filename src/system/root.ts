// The root every absolute path is taken under (CONTRACTS.md, "The root"). `/` is the real system;
// any other folder is a sandbox: services run as plain daemons there and database option 1 uses a
// private PostgreSQL cluster inside it.
import path from 'node:path';

/** Where things live, as absolute paths on the target system. `Root.path()` maps them under a root. */
export const PATHS = {
  etcDir: '/opt/knocknoc/etc',
  conf: '/opt/knocknoc/etc/knocknoc.conf',
  answers: '/opt/knocknoc/etc/install-answers.yaml',
  /** The connection string `knocker exposedb --init` printed for the other web nodes (0600, root). */
  exposedbUrl: '/opt/knocknoc/etc/exposedb-url',
  /** The cluster's CA, made by `knocker exposedb --init` on the primary: its key (0600) never leaves the host. */
  clusterCaDir: '/opt/knocknoc/etc/cluster-ca',
  clusterCaKey: '/opt/knocknoc/etc/cluster-ca/ca.key',
  clusterCaCert: '/opt/knocknoc/etc/cluster-ca/ca.crt',
  /** A web node's copy of the CA that verifies its database (`knocker install --database-ca`). */
  databaseCa: '/opt/knocknoc/etc/database-ca.pem',
  /** The primary's PostgreSQL server certificate and key (owned by the database's OS user), outside its data directory. */
  pgTlsDir: '/var/lib/knocknoc/tls',
  pgTlsCert: '/var/lib/knocknoc/tls/server.crt',
  pgTlsKey: '/var/lib/knocknoc/tls/server.key',
  logDir: '/var/log/knocknoc',
  installLog: '/var/log/knocknoc/install.log',
  exposedbLog: '/var/log/knocknoc/exposedb.log',
  runDir: '/run/knocknoc',
  /** One lock for every run that changes the host (install, exposedb). */
  installLock: '/run/knocknoc/knocker.lock',
  stateDir: '/var/lib/knocknoc',
  pgData: '/var/lib/knocknoc/postgresql',
  /** There while knocker creates the private cluster (initdb): a half-made cluster of a cut-off run is its own. */
  pgCreating: '/var/lib/knocknoc/postgresql.creating',
  pgSocketDir: '/run/knocknoc/postgresql',
  pgLog: '/var/log/knocknoc/postgresql.log',
  serverPid: '/run/knocknoc/knocknoc.pid',
  serverLog: '/var/log/knocknoc/knocknoc.log',
  serverUnit: '/etc/systemd/system/knocknoc.service',
  /** What knocker's operations commands (haproxy) did, and the runtime commands they sent. */
  opsLog: '/var/log/knocknoc/knocker.log',
  haproxyConf: '/etc/haproxy/haproxy.cfg',
  haproxyRunDir: '/run/haproxy',
  /** knocker's runtime API socket (level admin, mode 0600). */
  haproxyAdminSocket: '/run/haproxy/admin.sock',
  /** The dashboard's runtime API socket (level user: read-only). */
  haproxyStatusSocket: '/run/haproxy/status.sock',
  /** The master CLI (the same path as Debian's unit gives it). */
  haproxyMasterSocket: '/run/haproxy-master.sock',
  haproxyPid: '/run/haproxy.pid',
  haproxyStateDir: '/var/lib/haproxy',
  haproxyStateFile: '/var/lib/haproxy/server-state',
  haproxyLog: '/var/log/knocknoc/haproxy.log',
  /** There from writing a new haproxy.cfg until HAProxy has reloaded it: a cut-off run's reload is still owed. */
  haproxyReloadPending: '/var/lib/knocknoc/haproxy-reload-pending',
  /** knocker upgrade's journal of its progress (0600: the command may hold a token). */
  upgradeJournal: '/var/lib/knocknoc/upgrade.json',
  /** Held by a running knocker upgrade for its whole run. */
  upgradeLock: '/run/knocknoc/upgrade.lock',
} as const;

/**
 * Why a folder cannot be a sandbox root, or undefined. Its paths reach programs that parse them:
 * PostgreSQL's pg_ctl hands -D and -l to /bin/sh inside double quotes (where $, `, " and \ act),
 * unix_socket_directories and HAProxy's -S split on commas, HAProxy's configuration cannot quote a
 * ' inside a quoted word, and a control character has no place in a path. Such a folder is refused
 * before anything runs, rather than quoted for each of them.
 */
export function rootPathProblem(dir: string): string | undefined {
  const bad = [...new Set(dir.match(/[$`"\\',\u0000-\u001F\u007F]/g) ?? [])];
  if (bad.length === 0) return undefined;
  const shown = bad.map((c) => (c < ' ' || c === '\u007F' ? `\\x${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}` : c)).join(' ');
  return `the root folder's path holds ${bad.length === 1 ? 'a character' : 'characters'} it cannot have (${shown}): PostgreSQL's pg_ctl would hand it to /bin/sh, and HAProxy's configuration could not hold it; choose a path without $ \` " \\ ' , or control characters`;
}

export class Root {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
  }

  /** True when this is a sandbox folder rather than the real system. */
  get isSandbox(): boolean {
    return this.dir !== '/';
  }

  /** The real path of an absolute target path under this root. */
  path(absolute: string): string {
    if (!path.isAbsolute(absolute)) throw new Error(`not an absolute path: ${absolute}`);
    return this.isSandbox ? path.join(this.dir, absolute) : absolute;
  }
}

export const SYSTEM_ROOT = new Root('/');
