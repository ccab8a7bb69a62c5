// knocker exposedb --list: the allowed ranges on stdout, one a line; whether the database is
// exposed, which host of a standby pair this is, hand edits of the block and errors in pg_hba.conf
// on stderr. Changes nothing.
import { EXIT } from '../errors.js';
import { hbaErrors } from '../postgres/hba.js';
import { knockerCommand } from '../shared/hint.js';
import { allowListOf, pairRoles, type Context } from './context.js';

export async function list(ctx: Context): Promise<number> {
  const { io, link, facts, target, names, root } = ctx;
  const allow = allowListOf(facts, target);
  for (const cidr of allow.cidrs) io.out(cidr);
  if (!facts.remote) io.err(`note: database ${names.database} is not exposed yet (${knockerCommand(root, 'exposedb --init')})`);
  else if (allow.cidrs.length === 0) io.err(`note: no address is allowed yet (${knockerCommand(root, 'exposedb --add <CIDR>')})`);
  // Each host of a standby pair has its own pg_hba.conf: which one this is, as its server says now.
  const pair = await pairRoles(ctx);
  if (pair) {
    io.err(`note: ${pair.line}; this list is this host's pg_hba.conf (both follow the primary's, knocker.allow_list)`);
    const { applyAllowList } = await import('../postgres/allow-list-sync.js');
    const { withAdminSession } = await import('../postgres/admin.js');
    const { peerLagNote } = await import('../standby/allow-list.js');
    const here = await withAdminSession({ ...ctx.cluster.access, database: 'postgres' }, ctx.log, (s) => applyAllowList(s, false));
    if (here === 'lags') io.err(`warning: this host's pg_hba.conf lags the primary's allow-list: ${knockerCommand(root, 'exposedb --sync')}`);
    const there = await peerLagNote(root, ctx.log);
    if (there) io.err(there);
  }
  if (allow.foreign.length > 0) {
    io.err(`warning: the exposedb block in ${facts.hbaFile} was edited by hand; it holds rules exposedb did not write (not listed above):`);
    for (const line of allow.foreign) io.err(`  ${line}`);
    io.err('  --add and --remove will not change the block until they are moved out of it');
  } else if (allow.edited) {
    io.err(`warning: the exposedb block in ${facts.hbaFile} was edited by hand; the next --add or --remove rewrites it in exposedb's own form`);
  }
  const errors = await hbaErrors(await link.session());
  if (errors.length > 0) {
    io.err(`warning: ${facts.hbaFile} has errors, so PostgreSQL keeps its previous rules until they are fixed:`);
    for (const e of errors) io.err(`  line ${e.line}: ${e.error}`);
  }
  return EXIT.ok;
}
