// What the upgrade needs to know of the cluster before it touches anything, read the way
// `knocker status` reads it (the servers registry of the shared database, every server's
// /_status, HAProxy), and the checks of the seed's step 1: every server sharing the database is
// listed, online and healthy, and HAProxy sees them all in rotation.
import { PreflightError, UsageError } from '../errors.js';
import type { Check } from '../shared/checks.js';
import { BACKEND, readSettings, type HaproxyNode, type HaproxySettings } from '../haproxy/config.js';
import { adminStateFromBits, RuntimeApiError, showServersState, type AdminState } from '../haproxy/runtime.js';
import { haproxyPaths, type HaproxyPaths } from '../haproxy/service.js';
import type { ServerRow, Snapshot } from '../status/model.js';
import { openMonitor } from '../status/index.js';
import { readIfExists } from '../system/files.js';
import type { Root } from '../system/root.js';
import { age, plural } from '../system/units.js';
import type { Journal } from './journal.js';

export interface ClusterFacts {
  snapshot: Snapshot;
  settings: HaproxySettings;
  paths: HaproxyPaths;
  /** The admin state HAProxy holds for each of its servers (what an operator or knocker set). */
  adminStates: Map<string, AdminState>;
  /** This host's own web node (ServerName in its knocknoc.conf). */
  localName: string | undefined;
  /** `retries` in haproxy.cfg: how many seconds a lone node may take to restart before requests fail. */
  retries: number | undefined;
}

/** The template's value (assets/haproxy.cfg.template); an older configuration may hold fewer. */
export const WANTED_RETRIES = 20;

/** Reads the cluster once. Throws PreflightError when there is nothing to upgrade with. */
export async function readCluster(root: Root): Promise<ClusterFacts> {
  const paths = haproxyPaths(root);
  const text = await readIfExists(paths.conf);
  const existing = readSettings(text);
  const retries = /^\s*retries\s+(\d+)\s*$/m.exec(text ?? '')?.[1];
  if (existing.kind !== 'knocker') {
    const why =
      existing.kind === 'none'
        ? `no ${paths.conf}`
        : existing.kind === 'foreign'
          ? `${paths.conf} was not written by knocker`
          : `${paths.conf}: ${existing.problem}`;
    throw new PreflightError(`knocker upgrade takes servers out of rotation through the HAProxy knocker set up on this host, and there is none (${why})`, [
      "run knocker upgrade on the host of knocker's HAProxy (knocker haproxy setup), or point --root at it",
    ]);
  }
  let adminStates: Map<string, AdminState>;
  try {
    const saved = await showServersState(paths.adminSocket);
    adminStates = new Map(saved.servers.filter((s) => s.backend === BACKEND).map((s) => [s.name, adminStateFromBits(s)] as const));
  } catch (error) {
    if (error instanceof RuntimeApiError) {
      throw new PreflightError(`HAProxy does not answer on its admin socket: ${error.message}`, [
        `is it running? knocker service status haproxy${root.isSandbox ? ` --root ${root.dir}` : ''}`,
      ]);
    }
    throw error;
  }
  const monitor = await openMonitor(root, { intervalMs: 2_000 });
  try {
    const snapshot = await monitor.refreshFully();
    return {
      snapshot,
      settings: existing.settings,
      paths,
      adminStates,
      localName: monitor.localName,
      retries: retries === undefined ? undefined : Number(retries),
    };
  } finally {
    await monitor.stop();
  }
}

/** The releases the servers answer /_status with, in the order first seen. */
export function releasesOf(facts: ClusterFacts): string[] {
  return [...new Set(facts.snapshot.servers.map((r) => r.probe?.body?.version).filter((v): v is string => v !== undefined))];
}

export function nodeOf(facts: ClusterFacts, name: string): HaproxyNode | undefined {
  return facts.settings.nodes.find((n) => n.name === name);
}

/** The seed's step 1, as checks: any failed one stops the upgrade before it starts. */
export function preflightChecks(facts: ClusterFacts): Check[] {
  const checks: Check[] = [];
  const { snapshot, settings } = facts;
  const registry = snapshot.sources.registry;
  if (snapshot.summary.databaseUnreachable || !registry.data) {
    checks.push({ name: 'database', ok: false, detail: `the shared database cannot be read: ${registry.error ?? 'no answer'}` });
    return checks;
  }
  checks.push({ name: 'database', ok: true, detail: `${plural(registry.data.length, 'server')} registered` });
  const haproxy = snapshot.sources.haproxy;
  if (!haproxy.data)
    checks.push({ name: 'HAProxy', ok: false, detail: `its read-only socket does not answer: ${haproxy.error ?? haproxy.absent ?? 'no answer'}` });
  else checks.push({ name: 'HAProxy', ok: true, detail: `${haproxy.data.version}, ${plural(settings.nodes.length, 'node')}` });
  for (const row of [...snapshot.servers].sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }))) {
    const problem = serverProblem(row, facts);
    const node = nodeOf(facts, row.name);
    checks.push(
      problem
        ? { name: row.name, ok: false, detail: problem.text, hints: problem.hints }
        : {
            name: row.name,
            ok: true,
            detail: `online, /_status 200 on ${row.probe!.body!.version} (schema ${row.probe!.body!.schemaVersion}), HAProxy ${row.haproxy!.status.text}${node?.backup ? ' (backup)' : ''}`,
          },
    );
  }
  if (settings.nodes.every((n) => n.backup) || settings.nodes.length === 0) {
    checks.push({ name: 'HAProxy', ok: false, detail: 'no active node in HAProxy' });
  }
  const releases = releasesOf(facts);
  if (releases.length > 1) {
    checks.push({ name: 'versions', ok: true, detail: `the servers run different releases (${releases.join(', ')}), all in step with the database` });
  }
  return checks;
}

/** The seed's own advice for a server that is not there. */
const SEED_HINT = 'a missing or offline server points to an existing problem: fix it before upgrading';

function serverProblem(row: ServerRow, facts: ClusterFacts): { text: string; hints: string[] } | undefined {
  const r = row.registry;
  const node = nodeOf(facts, row.name);
  if (!r)
    return {
      text: 'a node of HAProxy, but not in the servers registry of this database',
      hints: [`is ${row.name} a server of this cluster? If not: knocker haproxy remove ${row.name}`],
    };
  if (!node)
    return {
      text: `registered in the database (${r.listen}) but not a node of HAProxy: it would not be upgraded`,
      hints: [`add it (knocker haproxy add ${row.name}=HOST:PORT) or, if it is gone for good, delete its row from the servers table`],
    };
  const since = age((Date.now() - r.lastSeen.getTime()) / 1000);
  if (r.state === 'stopped') return { text: `stopped (since ${since} ago)`, hints: [SEED_HINT] };
  if (!r.online) return { text: `offline: no heartbeat for ${since}`, hints: [SEED_HINT] };
  const p = row.probe;
  if (!p || p.http === undefined) return { text: `/_status does not answer on ${row.address ?? 'no address'}: ${p?.error ?? 'not asked'}`, hints: [] };
  if (p.http !== 200 || !p.body?.versionMatch) {
    const body = p.body;
    return {
      text: body
        ? `/_status ${p.http}: ${body.status}${body.status === 'out-of-step' ? ` (release schema ${body.schemaVersion}, database ${body.databaseSchemaVersion})` : ''}`
        : `/_status answered ${p.http}`,
      hints: [],
    };
  }
  const admin = facts.adminStates.get(row.name);
  const stat = row.haproxy;
  if (!stat || !admin) return { text: 'HAProxy does not run this node: it runs an older configuration', hints: ['reload it: knocker haproxy setup'] };
  if (admin !== 'ready')
    return {
      text: `taken out of rotation in HAProxy (${admin}) before the upgrade`,
      hints: [`bring it back first (knocker haproxy ready ${row.name}) so the upgrade starts from a cluster in service`],
    };
  if (stat.status.state !== 'UP' || stat.status.transition)
    return { text: `HAProxy: ${stat.status.text}, last check ${stat.check.status || 'none'}`, hints: [] };
  return undefined;
}

/** The one server upgraded first, alone in rotation: --first, else this host's node, else the first active node by name. */
export function chooseFirst(facts: ClusterFacts, wanted: string | undefined): string {
  const active = facts.settings.nodes
    .filter((n) => !n.backup)
    .map((n) => n.name)
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  if (wanted !== undefined) {
    if (!nodeOf(facts, wanted))
      throw new UsageError(`--first ${wanted}: no such node of HAProxy (the nodes are ${facts.settings.nodes.map((n) => n.name).join(', ')})`);
    if (!active.includes(wanted))
      throw new UsageError(`--first ${wanted}: a backup node serves only when every active node is down; the first server must be an active one`);
    return wanted;
  }
  if (facts.localName && active.includes(facts.localName)) return facts.localName;
  return active[0]!;
}

/** Where the journal's servers stand now, for a resumed run: the rows of the snapshot by name. */
export function rowsByName(facts: ClusterFacts): Map<string, ServerRow> {
  return new Map(facts.snapshot.servers.map((r) => [r.name, r]));
}

/** Checks for a resumed run: the servers it knows are still there; those not done may be down or out of step. */
export function resumeChecks(facts: ClusterFacts, journal: Journal): Check[] {
  const checks: Check[] = [];
  const rows = rowsByName(facts);
  if (facts.snapshot.summary.databaseUnreachable)
    checks.push({ name: 'database', ok: false, detail: `the shared database cannot be read: ${facts.snapshot.sources.registry.error ?? 'no answer'}` });
  for (const server of journal.servers) {
    const row = rows.get(server.name);
    if (!nodeOf(facts, server.name))
      checks.push({
        name: server.name,
        ok: false,
        detail: 'no longer a node of HAProxy',
        hints: ['the upgrade cannot go on without it: knocker upgrade --rollback, then start again'],
      });
    else if (!row?.haproxy)
      checks.push({ name: server.name, ok: false, detail: 'HAProxy does not run this node any more', hints: ['reload it: knocker haproxy setup'] });
    else {
      const body = row.probe?.body;
      checks.push({
        name: server.name,
        ok: true,
        detail: `${server.phase}; ${body ? `/_status ${row.probe!.http} on ${body.version}${body.versionMatch ? '' : ' (out of step)'}` : `/_status: ${row.probe?.error ?? 'no answer'}`}; HAProxy ${row.haproxy.status.text}`,
      });
    }
  }
  return checks;
}
