// Runs as a child of knocker to open an administrator session on a local cluster. It starts as
// root, loads node-postgres, then drops to the cluster's OS owner (so peer authentication over the
// Unix socket lets it in as that user) and answers queries read as JSON lines on stdin.
// Real bind parameters travel with each query: nothing is interpolated into SQL text here.
import readline from 'node:readline';
import pg from 'pg';

interface Hello {
  osUser: string;
  uid: number;
  gid: number;
  socketDir: string;
  port: number;
  user: string;
  database: string;
}

interface Request {
  id: number;
  text: string;
  values?: unknown[];
}

function send(message: unknown): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function dropPrivileges(hello: Hello): void {
  if (process.getuid?.() !== 0 || hello.uid === 0) return;
  process.setgroups?.([hello.gid]);
  process.setgid?.(hello.gid);
  process.setuid?.(hello.uid);
}

async function main(): Promise<void> {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  let client: pg.Client | undefined;
  for await (const line of lines) {
    if (line.trim() === '') continue;
    const message = JSON.parse(line) as Hello | Request;
    if (!client) {
      const hello = message as Hello;
      try {
        dropPrivileges(hello);
        client = new pg.Client({ host: hello.socketDir, port: hello.port, user: hello.user, database: hello.database, application_name: 'knocker-admin' });
        client.on('error', () => {});
        await client.connect();
        send({ ready: true });
      } catch (error) {
        const err = error as { message?: string; code?: string };
        send({ ready: false, error: { message: err.message ?? String(error), code: err.code } });
        return;
      }
      continue;
    }
    const request = message as Request;
    try {
      const result = await client.query({ text: request.text, values: request.values });
      const results = Array.isArray(result) ? result : [result];
      const last = results[results.length - 1];
      send({ id: request.id, rows: last?.rows ?? [], rowCount: last?.rowCount ?? 0 });
    } catch (error) {
      const err = error as { message?: string; code?: string };
      send({ id: request.id, error: { message: err.message ?? String(error), code: err.code } });
    }
  }
  await client?.end().catch(() => {});
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`admin helper: ${String(error)}\n`);
    process.exit(1);
  },
);
