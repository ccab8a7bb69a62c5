// knocker exposedb --add CIDR: one more range the other web nodes may log in from, in the
// allow-list block of pg_hba.conf (checked by PostgreSQL, then reloaded; no restart). stdout
// carries the one-line result; warnings and notes go to stderr.
import { EXIT } from '../errors.js';
import { sortCidrs } from '../postgres/allow-list.js';
import { allowListChange, changeAllowList, pairRoles, SSL_OFF, type ChangeContext, type Context } from './context.js';

/**
 * What --add tells when this host is one of a standby pair: the roles as they are now and the
 * nodes' string. (The standby's pg_hba.conf was brought up to date by the change itself: its
 * step's result says so, or why not.)
 */
export async function standbyNotes(ctx: Context): Promise<void> {
  const pair = await pairRoles(ctx);
  if (!pair) return;
  ctx.io.err(
    `note: ${pair.line}: a web node lists both hosts; knocker exposedb${ctx.root.isSandbox ? ` --root ${ctx.root.dir}` : ''} --init prints that connection string (and changes nothing)`,
  );
}

export async function add(ctx: ChangeContext, typed: string, parsed: string): Promise<number> {
  const { io, names, facts, run } = ctx;
  const { cidr, allow, normalised, listed } = await allowListChange(ctx, '--add', typed, parsed);
  // Listed is no change once PostgreSQL has loaded the file: a run killed half-way is finished, never called done.
  const unchanged = listed && facts.hbaLoaded;
  if (unchanged && !run.flags.dryRun) {
    io.out(`Unchanged: ${cidr}${normalised} is already allowed.`);
    await standbyNotes(ctx);
    return EXIT.ok;
  }
  const next = listed ? allow.cidrs : sortCidrs([...allow.cidrs, cidr]);
  const stepTitle = `pg_hba.conf: allow ${names.remoteRole} from ${cidr}`;
  if (!(await changeAllowList(ctx, { title: `Allow ${cidr}`, stepTitle, cidr, before: allow.cidrs, next, unchanged }))) return EXIT.ok;
  if (!facts.ssl) io.err(`warning: ${SSL_OFF}`);
  io.out(`Allowed ${cidr}${normalised}: ${names.remoteRole} may log in to ${names.database} from it (pg_hba.conf checked and reloaded, no restart).`);
  await standbyNotes(ctx);
  return EXIT.ok;
}
