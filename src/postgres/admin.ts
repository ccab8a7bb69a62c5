// Administrator sessions on a local cluster, as its OS owner over the Unix socket (peer
// authentication), with real bind parameters. When we are that owner already the session is
// in-process; as root it runs in a child that drops to the owner (admin-helper.ts).
import readline from 'node:readline';
import { execa } from 'execa';
import { errorMessage } from '../errors.js';
import type { Logger } from '../system/log.js';
import { adminHelperProgram } from '../system/package.js';
import { lookupUser, type OsUser } from '../system/users.js';
import { waitFor } from '../system/wait.js';

export interface ClusterAccess {
  /** Folder of the cluster's Unix socket. */
  socketDir: string;
  port: number;
  /** OS user owning the cluster (its superuser role has the same name). */
  osUser: string;
  /** Database to connect to; default `postgres`. */
  database?: string;
}

export interface QueryResult<T> {
  rows: T[];
  rowCount: number;
}

export interface AdminSession {
  query<T = Record<string, unknown>>(text: string, values?: unknown[]): Promise<QueryResult<T>>;
  close(): Promise<void>;
}

export class SqlError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code: string | undefined) {
    super(message);
    this.code = code;
  }
}

async function inProcessSession(access: ClusterAccess): Promise<AdminSession> {
  // Loaded here: as root the driver runs in the helper, and a short command need not load it.
  const { default: pg } = await import('pg');
  const client = new pg.Client({
    host: access.socketDir,
    port: access.port,
    user: access.osUser,
    database: access.database ?? 'postgres',
    application_name: 'knocker-admin',
  });
  client.on('error', () => {});
  await client.connect();
  return {
    async query<T>(text: string, values?: unknown[]) {
      try {
        const result = await client.query({ text, values });
        return { rows: result.rows as T[], rowCount: result.rowCount ?? 0 };
      } catch (error) {
        throw new SqlError(errorMessage(error), (error as { code?: string }).code);
      }
    },
    close: () => client.end().catch(() => {}),
  };
}

function startHelper() {
  const [program, ...args] = adminHelperProgram() as [string, ...string[]];
  return execa(program, args, {
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
    reject: false,
    buffer: false,
  });
}

async function helperSession(access: ClusterAccess, child: ReturnType<typeof startHelper>, owner: Promise<OsUser | undefined>): Promise<AdminSession> {
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const lines = readline.createInterface({ input: child.stdout! });
  const waiting: Array<(line: string | undefined) => void> = [];
  lines.on('line', (line) => waiting.shift()?.(line));
  lines.on('close', () => {
    while (waiting.length > 0) waiting.shift()?.(undefined);
  });
  const exchange = (message: unknown): Promise<string | undefined> =>
    new Promise((resolve) => {
      waiting.push(resolve);
      child.stdin!.write(`${JSON.stringify(message)}\n`);
    });
  const user = await owner.catch(() => undefined);
  if (!user) {
    child.stdin!.end();
    await child;
    throw new SqlError(`there is no OS user "${access.osUser}" to own the PostgreSQL cluster`, undefined);
  }
  const hello = await exchange({
    osUser: access.osUser,
    uid: user.uid,
    gid: user.gid,
    socketDir: access.socketDir,
    port: access.port,
    user: access.osUser,
    database: access.database ?? 'postgres',
  });
  const greeting = hello ? (JSON.parse(hello) as { ready: boolean; error?: { message: string; code?: string } }) : undefined;
  if (!greeting?.ready) {
    child.stdin!.end();
    await child;
    throw new SqlError(greeting?.error?.message ?? `the admin session did not start: ${stderr.trim()}`, greeting?.error?.code);
  }
  let id = 0;
  // One query at a time, in order: callers await each query anyway.
  let queue: Promise<unknown> = Promise.resolve();
  return {
    query<T>(text: string, values?: unknown[]) {
      const next = queue.then(async () => {
        id += 1;
        const line = await exchange({ id, text, values });
        if (line === undefined) throw new SqlError(`the admin session ended unexpectedly: ${stderr.trim()}`, undefined);
        const reply = JSON.parse(line) as { rows?: T[]; rowCount?: number; error?: { message: string; code?: string } };
        if (reply.error) throw new SqlError(reply.error.message, reply.error.code);
        return { rows: reply.rows ?? [], rowCount: reply.rowCount ?? 0 };
      });
      queue = next.catch(() => {});
      return next;
    },
    async close() {
      child.stdin!.end();
      await child;
    },
  };
}

/** Opens an administrator session on a local cluster. */
export async function openAdminSession(access: ClusterAccess, log?: Logger): Promise<AdminSession> {
  log?.info(`admin session as ${access.osUser} on ${access.socketDir}:${access.port}/${access.database ?? 'postgres'}`);
  const owner = lookupUser(access.osUser);
  // As root, the helper process starts while the owner is looked up: its start-up is most of the cost.
  if (process.getuid?.() === 0 && access.osUser !== 'root') return helperSession(access, startHelper(), owner);
  const user = await owner;
  if (!user) throw new SqlError(`there is no OS user "${access.osUser}" to own the PostgreSQL cluster`, undefined);
  if (process.getuid?.() === user.uid) return inProcessSession(access);
  throw new SqlError(`administering this cluster needs root or the "${access.osUser}" user`, undefined);
}

export async function withAdminSession<T>(access: ClusterAccess, log: Logger | undefined, work: (session: AdminSession) => Promise<T>): Promise<T> {
  const session = await openAdminSession(access, log);
  try {
    return await work(session);
  } finally {
    await session.close();
  }
}

/**
 * Runs a utility statement (CREATE ROLE, ALTER SYSTEM, …) that cannot take bind parameters: the
 * database itself quotes each argument into the template with format() (%I identifiers, %L
 * literals), then the quoted statement is executed.
 */
export async function executeQuoted(session: AdminSession, template: string, args: string[]): Promise<void> {
  const placeholders = args.map((_, i) => `$${i + 1}::text`).join(', ');
  const result = await session.query<{ statement: string }>(`SELECT format($${args.length + 1}::text, ${placeholders}) AS statement`, [...args, template]);
  await session.query(result.rows[0]!.statement);
}

/** An administrator session that is opened when first needed and opened again after a restart. */
export interface AdminLink {
  session(): Promise<AdminSession>;
  /** Drops the current session (the server restarted) and waits until a new one opens. */
  reopen(timeoutMs?: number): Promise<AdminSession>;
  close(): Promise<void>;
}

export function adminLink(access: ClusterAccess, log?: Logger): AdminLink {
  let current: Promise<AdminSession> | undefined;
  const drop = async () => {
    const previous = current;
    current = undefined;
    await previous?.then((s) => s.close()).catch(() => {});
  };
  return {
    session() {
      if (!current) {
        const opening = openAdminSession(access, log);
        // A failed open is not kept: the next call tries again.
        opening.catch(() => {
          if (current === opening) current = undefined;
        });
        current = opening;
      }
      return current;
    },
    async reopen(timeoutMs = 60_000) {
      await drop();
      // 57P03: the database system is starting up; a missing socket: not listening yet. The
      // timeout names the last refusal.
      const session = await waitFor('PostgreSQL to accept the admin session again', () => openAdminSession(access, log), { timeoutMs });
      current = Promise.resolve(session);
      return session;
    },
    close: drop,
  };
}
