// knocker exposedb --revoke ID: an open invitation ended (its role dropped, its line gone, an
// address it added taken out again); with it, invitations that can no longer be redeemed are pruned.
import { EXIT, UsageError } from '../errors.js';
import { invitationState, needsPruning, readInvitations } from '../join/invitations.js';
import { isInviteId } from '../join/token.js';
import { knockerCommand } from '../shared/hint.js';
import { quoted } from '../shared/printable.js';
import type { Plan } from '../system/plan.js';
import { requireExposed, type ChangeContext } from './context.js';
import { afterRetiring, retireSteps } from './invitations.js';

export async function revoke(ctx: ChangeContext, id: string): Promise<number> {
  const { io, link, run, root } = ctx;
  requireExposed(ctx);
  if (!isInviteId(id)) throw new UsageError(`--revoke: ${quoted(id)} is not an invitation id (10 letters and digits, as --invites shows); nothing was changed`);
  const now = new Date();
  const all = await readInvitations(await link.session());
  const target = all.find((i) => i.id === id);
  if (!target) throw new UsageError(`no invitation ${id}; nothing was changed`, [], [`the invitations: ${knockerCommand(root, 'exposedb --invites')}`]);
  const state = invitationState(target, now);
  if (state === 'used') {
    throw new UsageError(
      `invitation ${id} was used by ${target.redeemedFrom ?? '?'} at ${target.redeemedAt!.toISOString()}; nothing was changed`,
      [],
      [`to retire that node: knocker server forget ${target.name ?? 'NAME'}`],
    );
  }
  const stale = all.filter((i) => i.id !== id && needsPruning(i, now));
  const retired = state === 'open' || needsPruning(target, now) ? [target, ...stale] : stale;
  const after = afterRetiring(ctx, all, retired);
  const steps = await retireSteps(
    ctx,
    retired,
    state === 'open' ? target : undefined,
    after,
    `pg_hba.conf: no line for invitation ${id}${after.dropped.length ? `, ${after.dropped.join(', ')} no longer allowed` : ''}`,
  );
  const plan: Plan = { title: `Revoke invitation ${id}`, steps, warnings: [] };
  const applied = await run.showOrApply(plan, { details: { invitation: id, state, pruned: stale.map((i) => i.id), disallowed: after.dropped } });
  if (run.flags.dryRun) return EXIT.ok;
  if (applied) run.log.info(`invitation ${id} revoked (was ${state})${after.dropped.length ? `; disallowed ${after.dropped.join(', ')}` : ''}`);
  io.out(state === 'open' ? `Revoked invitation ${id} (${target.address}).` : `Invitation ${id} was already ${state}; its role and line are gone.`);
  return EXIT.ok;
}
