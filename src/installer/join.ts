// `knocker install --join TOKEN`: the token checked, the server verified against its pin, the
// invitation redeemed (src/join/redeem.ts); what it gives becomes the database answers of an
// option-3 install (src/installer/answers.ts, source "join"). A dry run verifies the server and
// stops there: redeeming spends the invitation, so its plan cannot be shown without using it.
import { parseListen } from '../config/values.js';
import { UsageError } from '../errors.js';
import { pinnedCa, redeemToken } from '../join/redeem.js';
import { parseToken, type JoinToken } from '../join/token.js';
import { sourceAddressFor } from '../postgres/connect.js';
import type { Logger } from '../system/log.js';
import type { JoinedAnswers } from './answers.js';

export function checkToken(text: string): JoinToken {
  const parsed = parseToken(text);
  if (!parsed.ok) throw new UsageError(`--join: ${parsed.error}; nothing was changed`);
  return parsed.value;
}

function sourceFor(token: JoinToken, listen: string | undefined): string | undefined {
  const parsed = listen === undefined ? undefined : parseListen(listen);
  return parsed?.ok ? sourceAddressFor(parsed.value.host, token.host) : undefined;
}

/** Dry run: whether the server at the token's address presents the pinned CA. Nothing is sent. */
export async function previewJoin(text: string, listen: string | undefined): Promise<string[]> {
  const token = checkToken(text);
  const ca = await pinnedCa(token, { sourceAddress: sourceFor(token, listen) });
  return [
    `Join: the server at ${token.host}:${token.port} presents the cluster CA the token pins (${ca.subject.replace(/\n/g, ', ')}); the secret was not used.`,
    `Installing would redeem invitation ${token.id} (it is single use) and then install this node with database option 3 on the connection string it gives.`,
    'Dry run: nothing was changed.',
  ];
}

export async function redeemForInstall(text: string, listen: string | undefined, log?: Logger): Promise<JoinedAnswers> {
  const token = checkToken(text);
  const payload = await redeemToken(token, { sourceAddress: sourceFor(token, listen), ...(log ? { log } : {}) });
  return { id: token.id, databaseUrl: payload.databaseUrl, databaseCa: payload.ca, ...(payload.serverName ? { serverName: payload.serverName } : {}) };
}
