// The stand-in web nodes of bench/status-dashboard.ts: ONE process serving `--count` /_status
// endpoints, each on a port of its own, and registering each in the servers registry with the
// product's own register(). Their answers are made by the product's own request handler
// (requestHandler and statusBody of src/server/http.ts) over a real database check shared by all
// (CHECK_SQL, reused for 1 s as a real node reuses it); one UPDATE every 5 s heartbeats them all.
// Request lines are discarded (a real node writes them to its log). It prints one JSON line,
// {"endpoints": [{name, host, port}]}, once every endpoint listens and is registered, and exits
// when its stdin closes (so it never outlives the benchmark).
//
//   node bench/out/bench/status-endpoints.js --url URL --source 127.0.0.170 --hosts 127.0.0.170,127.0.0.171 --count 197 --first 4
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { connect } from '../src/postgres/connect.js';
import { parseDatabaseUrl } from '../src/postgres/url.js';
import { loadRelease } from '../src/schema/index.js';
import { TrustedForwarders } from '../src/server/client-address.js';
import type { DatabaseHealth } from '../src/server/database.js';
import { requestHandler, type NodeFacts } from '../src/server/http.js';
import { serverLog } from '../src/server/log.js';
import { CHECK_SQL, listServers, register, type CheckRow } from '../src/server/registry.js';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    source: { type: 'string' },
    hosts: { type: 'string' },
    count: { type: 'string', default: '197' },
    first: { type: 'string', default: '1' },
  },
});
const HEARTBEAT_SECONDS = 5;

async function main(): Promise<void> {
  const url = parseDatabaseUrl(args.url ?? '');
  if (!url.ok) throw new Error(`--url: ${url.error}`);
  const hosts = (args.hosts ?? '127.0.0.1').split(',');
  const count = Number(args.count);
  const first = Number(args.first);
  const release = loadRelease();
  const client = await connect(url.value, { sourceAddress: args.source, applicationName: 'bench status-endpoints' });

  let health: DatabaseHealth = { reachable: true, schemaVersion: release.schemaVersion };
  let checkedAt = 0;
  let checking: Promise<DatabaseHealth> | undefined;
  const check = async (): Promise<DatabaseHealth> => {
    if (Date.now() - checkedAt < 1_000) return health;
    checking ??= client
      .query<CheckRow>(CHECK_SQL)
      .then(
        (r) => ({ reachable: true, schemaVersion: r.rows[0]?.schema_version ?? undefined }),
        () => ({ reachable: false, schemaVersion: undefined }),
      )
      .then((h) => {
        health = h;
        checkedAt = Date.now();
        checking = undefined;
        return h;
      });
    return checking;
  };

  const log = serverLog({ write: () => true });
  const trusted = new TrustedForwarders(['127.0.0.0/8']);
  const servers: http.Server[] = [];
  const endpoints: Array<{ name: string; host: string; port: number }> = [];
  for (let i = 0; i < count; i += 1) {
    const host = hosts[i % hosts.length]!;
    const server = http.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port: 0, exclusive: true }, () => resolve());
    });
    const port = (server.address() as { port: number }).port;
    const name = `web-${first + i}`;
    const node: NodeFacts = { name, listen: `${host}:${port}`, version: release.version, schemaVersion: release.schemaVersion, startedAt: Date.now() };
    server.on('request', requestHandler({ node, trusted, log, health: check, servers: () => listServers(client), stopping: () => false }));
    server.keepAliveTimeout = 5_000;
    servers.push(server);
    endpoints.push({ name, host, port });
    await register(client, {
      name,
      listen: node.listen,
      version: release.version,
      schemaVersion: release.schemaVersion,
      instance: randomUUID(),
      heartbeatSeconds: HEARTBEAT_SECONDS,
    });
  }
  const names = endpoints.map((e) => e.name);
  const beat = setInterval(() => {
    client
      .query(`UPDATE servers SET last_seen = now() WHERE name = ANY($1)`, [names])
      .catch((error: Error) => process.stderr.write(`heartbeat: ${error.message}\n`));
  }, HEARTBEAT_SECONDS * 1000);
  process.stdout.write(`${JSON.stringify({ endpoints })}\n`);

  const stop = () => {
    clearInterval(beat);
    for (const server of servers) server.closeAllConnections();
    process.exit(0);
  };
  process.stdin.on('end', stop).on('close', stop).resume();
  process.on('SIGTERM', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`status-endpoints: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
