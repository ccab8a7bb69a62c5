// On a host of knocker's standby pair, the replication columns (pg_stat_replication's state and
// positions, the slots) are read as `knocker standby status` reads them, not with the web nodes'
// login, which lacks pg_monitor: the peer as the replication role (its passfile and the cluster's
// CA in STANDBY_PATHS, TLS verify-full, from this host's own address), this host's own cluster
// through its admin session. A host without the pair's state file has none of this: undefined,
// and status reads with the nodes' login as before. One session per host, kept between refreshes
// and opened again after a failure.
import fs from 'node:fs/promises';
import type pg from 'pg';
import { formatHostPort, type HostPort } from '../postgres/url.js';
import type { AdminLink } from '../postgres/admin.js';
import { existingNode, linkTo, readState, type Endpoint } from '../standby/node.js';
import { connectPeer } from '../standby/peer.js';
import { STANDBY_PATHS } from '../standby/paths.js';
import type { Root } from '../system/root.js';

export interface ReplicationQuery {
  query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

type Session = ReplicationQuery & { close(): Promise<void> };

const key = (at: Endpoint | HostPort) => formatHostPort(at);

export class PairSessions {
  private readonly open = new Map<string, Promise<Session | undefined>>();

  constructor(private readonly root: Root) {}

  /** How to query the database at `at`: with the pair's credentials where this host has them, else (and after a failure) as `fallback`. */
  async at(at: HostPort, fallback: ReplicationQuery): Promise<ReplicationQuery> {
    const name = key(at);
    if (!this.open.has(name)) {
      const opening = this.connect(at).catch(() => undefined);
      this.open.set(name, opening);
    }
    const session = await this.open.get(name)!;
    if (!session) {
      // Asked again at the next refresh (the peer may come back, the state file appear).
      this.open.delete(name);
      return fallback;
    }
    return {
      query: async <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => {
        try {
          return await session.query<R>(text, values);
        } catch {
          // A session lost (the peer restarted): this refresh with the nodes' login, the next opens it again.
          this.open.delete(name);
          await session.close().catch(() => {});
          return fallback.query<R>(text, values);
        }
      },
    };
  }

  private async connect(at: HostPort): Promise<Session | undefined> {
    const state = await readState(this.root).catch(() => undefined);
    if (!state) return undefined;
    if (key(state.peer) === key(at)) {
      const tls = await fs.access(this.root.path(STANDBY_PATHS.ca)).then(
        () => true,
        () => false,
      );
      const peer = await connectPeer(this.root, state.self, state.peer, tls, undefined, 3_000);
      return {
        query: async <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => (await peer.client.query(text, values)) as unknown as { rows: R[] },
        close: peer.close,
      };
    }
    if (key(state.self) === key(at)) {
      const link: AdminLink = linkTo(await existingNode(this.root));
      const session = await link.session();
      return {
        query: async <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => (await session.query(text, values)) as unknown as { rows: R[] },
        close: () => link.close(),
      };
    }
    return undefined;
  }

  async close(): Promise<void> {
    const sessions = [...this.open.values()];
    this.open.clear();
    await Promise.all(sessions.map((s) => s.then((x) => x?.close()).catch(() => {})));
  }
}
