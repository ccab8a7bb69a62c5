// knocker exposedb --remove CIDR: a range the other web nodes may no longer log in from, taken out
// of the allow-list block of pg_hba.conf (checked, reloaded; no restart), and the sessions still
// open from it ended. stdout carries the one-line result.
import ipaddr from 'ipaddr.js';
import type { AdminLink } from '../postgres/admin.js';
import { EXIT } from '../errors.js';
import { plural } from '../system/units.js';
import { allowListChange, changeAllowList, type ChangeContext } from './context.js';
import { endSessionsStep } from './plan.js';

/** The role's sessions still open from a range no longer allowed. */
async function openSessions(link: AdminLink, role: string, cidr: string, stillAllowed: string[]): Promise<number> {
  const result = await (await link.session()).query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND client_addr <<= $2::inet AND NOT (client_addr <<= ANY($3::inet[]))`,
    [role, cidr, stillAllowed],
  );
  return result.rows[0]?.n ?? 0;
}

/** Whether the range `outer` holds all of `inner` (both normalised CIDRs). */
function contains(outer: string, inner: string): boolean {
  const [outerAddress, outerBits] = ipaddr.parseCIDR(outer);
  const [innerAddress, innerBits] = ipaddr.parseCIDR(inner);
  return outerAddress.kind() === innerAddress.kind() && innerBits >= outerBits && innerAddress.match(outerAddress, outerBits);
}

export async function remove(ctx: ChangeContext, typed: string, parsed: string): Promise<number> {
  const { io, link, names, facts, run } = ctx;
  const { cidr, allow, normalised, listed } = await allowListChange(ctx, '--remove', typed, parsed);
  const next = allow.cidrs.filter((c) => c !== cidr);
  // Not listed is no change once PostgreSQL has loaded the file and no session from the range is
  // left: a run killed half-way is finished, never called done.
  const leftOpen = listed ? 0 : await openSessions(link, names.remoteRole, cidr, next);
  const unchanged = !listed && facts.hbaLoaded && leftOpen === 0;
  if (unchanged && !run.flags.dryRun) {
    const within = allow.cidrs.find((c) => contains(c, cidr));
    io.out(`Unchanged: ${cidr}${normalised} is not on the allow-list${within ? ` (it lies within ${within}, which stays allowed)` : ''}.`);
    return EXIT.ok;
  }
  let ended = 0;
  const more = [endSessionsStep(link, names.remoteRole, cidr, next, (n) => (ended = n))];
  const stepTitle = `pg_hba.conf: stop allowing ${names.remoteRole} from ${cidr}`;
  if (!(await changeAllowList(ctx, { title: `Disallow ${cidr}`, stepTitle, cidr, before: allow.cidrs, next, unchanged, more }))) return EXIT.ok;
  io.out(
    `Removed ${cidr}${normalised}: ${names.remoteRole} can no longer log in from it (pg_hba.conf checked and reloaded, no restart); ` +
      `ended ${plural(ended, 'open session')} from it.`,
  );
  return EXIT.ok;
}
