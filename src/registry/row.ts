// A server's row in the registry as a plan step: deleted by apply, put back (as stopped) by undo.
// `knocker server forget` and `knocker uninstall` both retire a row this way.
import { printableLine } from '../shared/printable.js';
import type pg from 'pg';
import { forgetServer, type RegisteredServer } from '../server/registry.js';
import type { Step } from '../system/plan.js';

/** A connection for one use: `close` ends it (or does nothing for a connection the caller keeps). */
export type OpenRegistry = () => Promise<{ client: pg.Client; close: () => Promise<void> }>;

export function forgetRowStep(open: OpenRegistry, row: RegisteredServer, target: string, restoredBy: string): Step {
  const use = async (work: (client: pg.Client) => Promise<unknown>) => {
    const { client, close } = await open();
    try {
      await work(client);
    } finally {
      await close();
    }
  };
  // Only a row this step deleted is put back: an undo of a DELETE that never happened claims nothing.
  let deleted = false;
  return {
    kind: 'database',
    title: `Take "${printableLine(row.name)}" out of the servers registry of ${target}`,
    details: [`DELETE FROM servers WHERE name = '${printableLine(row.name)}'`],
    changes: true,
    apply: () =>
      use(async (client) => {
        deleted = await forgetServer(client, row.name);
      }),
    // Back as stopped: a server that runs registers itself again at its next heartbeat anyway.
    undo: async () => {
      if (!deleted) return;
      await use((client) =>
        client.query(
          `INSERT INTO servers (name, listen, version, schema_version, state, instance, heartbeat_seconds, started_at, last_seen, stopped_at)
           VALUES ($1, $2, $3, $4, 'stopped', $5, 5, $6, $7, now()) ON CONFLICT (name) DO NOTHING`,
          [row.name, row.listen, row.version, row.schemaVersion, restoredBy, row.startedAt, row.lastSeen],
        ),
      );
    },
  };
}
