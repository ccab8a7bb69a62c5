// Who the client is. X-Forwarded-For is believed only from TrustedForwarders: starting at the
// direct peer, while the current hop is a trusted proxy, step to the address it says it got the
// request from (the chain read right to left). The first untrusted hop is the client, so a client
// cannot pose as anyone by sending its own X-Forwarded-For through a trusted proxy.
import ipaddr from 'ipaddr.js';

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses one address as it appears in a socket or an X-Forwarded-For entry (`[v6]:port`, `v4:port`). */
export function parseAddress(text: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  let value = text.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(value);
  if (bracketed) value = bracketed[1]!;
  else if (/^\d{1,3}(\.\d{1,3}){3}:\d+$/.test(value)) value = value.slice(0, value.lastIndexOf(':'));
  if (value.includes('%')) value = value.slice(0, value.indexOf('%'));
  if (!ipaddr.isValid(value)) return undefined;
  if (!ipaddr.IPv4.isValidFourPartDecimal(value) && !value.includes(':')) return undefined;
  // ::ffff:127.0.0.1 (a dual-stack socket's view of an IPv4 peer) is the IPv4 address.
  return ipaddr.process(value);
}

export class TrustedForwarders {
  private readonly ranges: Range[];

  /** `cidrs` are already validated (parseTrustedForwarders). */
  constructor(cidrs: readonly string[]) {
    this.ranges = cidrs.map((cidr) => ipaddr.parseCIDR(cidr));
  }

  includes(address: ipaddr.IPv4 | ipaddr.IPv6): boolean {
    return this.ranges.some(([range, bits]) => range.kind() === address.kind() && address.match(range, bits));
  }
}

/** The entries of every X-Forwarded-For header, in order (several headers read as one list). */
function forwardedChain(header: string | string[] | undefined): string[] {
  if (header === undefined) return [];
  const joined = Array.isArray(header) ? header.join(',') : header;
  return joined
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
}

/** The client's address for a request from `peer` carrying `forwardedFor`. */
export function clientAddress(peer: string | undefined, forwardedFor: string | string[] | undefined, trusted: TrustedForwarders): string {
  const direct = peer === undefined ? undefined : parseAddress(peer);
  if (!direct) return peer ?? 'unknown';
  let current = direct;
  const chain = forwardedChain(forwardedFor);
  while (chain.length > 0 && trusted.includes(current)) {
    const previous = parseAddress(chain.pop()!);
    // A hop that is not an address ends the walk: the last proxy we trust is all we know.
    if (!previous) break;
    current = previous;
  }
  return current.toString();
}
