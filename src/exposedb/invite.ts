// knocker exposedb --invite ADDR/32 [--ttl D] [--name NAME]: a one-line join for a new web node.
// The token alone goes to stdout (scripts capture it); what to do with it goes to stderr. The
// primary keeps the invitation's role (a SCRAM verifier of the secret), one hostssl line for the
// invited address, the node's lasting allow-list entry, and the node's connection string and CA
// sealed with the secret (src/join/). Invitations that can no longer be redeemed are pruned.
import { EXIT, PreflightError, UsageError } from '../errors.js';
import { APP_DATABASE } from '../installer/database.js';
import { joinSchemaStep, needsPruning, readInvitations } from '../join/invitations.js';
import { formatToken, inviteRole, newInvitation, sealPayload, spkiPin } from '../join/token.js';
import { X509Certificate } from 'node:crypto';
import { parseDatabaseUrl } from '../postgres/url.js';
import { knockerCommand } from '../shared/hint.js';
import { readIfExists } from '../system/files.js';
import type { Plan } from '../system/plan.js';
import { PATHS } from '../system/root.js';
import { allowListChange, requireExposed, storedNodesUrl, type ChangeContext } from './context.js';
import { nodesMultiHost } from './init.js';
import { afterRetiring, retireSteps } from './invitations.js';
import { createInvitationStep } from '../join/invitations.js';

export interface InviteRequest {
  typed: string;
  parsed: string;
  ttlMs: number;
  name: string | undefined;
}

export async function invite(ctx: ChangeContext, request: InviteRequest): Promise<number> {
  const { root, io, link, names, facts, run } = ctx;
  requireExposed(ctx);
  const { cidr, listed } = await allowListChange(ctx, '--invite', request.typed, request.parsed);
  if (!/\/(32|128)$/.test(cidr)) {
    throw new UsageError(
      `--invite: ${cidr} is a range; an invitation is for one node, ADDRESS/32; nothing was changed`,
      [],
      [`to allow a whole range the manual way: ${knockerCommand(root, `exposedb --add ${cidr}`)}`],
    );
  }
  if (names.database !== APP_DATABASE) {
    throw new PreflightError(`invitations join nodes to the database ${APP_DATABASE}; this one is ${names.database}`, [
      `use the manual way: ${knockerCommand(root, 'exposedb --add ADDR/32')} and knocker install --database-option 3 on the node`,
    ]);
  }
  if (!facts.ssl)
    throw new PreflightError('PostgreSQL has ssl off: a joining node could not verify this server', [`run ${knockerCommand(root, 'exposedb --init')} first`]);
  const caPem = await readIfExists(root.path(PATHS.clusterCaCert));
  if (!caPem) {
    throw new PreflightError(`there is no cluster CA made by knocker (${root.path(PATHS.clusterCaCert)}): the token pins it`, [
      `with a certificate of your own, use the manual way (${knockerCommand(root, 'exposedb --add ADDR/32')})`,
    ]);
  }
  const stored = await storedNodesUrl(root);
  const single = stored ? parseDatabaseUrl(stored) : undefined;
  if (!stored || !single?.ok || !single.value.password) {
    throw new PreflightError(`the nodes' connection string is not kept in ${root.path(PATHS.exposedbUrl)}`, [
      `run ${knockerCommand(root, 'exposedb --init')} again`,
    ]);
  }
  const at = single.value;
  const pair = await nodesMultiHost(root, { host: at.host, port: at.port, user: at.user, password: at.password!, database: at.database });
  const databaseUrl = pair?.url ?? stored;
  const ca = new X509Certificate(caPem);

  const now = new Date();
  const all = await readInvitations(await link.session());
  const stale = all.filter((i) => needsPruning(i, now));
  const { id, secret } = newInvitation();
  const role = inviteRole(id);
  const expiresAt = new Date(now.getTime() + request.ttlMs);
  const sealed = sealPayload({ id, secret }, { databaseUrl, ca: caPem, ...(request.name ? { serverName: request.name } : {}) });
  const after = afterRetiring(ctx, all, stale, { cidrs: [cidr], invites: [{ role, cidr }] });
  const allowedByInvite = !listed || after.dropped.includes(cidr);
  const steps = [
    joinSchemaStep(link, names.database, all.length > 0),
    createInvitationStep(link, { id, role, secret, address: cidr, name: request.name, expiresAt, sealed, allowedByInvite }),
    ...(await retireSteps(
      ctx,
      stale,
      undefined,
      after,
      `pg_hba.conf: invitation ${id} from ${cidr} (TLS only), and ${names.remoteRole} from ${cidr}${allowedByInvite ? '' : ' (already allowed)'}`,
    )),
  ];
  const plan: Plan = { title: `Invite a web node at ${cidr}`, steps, warnings: [] };
  const details = { invitation: { id, address: cidr, name: request.name ?? null, expiresAt: expiresAt.toISOString() }, pruned: stale.map((i) => i.id) };
  if (!(await run.showOrApply(plan, { details }))) return EXIT.ok;
  run.log.info(
    `invitation ${id} for ${cidr}${request.name ? ` (${request.name})` : ''}, until ${expiresAt.toISOString()}${stale.length ? `; pruned ${stale.map((i) => i.id).join(', ')}` : ''}`,
  );
  const token = formatToken({ id, secret, host: at.host, port: at.port, pin: spkiPin(ca) });
  io.err(`Invitation ${id} for ${cidr}${request.name ? ` (${request.name})` : ''}, single use, valid until ${expiresAt.toISOString()}.`);
  io.err('On the new host, run (the token is the line on stdout; keep it out of shell history with');
  io.err('KNOCKER_JOIN_TOKEN=... or `knocker install --join -` reading it from stdin):');
  io.err('  knocker install --join TOKEN');
  if (pair) {
    io.err(
      `This primary has a standby (${pair.standby}): the node gets the connection string that lists both, and its address is allowed there too (the standby's pg_hba.conf follows the primary's list).`,
    );
  }
  io.err(`List: ${knockerCommand(root, 'exposedb --invites')}   Revoke: ${knockerCommand(root, `exposedb --revoke ${id}`)}`);
  io.out(token);
  return EXIT.ok;
}
