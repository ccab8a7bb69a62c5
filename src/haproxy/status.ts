// `knocker haproxy status`: the nodes as the running HAProxy sees them, from its read-only socket
// (show info, show stat): UP, DOWN, DRAIN, MAINT, the last check, sessions (a read).
import { formatListen } from '../config/values.js';
import type { Output } from '../shared/output.js';
import type { Root } from '../system/root.js';
import { age } from '../system/units.js';
import { BACKEND, nodeAddress } from './config.js';
import { knockerSettings, unreachable } from './installed.js';
import { inspectHaproxy } from './plan.js';
import { showInfo, showStat, type ServerStat } from './runtime.js';
import { haproxyPaths } from './service.js';

/** The backend's servers as `show stat` reports them, from the read-only socket. Exit 0 when every node is UP, else 1. */
export async function haproxyStatus(root: Root, options: { json: boolean }, io: Output): Promise<number> {
  const settings = knockerSettings(await inspectHaproxy(root));
  const socket = haproxyPaths(root).statusSocket;
  const [info, stat] = await Promise.all([showInfo(socket), showStat(socket)]).catch((error: unknown) => unreachable(error, root));
  const servers = settings.nodes.map((node) => ({ node, stat: stat.servers.find((s) => s.name === node.name && s.backend === BACKEND) }));
  const healthy = servers.every((s) => s.stat?.status.state === 'UP');
  if (options.json) {
    io.out(
      JSON.stringify(
        {
          haproxy: { version: info.version, pid: info.pid, uptimeSeconds: info.uptimeSeconds },
          healthy,
          servers: servers.map(({ node, stat: s }) => ({
            name: node.name,
            address: nodeAddress(node),
            role: node.backup ? 'backup' : 'active',
            ...(s
              ? {
                  status: s.status.state,
                  statusText: s.status.text,
                  check: { status: s.check.status, code: s.check.code ?? null, durationMs: s.check.durationMs ?? null, detail: s.check.detail },
                  sessions: s.sessions,
                  totalSessions: s.totalSessions,
                  secondsInState: s.secondsInState,
                }
              : { status: 'NOT LOADED', statusText: 'not in the running configuration' }),
          })),
        },
        null,
        2,
      ),
    );
    return healthy ? 0 : 1;
  }
  const up = servers.filter((s) => s.stat?.status.state === 'UP');
  io.out(
    `HAProxy ${info.version}, worker pid ${info.pid}, up ${age(info.uptimeSeconds)}; ${settings.tls ? 'https' : 'http'}://${formatListen(settings.bind)}: ` +
      `${up.filter((s) => !s.node.backup).length}/${servers.filter((s) => !s.node.backup).length} active nodes UP` +
      (servers.some((s) => s.node.backup) ? `, ${up.filter((s) => s.node.backup).length}/${servers.filter((s) => s.node.backup).length} backup` : ''),
  );
  const rows = [
    ['NAME', 'ADDRESS', 'ROLE', 'STATUS', 'LAST CHECK', 'SESSIONS', 'TOTAL', 'IN STATE'],
    ...servers.map(({ node, stat: s }) => [
      node.name,
      nodeAddress(node),
      node.backup ? 'backup' : 'active',
      s ? s.status.text : 'NOT LOADED',
      s ? checkText(s) : 'not in the running configuration (reload: knocker haproxy setup)',
      s ? String(s.sessions) : '',
      s ? String(s.totalSessions) : '',
      s ? age(s.secondsInState) : '',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows)
    io.out(
      row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    );
  return healthy ? 0 : 1;
}

function checkText(stat: ServerStat): string {
  const c = stat.check;
  if (c.status === '') return 'paused (MAINT)';
  const parts = [c.status, c.code === undefined ? undefined : String(c.code), c.durationMs === undefined ? undefined : `${c.durationMs}ms`].filter(Boolean);
  const detail = !c.status.startsWith('L7OK') && c.detail ? ` ${c.detail}` : '';
  return `${parts.join(' ')}${detail}`;
}
