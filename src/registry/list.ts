// `knocker server list [--json]`: every registered server, one a line, or JSON; changes nothing.
import { knockerCommand, shellWord } from '../shared/hint.js';
import type { Output } from '../shared/output.js';
import { printableLine } from '../shared/printable.js';
import { listServers } from '../server/registry.js';
import type { Root } from '../system/root.js';
import { age } from '../system/units.js';
import { secondsSince, stateWord, withRegistry } from './index.js';

export async function serverList(root: Root, options: { json: boolean }, io: Output): Promise<number> {
  const servers = await withRegistry(root, (client) => listServers(client));
  if (options.json) {
    io.out(
      JSON.stringify(
        servers.map((s) => ({
          name: s.name,
          listen: s.listen,
          state: stateWord(s),
          version: s.version,
          schemaVersion: s.schemaVersion,
          lastSeen: s.lastSeen.toISOString(),
          startedAt: s.startedAt.toISOString(),
        })),
        null,
        2,
      ),
    );
    return 0;
  }
  if (servers.length === 0) {
    io.err('No server is registered in this database yet.');
    return 0;
  }
  // Any holder of the nodes' role can write a row: each cell is shown on one line, escaped.
  const rows = [
    ['NAME', 'LISTEN', 'STATE', 'VERSION', 'LAST SEEN'],
    ...servers.map((s) => [printableLine(s.name), printableLine(s.listen), stateWord(s), printableLine(s.version), `${age(secondsSince(s.lastSeen))} ago`]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows) io.out(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
  const gone = servers.filter((s) => stateWord(s) !== 'online');
  if (gone.length > 0) io.err(`A server gone for good is retired with: ${knockerCommand(root, `server forget ${shellWord(printableLine(gone[0]!.name))}`)}`);
  return 0;
}
