// What `knocker server forget NAME` takes out of the allow-list: the addresses the retired node
// logged in from, as far as the primary knows them: the invitations it joined with (their
// address), and its registered listen address when that is one allowed host (/32, /128). An
// address another registered server still listens on stays. The steps are exposedb's own (the
// block rewritten, checked, reloaded; the node's open sessions ended), run only where the
// primary's PostgreSQL is this host's: elsewhere the forget says what to run on the primary.
import ipaddr from 'ipaddr.js';
import { parseListen } from '../config/values.js';
import { errorMessage } from '../errors.js';
import { readInvitations } from '../join/invitations.js';
import { adminLink } from '../postgres/admin.js';
import { allowListStep, remoteRoleName, type AllowListTarget } from '../postgres/allow-list.js';
import { findLocalCluster } from '../postgres/locate.js';
import type { Logger } from '../system/log.js';
import type { Step } from '../system/plan.js';
import type { Root } from '../system/root.js';
import { allowListOf, allowListSyncOf, connectionString, inspect } from './context.js';
import { endSessionsStep, type Names } from './plan.js';

export type NodeAllowList =
  | { kind: 'local'; removed: string[]; steps: Step[]; close(): Promise<void> }
  | { kind: 'elsewhere'; candidates: string[]; why: string };

function hostCidr(listen: string): string | undefined {
  const parsed = parseListen(listen);
  if (!parsed.ok || !ipaddr.isValid(parsed.value.host)) return undefined;
  const address = ipaddr.parse(parsed.value.host);
  if (address.toString() === '0.0.0.0' || address.toString() === '::') return undefined;
  return `${address.toString()}/${address.kind() === 'ipv4' ? 32 : 128}`;
}

export async function nodeAllowListSteps(
  root: Root,
  log: Logger,
  node: { name: string; listen: string | undefined },
  otherListens: string[],
): Promise<NodeAllowList> {
  const keep = new Set(otherListens.map(hostCidr).filter((c): c is string => c !== undefined));
  const own = node.listen ? hostCidr(node.listen) : undefined;
  let connection: Awaited<ReturnType<typeof connectionString>>;
  try {
    connection = await connectionString(root, undefined);
  } catch (error) {
    return { kind: 'elsewhere', candidates: own ? [own] : [], why: errorMessage(error) };
  }
  const { url, source, hints } = connection;
  let cluster: Awaited<ReturnType<typeof findLocalCluster>>;
  try {
    cluster = await findLocalCluster(root, url, log, { source, hints });
  } catch (error) {
    return { kind: 'elsewhere', candidates: own ? [own] : [], why: errorMessage(error) };
  }
  const link = adminLink(cluster.access, log);
  try {
    const names: Names = { database: url.database, appRole: url.user, remoteRole: remoteRoleName(url.database) };
    const facts = await inspect(link, names, cluster, log);
    const target: AllowListTarget = { database: names.database, role: names.remoteRole, ssl: facts.ssl };
    // A standby's list is the primary's: it is changed there, and the standby follows.
    if (facts.inRecovery) {
      await link.close();
      return { kind: 'elsewhere', candidates: own ? [own] : [], why: "this host's database is a standby now; the allow-list is the primary's" };
    }
    const allow = allowListOf(facts, target);
    const joined = (await readInvitations(await link.session())).filter((i) => i.name === node.name && i.redeemedAt).map((i) => i.address);
    const removed = [...new Set([...joined, ...(own ? [own] : [])])].filter((c) => allow.cidrs.includes(c) && !keep.has(c));
    if (removed.length === 0) return { kind: 'local', removed, steps: [], close: () => link.close() };
    const next = allow.cidrs.filter((c) => !removed.includes(c));
    const steps = [
      await allowListStep(
        link,
        facts,
        target,
        next,
        `pg_hba.conf: stop allowing ${names.remoteRole} from ${removed.join(', ')} (${node.name}'s addresses)`,
        undefined,
        await allowListSyncOf({ root, cluster, log, facts }),
      ),
      ...removed.map((cidr) => endSessionsStep(link, names.remoteRole, cidr, next, () => {})),
    ];
    return { kind: 'local', removed, steps, close: () => link.close() };
  } catch (error) {
    await link.close();
    throw error;
  }
}
