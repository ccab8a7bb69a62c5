// knocker exposedb --sync: this host's allow-list block of pg_hba.conf as knocker.allow_list says
// (the primary's list, replicated to its standby; src/postgres/allow-list-sync.ts). For the
// standby's host by hand; the primary already applies every change there, and switchover and
// promote bring it up to date before that host takes writes. stdout: the one result line.
import { EXIT } from '../errors.js';
import { withAdminSession } from '../postgres/admin.js';
import { applyAllowList } from '../postgres/allow-list-sync.js';
import type { Plan } from '../system/plan.js';
import type { ChangeContext } from './context.js';

export async function sync(ctx: ChangeContext): Promise<number> {
  const { io, cluster, log, run, facts } = ctx;
  const access = { ...cluster.access, database: 'postgres' };
  const { describeOutcome } = await import('../standby/allow-list.js');
  const now = await withAdminSession(access, log, (s) => applyAllowList(s, false));
  if (now === 'no-list' || now === 'unchanged') {
    if (now === 'no-list') io.err(`note: ${describeOutcome(now)}`);
    io.out(`Unchanged: the allow-list in ${facts.hbaFile} is ${now === 'no-list' ? 'as it is' : "the primary's"}.`);
    return EXIT.ok;
  }
  const plan: Plan = {
    title: "Bring this host's allow-list up to date with the primary's",
    steps: [
      {
        kind: 'file',
        title: `pg_hba.conf: exposedb's block as the primary's list says (knocker.allow_list, replicated)`,
        details: [
          `SELECT knocker.apply_allow_list(true)  -- ${facts.hbaFile}: the block only, the previous file kept as .bak, checked by PostgreSQL, reloaded`,
        ],
        changes: true,
        async apply() {
          return describeOutcome(await withAdminSession(access, log, (s) => applyAllowList(s, true)));
        },
        // The function puts the previous file back itself when PostgreSQL rejects the new one.
        async undo() {},
      },
    ],
    warnings: [],
  };
  if (!(await run.showOrApply(plan))) return EXIT.ok;
  io.out(`Synced: the allow-list in ${facts.hbaFile} is the primary's (checked by PostgreSQL and reloaded, no restart).`);
  return EXIT.ok;
}
