// `knocker haproxy …` (CONTRACTS.md): a local HAProxy in front of the web nodes; the work is in
// src/haproxy/, loaded when one runs.
import path from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { rootOf, type CommandContext } from './context.js';
import { collect, jsonNeedsDryRun, once } from './options.js';

const haproxyModule = () => import('../haproxy/index.js');

export function haproxyCommand(program: Command, ctx: CommandContext): void {
  const haproxy = program
    .command('haproxy')
    .description('a local HAProxy in front of the web nodes, health-checked on /_status')
    .addHelpText(
      'after',
      [
        '',
        'Nodes are written NAME=HOST:PORT (NAME is also the persistence cookie). setup, add and remove',
        'rewrite /etc/haproxy/haproxy.cfg: checked with haproxy -c before it replaces the old one (kept as',
        '.bak), then HAProxy is reloaded without dropping connections, keeping DRAIN and MAINT. A change',
        'that fails is undone and the old configuration keeps serving.',
        '',
        'Exit codes: 0 done (status: every node UP), 1 status: a node is not UP, 2 invalid input (nothing',
        'changed), 3 preflight failed or HAProxy not set up or not answering, 4 failed and undone, 5 failed',
        'and not fully undone.',
      ].join('\n'),
    );

  haproxy
    .command('setup')
    .description('write the configuration for these web nodes and start (or reload) HAProxy')
    .argument('[nodes...]', 'web nodes, NAME=HOST:PORT (default: the nodes of the configuration in place)')
    .option('--backup <node>', 'a hot/cold standby NAME=HOST:PORT: serves only while every active node is down (repeatable)', collect)
    .option('--from-registry', 'every server registered in the shared database (its servers table)')
    .option('--conn <uri>', 'with --from-registry: the database connection string (default: DatabaseURL in knocknoc.conf)')
    .option('--bind <ip:port>', 'where HAProxy listens (default: the address in place, else 0.0.0.0:80, or 0.0.0.0:443 with --cert)')
    .option('--cert <pem>', 'serve HTTPS with this PEM file (certificate chain and private key); plain HTTP redirects to it')
    .option('--no-cert', 'serve plain HTTP again (drops the certificate in place)')
    .option('--http-bind <ip:port>', 'with --cert: where plain HTTP is redirected to HTTPS (default: the --bind address, port 80)')
    .option(
      '--metrics-bind <ip:port>',
      "where HAProxy's own Prometheus exporter answers GET /metrics (default: the address in place, else 127.0.0.1:8405); it has no authentication",
      once('--metrics-bind'),
    )
    .option('--no-metrics', 'no Prometheus exporter')
    .option('--dry-run', 'check and print the plan (the configuration diff, the reload); change nothing')
    .option('--json', 'with --dry-run: machine-readable output')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  knocker haproxy setup web-1=192.0.2.11:8756 web-2=192.0.2.12:8756 --bind 0.0.0.0:80',
        '  knocker haproxy setup --from-registry --backup web-3=192.0.2.13:8756',
        '  knocker haproxy setup web-1=192.0.2.11:8756 --cert /etc/haproxy/knocknoc.pem',
      ].join('\n'),
    )
    .action(
      async (
        nodes: string[],
        options: {
          backup?: string[];
          fromRegistry?: boolean;
          conn?: string;
          bind?: string;
          cert?: string | false;
          httpBind?: string;
          metrics: boolean;
          metricsBind?: string;
          dryRun?: boolean;
          json?: boolean;
        },
        command: Command,
      ) => {
        jsonNeedsDryRun(options);
        const { haproxySetup } = await haproxyModule();
        ctx.exit(
          await haproxySetup(
            rootOf(command, ctx),
            {
              nodes,
              backup: options.backup ?? [],
              fromRegistry: Boolean(options.fromRegistry),
              conn: options.conn,
              bind: options.bind,
              cert: typeof options.cert === 'string' ? path.resolve(options.cert) : options.cert,
              httpBind: options.httpBind,
              metrics: options.metrics,
              metricsBind: options.metricsBind,
              dryRun: Boolean(options.dryRun),
              json: Boolean(options.json),
            },
            ctx.io,
          ),
        );
      },
    );

  haproxy
    .command('add')
    .description('add web nodes to the configuration and reload HAProxy')
    .argument('[nodes...]', 'web nodes, NAME=HOST:PORT')
    .option('--backup <node>', 'a hot/cold standby NAME=HOST:PORT (repeatable)', collect)
    .option('--dry-run', 'print the plan; change nothing')
    .option('--json', 'with --dry-run: machine-readable output')
    .action(async (nodes: string[], options: { backup?: string[]; dryRun?: boolean; json?: boolean }, command: Command) => {
      jsonNeedsDryRun(options);
      const { haproxyAdd } = await haproxyModule();
      ctx.exit(await haproxyAdd(rootOf(command, ctx), nodes, options.backup ?? [], { dryRun: Boolean(options.dryRun), json: Boolean(options.json) }, ctx.io));
    });

  haproxy
    .command('remove')
    .description('remove web nodes from the configuration and reload HAProxy')
    .argument('<names...>', 'node names')
    .option('--dry-run', 'print the plan; change nothing')
    .option('--json', 'with --dry-run: machine-readable output')
    .action(async (names: string[], options: { dryRun?: boolean; json?: boolean }, command: Command) => {
      jsonNeedsDryRun(options);
      const { haproxyRemove } = await haproxyModule();
      ctx.exit(await haproxyRemove(rootOf(command, ctx), names, { dryRun: Boolean(options.dryRun), json: Boolean(options.json) }, ctx.io));
    });

  haproxy
    .command('list')
    .description('the web nodes and listen addresses of the configuration')
    .option('--json', 'machine-readable output')
    .action(async (options: { json?: boolean }, command: Command) => {
      const { haproxyList } = await haproxyModule();
      ctx.exit(await haproxyList(rootOf(command, ctx), { json: Boolean(options.json) }, ctx.io));
    });

  const rotation: Array<['drain' | 'maint' | 'ready', string]> = [
    ['drain', 'take a node out of load balancing: no new sessions, clients holding its cookie still reach it'],
    ['maint', 'put a node in maintenance: no traffic at all, health checks paused (kept across reloads)'],
    ['ready', 'bring a node back into rotation, only after it passes a health check'],
  ];
  for (const [action, description] of rotation) {
    const sub = haproxy.command(action).description(description).argument('<name>', 'node name');
    if (action === 'ready') sub.option('--timeout <seconds>', 'how long to wait for a passing check; it stays out of rotation if none passes', '30');
    sub.action(async (name: string, options: { timeout?: string }, command: Command) => {
      const timeoutSeconds = Number(options.timeout ?? 30);
      if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new UsageError(`--timeout: "${options.timeout}" is not a number of seconds`);
      const { haproxyRotation } = await haproxyModule();
      ctx.exit(await haproxyRotation(rootOf(command, ctx), action, name, { timeoutSeconds }, ctx.io));
    });
  }

  haproxy
    .command('status')
    .description('the nodes as HAProxy sees them (show stat on its read-only socket): UP, DOWN, DRAIN, MAINT, last check, sessions')
    .option('--json', 'machine-readable output')
    .action(async (options: { json?: boolean }, command: Command) => {
      const { haproxyStatus } = await haproxyModule();
      ctx.exit(await haproxyStatus(rootOf(command, ctx), { json: Boolean(options.json) }, ctx.io));
    });
}
