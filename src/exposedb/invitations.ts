// knocker exposedb --invites (the invitations: id, address, name, state, expiry, used by / at;
// never a secret) and what --invite and --revoke share: the open invitations' lines of pg_hba.conf
// and the pruning of invitations that can no longer be redeemed (used, expired, revoked), whose
// role and line go; an address an unused invitation had added to the allow-list goes with it.
import { EXIT } from '../errors.js';
import { retireInvitationsStep, invitationState, needsPruning, readInvitations, type Invitation } from '../join/invitations.js';
import { allowListStep, sortCidrs, type InviteRule } from '../postgres/allow-list.js';
import type { Step } from '../system/plan.js';
import { allowListOf, allowListSyncOf, type Context } from './context.js';

function when(date: Date | null): string {
  return date ? date.toISOString().replace(/\.\d{3}Z$/, 'Z') : '-';
}

export async function listInvitations(ctx: Context): Promise<number> {
  const { io } = ctx;
  const invites = await readInvitations(await ctx.link.session());
  const now = new Date();
  const rows = invites.map((i) => [
    i.id,
    i.address,
    i.name ?? '-',
    invitationState(i, now),
    when(i.expiresAt),
    i.redeemedAt ? `${i.redeemedFrom ?? '?'} at ${when(i.redeemedAt)}` : i.revokedAt ? `revoked at ${when(i.revokedAt)}` : '-',
  ]);
  if (rows.length === 0) {
    io.err('note: no invitation yet (knocker exposedb --invite ADDR/32)');
    return EXIT.ok;
  }
  const header = ['ID', 'ADDRESS', 'NAME', 'STATE', 'EXPIRES', 'USED BY / AT'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c === cells.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ');
  io.out(line(header));
  for (const row of rows) io.out(line(row));
  const stale = invites.filter((i) => needsPruning(i, now)).length;
  if (stale > 0)
    io.err(
      `note: ${stale} used, expired or revoked invitation${stale === 1 ? ' keeps its' : 's keep their'} role until the next --invite or --revoke prunes it`,
    );
  return EXIT.ok;
}

/** The allow-list after the invitations `retired` are gone: their lines, and what unused ones had added. */
export function afterRetiring(ctx: Context, all: Invitation[], retired: Invitation[], extra: { cidrs?: string[]; invites?: InviteRule[] } = {}) {
  const allow = allowListOf(ctx.facts, ctx.target);
  const gone = new Set(retired.map((i) => i.role));
  const invites = [...allow.invites.filter((i) => !gone.has(i.role)), ...(extra.invites ?? [])];
  // An address added by an invitation never used leaves with it, unless a node joined from it or
  // an open invitation still names it.
  const now = new Date();
  const stillNeeded = new Set(all.filter((i) => i.redeemedAt || (!gone.has(i.role) && invitationState(i, now) === 'open')).map((i) => i.address));
  const dropped = [...new Set(retired.filter((i) => i.allowedByInvite && !i.redeemedAt && !stillNeeded.has(i.address)).map((i) => i.address))];
  const cidrs = sortCidrs([...allow.cidrs.filter((c) => !dropped.includes(c)), ...(extra.cidrs ?? [])]);
  return { before: allow, cidrs, invites, dropped };
}

/** The steps that retire `retired` (and revoke `revoke`), and the pg_hba.conf step for `after`. */
export async function retireSteps(
  ctx: Context,
  retired: Invitation[],
  revoke: Invitation | undefined,
  after: { cidrs: string[]; invites: InviteRule[] },
  title: string,
): Promise<Step[]> {
  const hba = await allowListStep(ctx.link, ctx.facts, ctx.target, after.cidrs, title, after.invites, await allowListSyncOf(ctx));
  // The line first, so no login gets in between the role's end and the file's reload.
  return [hba, retireInvitationsStep(ctx.link, retired, revoke)].filter((s) => s.changes);
}
