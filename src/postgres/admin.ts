// Administrator sessions on a local cluster, as its OS owner over the Unix socket (peer
// authentication), with real bind parameters. When we are that owner already the session is
// in-process; as root it runs in a child that drops to the owner (admin-helper.ts).
import readline from 'node:readline';
import { execa } from 'execa';
import pg from 'pg';
import { errorMessage } from '../errors.js';
import type { Logger } from '../system/log.js';
import { builtFile } from '../system/package.js';
import { lookupUser } from '../system/users.js';

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

async function helperSession(access: ClusterAccess, uid: number, gid: number): Promise<AdminSession> {
  const child = execa(process.execPath, [builtFile('postgres/admin-helper.js')], {
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
    reject: false,
    buffer: false,
  });
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
      child.stdin!.write(JSON.stringify(message) + '\n');
    });
  const hello = await exchange({
    osUser: access.osUser,
    uid,
    gid,
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
  const owner = await lookupUser(access.osUser);
  if (!owner) throw new SqlError(`there is no OS user "${access.osUser}" to own the PostgreSQL cluster`, undefined);
  log?.info(`admin session as ${access.osUser} on ${access.socketDir}:${access.port}/${access.database ?? 'postgres'}`);
  if (process.getuid?.() === owner.uid) return inProcessSession(access);
  if (process.getuid?.() !== 0) {
    throw new SqlError(`administering this cluster needs root or the "${access.osUser}" user`, undefined);
  }
  return helperSession(access, owner.uid, owner.gid);
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
