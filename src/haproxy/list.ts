// `knocker haproxy list`: the web nodes and listen addresses of the configuration in place (a read).
import { formatListen } from '../config/values.js';
import type { Output } from '../shared/output.js';
import type { Root } from '../system/root.js';
import { nodeAddress } from './config.js';
import { knockerSettings } from './installed.js';
import { describeSettings, inspectHaproxy } from './plan.js';

export async function haproxyList(root: Root, options: { json: boolean }, io: Output): Promise<number> {
  const settings = knockerSettings(await inspectHaproxy(root));
  if (options.json) {
    io.out(
      JSON.stringify(
        {
          bind: formatListen(settings.bind),
          tls: settings.tls ? { cert: settings.tls.cert, httpBind: formatListen(settings.tls.httpBind) } : null,
          nodes: settings.nodes.map((n) => ({ name: n.name, address: nodeAddress(n), role: n.backup ? 'backup' : 'active' })),
        },
        null,
        2,
      ),
    );
  } else {
    for (const line of describeSettings(settings)) io.out(line);
  }
  return 0;
}
