// This host's own web node follows the pair (issue 22, rule 6): when a standby is added
// (`exposedb --add-standby` on the primary, `standby init` on the standby's host), the node
// knocker installed here gets the multi-host DatabaseURL the other nodes use (libpq's form, the
// pair's primary first, target_session_attrs=read-write, verify-full with the cluster's CA), so it
// finds whichever host takes writes after a switchover or a promote. As plan steps: the server
// stopped (if it runs), the CA copied beside knocknoc.conf, knocknoc.conf rewritten (atomically,
// the old one kept as .bak, checked as knocknoc-server reads it), the server started again and
// waited for until /_status answers 200; each undone in reverse.
import os from 'node:os';
import { KnocknocConf } from '../config/knocknoc-conf.js';
import { parseListen, type ListenAddress } from '../config/values.js';
import { errorMessage } from '../errors.js';
import { parseDatabaseUrl, type DatabaseUrl } from '../postgres/url.js';
import { checkServerConfig } from '../server/config.js';
import { serverRunState, serverService, startServerService, stopServerService } from '../server/service.js';
import { readIfExists } from '../system/files.js';
import type { Logger } from '../system/log.js';
import { packageRoot } from '../system/package.js';
import { fileStep, type Step } from '../system/plan.js';
import { PATHS, type Root } from '../system/root.js';
import { multiHostUrl } from './conninfo.js';
import type { Endpoint } from './node.js';

export interface PairEnds {
  /** The pair in the nodes' order: the primary first, then the standby. */
  hosts: [Endpoint, Endpoint];
  /** This host's end of the pair (its own cluster: a node here may reach it on loopback). */
  self: Endpoint;
  /** The cluster's CA (PEM): the node's copy when its string names none yet. */
  ca: string;
}

const same = (a: Endpoint, b: Endpoint) => a.host.toLowerCase() === b.host.toLowerCase() && a.port === b.port;
const isLoopback = (host: string) => host === 'localhost' || host === '::1' || /^127\./.test(host);

/** What this host's node should do: nothing (no node, or it uses the pair already), follow the pair, or stay as it is (another database). */
export type NodeDecision = { kind: 'none' } | { kind: 'already' } | { kind: 'other'; why: string } | { kind: 'follow'; url: DatabaseUrl };

/** Pure: whether a DatabaseURL of this host's node is one of the pair's hosts alone (then it follows the pair). */
export function decideNode(url: DatabaseUrl, pair: Pick<PairEnds, 'hosts' | 'self'>): NodeDecision {
  const ofPair = (h: Endpoint) => pair.hosts.some((p) => same(p, h)) || (isLoopback(h.host) && h.port === pair.self.port);
  if (url.hosts.length === pair.hosts.length && pair.hosts.every((p) => url.hosts.some((h) => same(h, p))) && url.targetSessionAttrs === 'read-write')
    return { kind: 'already' };
  if (url.hosts.length === 1 && ofPair(url.hosts[0]!)) return { kind: 'follow', url };
  const listed = url.hosts.map((h) => `${h.host}:${h.port}`).join(',');
  return { kind: 'other', why: `its DatabaseURL names ${listed}, not this pair (${pair.hosts.map((h) => `${h.host}:${h.port}`).join(', ')})` };
}

/**
 * What `knocker install` run again on a host whose node follows a pair writes: the pair's string it
 * has (this cluster among its hosts, the same role, password and database), not the single-host one
 * it would build, which would take the node off the pair again.
 */
export function keptPairUrl(existing: string | undefined, built: string): string {
  const was = parseDatabaseUrl(existing ?? '');
  const now = parseDatabaseUrl(built);
  if (!was.ok || !now.ok || was.value.hosts.length < 2 || was.value.targetSessionAttrs !== 'read-write') return built;
  const a = was.value;
  const b = now.value;
  const ours = a.user === b.user && a.password === b.password && a.database === b.database && a.hosts.some((h) => same(h, b.hosts[0]!));
  return ours ? existing! : built;
}

/** The node's new DatabaseURL: the pair's hosts in order, its own user, password and database; its CA file, or `caCopy`. */
export function pairUrlFor(url: DatabaseUrl, hosts: Endpoint[], caCopy: string): string {
  return multiHostUrl({ hosts, user: url.user, password: url.password, database: url.database, caFile: url.sslrootcert ?? caCopy });
}

export interface FollowPlan {
  steps: Step[];
  warnings: string[];
  /** For the result: what happened to this host's node ("none", "already", "follows", "other"). */
  outcome: 'none' | 'already' | 'follows' | 'other';
}

/** The steps that make this host's web node (if knocker installed one here) use the pair's multi-host string. */
export async function followPairSteps(root: Root, pair: PairEnds, log: Logger): Promise<FollowPlan> {
  const confFile = root.path(PATHS.conf);
  const text = await readIfExists(confFile);
  if (text === undefined) return { steps: [], warnings: [], outcome: 'none' };
  const conf = KnocknocConf.parse(text);
  const parsed = parseDatabaseUrl(conf.get('DatabaseURL') ?? '');
  if (!parsed.ok) {
    return { steps: [], warnings: [`this host's web node was left as it is: DatabaseURL in ${confFile} cannot be read (${parsed.error})`], outcome: 'other' };
  }
  const decision = decideNode(parsed.value, pair);
  if (decision.kind === 'already') return { steps: [], warnings: [], outcome: 'already' };
  if (decision.kind !== 'follow') {
    const why = decision.kind === 'other' ? decision.why : '';
    return { steps: [], warnings: [`this host's web node was left as it is: ${why}`], outcome: 'other' };
  }
  log.addSecret(decision.url.password);
  const caCopy = root.path(PATHS.databaseCa);
  const nextUrl = pairUrlFor(decision.url, pair.hosts, caCopy);
  const next = conf.with({ DatabaseURL: nextUrl }).toString();
  // Checked as knocknoc-server reads it: a file it would refuse is never written.
  const check = checkServerConfig(next, confFile, os.hostname());
  if (!check.ok) throw new Error(`knocknoc-server would refuse ${confFile} with the pair's connection string: ${check.problems.join('; ')}`);
  const hosts = pair.hosts.map((h) => `${h.host}:${h.port}`).join(',');
  const confStep = await fileStep({ file: confFile, shownAs: confFile, content: next, mode: 0o600, redact: (t) => log.scrub(t) });
  const files: Step[] = [
    ...(decision.url.sslrootcert ? [] : [await fileStep({ file: caCopy, shownAs: caCopy, content: pair.ca, mode: 0o644 })]),
    { ...confStep, title: `${confStep.title}: this host's web node reaches the pair (${hosts}), the host taking writes` },
  ];
  const listen = parseListen(conf.get('Listen') ?? '');
  const running = listen.ok && (await serverRunState(await serverService(root, packageRoot()))).running;
  // A node that is stopped stays stopped: it reads the new string when it is started.
  const steps = running && listen.ok ? [stopStep(root, listen.value, log), ...files, startStep(root, listen.value, log)] : files;
  return { steps, warnings: [], outcome: 'follows' };
}

function stopStep(root: Root, listen: ListenAddress, log: Logger): Step {
  let stopped = false;
  return {
    kind: 'service',
    title: "Knocknoc server: stop this host's web node for its new connection string; it starts again at the end",
    details: [`the node's graceful stop; ${root.path(PATHS.conf)} is read at its start`],
    changes: true,
    async apply() {
      const service = await serverService(root, packageRoot());
      stopped = true;
      return stopServerService(service, log);
    },
    async undo() {
      if (!stopped) return;
      const service = await serverService(root, packageRoot());
      if (!(await serverRunState(service)).running) await startServerService(service, listen, log);
    },
  };
}

function startStep(root: Root, listen: ListenAddress, log: Logger): Step {
  return {
    kind: 'service',
    title: "Knocknoc server: start this host's web node and wait until /_status answers 200",
    details: ['it connects to the first host of the list that takes writes'],
    changes: true,
    async apply() {
      const service = await serverService(root, packageRoot());
      try {
        return await startServerService(service, listen, log);
      } catch (error) {
        // Stopped again, so the undo of the file brings back a node that starts with the old string.
        await stopServerService(service, log).catch(() => {});
        throw new Error(errorMessage(error));
      }
    },
    async undo() {
      const service = await serverService(root, packageRoot());
      await stopServerService(service, log);
    },
  };
}
