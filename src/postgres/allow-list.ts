// The allow-list of other web nodes: exposedb's managed block in pg_hba.conf. One line per allowed
// CIDR, limited to the app's database and the remote role, with SCRAM only (never trust); then
// reject lines for the role, so no broader rule later in the file lets it in from elsewhere.
// The block sits before every other rule (first match wins) and is the only part exposedb edits.
// Here too: the name of the other nodes' role, and the plan step that rewrites the block.
import ipaddr from 'ipaddr.js';
import { parseCidr } from '../config/values.js';
import { writeFileAtomic } from '../system/files.js';
import { fileStep, type Step } from '../system/plan.js';
import type { AdminLink } from './admin.js';
import { hbaFields, hbaName, readManagedBlock, reloadConfig, replaceHbaFile, withManagedBlock } from './hba.js';
import { INVITE_ROLE_PREFIX, JOINERS_ROLE } from '../join/token.js';
import type { AllowListSync } from './allow-list-sync.js';

export const EXPOSEDB_BLOCK = 'exposedb';

export interface AllowListTarget {
  database: string;
  /** The login role of the other nodes. */
  role: string;
  /** `hostssl` lines when the server has SSL on, else `host`. */
  ssl: boolean;
}

export type HbaType = 'host' | 'hostssl';

function sortKey(cidr: string): [number, number[], number] {
  const [address, bits] = ipaddr.parseCIDR(cidr);
  return [address.kind() === 'ipv4' ? 4 : 6, address.toByteArray(), bits];
}

/** IPv4 before IPv6, then by address, then by prefix length: a stable order for a stable file. */
export function sortCidrs(cidrs: Iterable<string>): string[] {
  return [...new Set(cidrs)].sort((a, b) => {
    const [fa, ba, la] = sortKey(a);
    const [fb, bb, lb] = sortKey(b);
    if (fa !== fb) return fa - fb;
    for (let i = 0; i < ba.length; i += 1) if (ba[i] !== bb[i]) return ba[i]! - bb[i]!;
    return la - lb;
  });
}

function typeFor(ssl: boolean): HbaType {
  return ssl ? 'hostssl' : 'host';
}

/** One open invitation (knocker exposedb --invite): its role may log in from its one address, over TLS. */
export interface InviteRule {
  role: string;
  cidr: string;
}

function sortInvites(invites: InviteRule[]): InviteRule[] {
  return [...new Map(invites.map((i) => [i.role, i])).values()].sort((a, b) => (a.role < b.role ? -1 : a.role > b.role ? 1 : 0));
}

/** The block's lines (without its BEGIN/END markers). */
export function allowListRules(target: AllowListTarget, cidrs: Iterable<string>, type: HbaType = typeFor(target.ssl), invites: InviteRule[] = []): string[] {
  const database = hbaName(target.database);
  const role = hbaName(target.role);
  const joiners = hbaName(JOINERS_ROLE);
  return [
    `# Other Knocknoc web nodes: ${role} may use ${database} from these addresses (knocker exposedb --add/--remove).`,
    ...sortCidrs(cidrs).map((cidr) => `${type.padEnd(7)}  ${database}  ${role}  ${cidr}  scram-sha-256`),
    `# ${role} is refused from anywhere else, whatever the rules below say.`,
    `host     all  ${role}  0.0.0.0/0  reject`,
    `host     all  ${role}  ::/0  reject`,
    ...(invites.length === 0
      ? []
      : [
          `# Open invitations (knocker exposedb --invite): each from its one address, over TLS; every other join is refused.`,
          ...sortInvites(invites).map((i) => `hostssl  ${database}  ${hbaName(i.role)}  ${i.cidr}  scram-sha-256`),
          `host     all  +${joiners}  0.0.0.0/0  reject`,
          `host     all  +${joiners}  ::/0  reject`,
        ]),
  ];
}

export interface AllowList {
  /** Whether pg_hba.conf has the block at all. */
  present: boolean;
  /** The allowed CIDRs, normalised and sorted. */
  cidrs: string[];
  /** Rule lines in the block that exposedb does not write (hand edits). */
  foreign: string[];
  /** The block differs from what exposedb would write for these CIDRs (hand edits, order, spacing). */
  edited: boolean;
  /** The connection type its allow lines use, if it has any. */
  type: HbaType | undefined;
  /** The lines of open invitations. */
  invites: InviteRule[];
}

/** Reads the allow-list from pg_hba.conf's text. Throws when the block's markers are damaged. */
export function readAllowList(fileText: string, target: AllowListTarget): AllowList {
  const block = readManagedBlock(fileText, EXPOSEDB_BLOCK);
  if (!block) return { present: false, cidrs: [], foreign: [], edited: false, type: undefined, invites: [] };
  const database = hbaName(target.database);
  const role = hbaName(target.role);
  const cidrs: string[] = [];
  const foreign: string[] = [];
  const invites: InviteRule[] = [];
  const joiners = `+${hbaName(JOINERS_ROLE)}`;
  let type: HbaType | undefined;
  for (const line of block.rules) {
    const fields = hbaFields(line);
    const [kind, db, user, address, method, ...rest] = fields;
    const cidr = address === undefined ? undefined : parseCidr(address);
    if (
      fields.length === 5 &&
      kind === 'host' &&
      db === 'all' &&
      (user === role || user === joiners) &&
      method === 'reject' &&
      (address === '0.0.0.0/0' || address === '::/0')
    )
      continue;
    if (rest.length === 0 && kind === 'hostssl' && db === database && user?.startsWith(INVITE_ROLE_PREFIX) && method === 'scram-sha-256' && cidr?.ok) {
      invites.push({ role: user, cidr: cidr.value });
      continue;
    }
    if (rest.length === 0 && (kind === 'host' || kind === 'hostssl') && db === database && user === role && method === 'scram-sha-256' && cidr?.ok) {
      cidrs.push(cidr.value);
      type ??= kind;
      continue;
    }
    foreign.push(line.trim());
  }
  const sorted = sortCidrs(cidrs);
  const canonical = allowListRules(target, sorted, type, invites).join('\n');
  const inner = block.text.split('\n').slice(1, -1).join('\n');
  return { present: true, cidrs: sorted, foreign, edited: foreign.length > 0 || inner !== canonical, type, invites: sortInvites(invites) };
}

/** `<database>_remote`, cut to PostgreSQL's 63-byte identifier limit. */
export function remoteRoleName(database: string): string {
  let base = database;
  while (Buffer.byteLength(`${base}_remote`) > 63) base = base.slice(0, -1);
  return `${base}_remote`;
}

/** What the allow-list step needs to know of pg_hba.conf, as the running server reports it. */
export interface HbaFacts {
  hbaFile: string;
  hbaText: string;
  hbaMode: number;
  /** Whether PostgreSQL has loaded the file as it is on disk (a run killed before its reload leaves it false). */
  hbaLoaded: boolean;
}

/**
 * Rewrites the allow-list block of pg_hba.conf for `cidrs` (and `invites`: by default the open
 * invitations' lines stay as they are); PostgreSQL checks the new file before it is reloaded (no
 * restart), and the previous file is put back on any error.
 */
export async function allowListStep(
  link: AdminLink,
  facts: HbaFacts,
  target: AllowListTarget,
  cidrs: string[],
  title: string,
  invites?: InviteRule[],
  sync?: AllowListSync,
): Promise<Step> {
  const file = facts.hbaFile;
  const previous = facts.hbaText;
  const keptInvites = invites ?? readAllowList(previous, target).invites;
  const rules = allowListRules(target, cidrs, undefined, keptInvites);
  const next = withManagedBlock(previous, EXPOSEDB_BLOCK, rules);
  const before = readManagedBlock(previous, EXPOSEDB_BLOCK);
  let recorded = false;
  const shown = await fileStep({ file, shownAs: file, content: next, mode: facts.hbaMode });
  let written = false;
  return {
    kind: 'file',
    title: next === previous && !facts.hbaLoaded ? `${title}: reload pg_hba.conf, written but not yet loaded by PostgreSQL` : title,
    details: next === previous && !facts.hbaLoaded ? ['SELECT pg_reload_conf() (after PostgreSQL has checked the file)'] : shown.details,
    changes: next !== previous || !facts.hbaLoaded,
    async apply() {
      written = true;
      await replaceHbaFile(await link.session(), file, previous, next);
      recorded = true;
      const note = await sync?.record(rules);
      return `checked by PostgreSQL and reloaded, no restart${note ? `; ${note}` : ''}`;
    },
    async undo() {
      if (!written) return;
      await writeFileAtomic(file, previous, { backup: false });
      await reloadConfig(await link.session());
      // The table (and through it the standby) back to the block as it was.
      if (recorded && before) await sync?.record(before.text.split('\n').slice(1, -1));
    },
  };
}
