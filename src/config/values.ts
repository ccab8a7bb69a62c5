// Parsing and validating the values of knocknoc.conf and the installer's answers. Pure functions:
// the TUI validates as the operator types, the answers file and flags go through the same checks.
import ipaddr from 'ipaddr.js';
import { quoted } from '../shared/printable.js';

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(error: string): Parsed<T> => ({ ok: false, error });

export interface ListenAddress {
  host: string;
  port: number;
  family: 4 | 6;
}

/** Why `value` is not an IP address knocker takes, or undefined when it is one. */
function ipProblem(value: string): string | undefined {
  if (value.includes('%')) return 'has a zone index (%…), which is not supported';
  if (ipaddr.IPv4.isValidFourPartDecimal(value)) return undefined;
  if (value.includes(':') && ipaddr.IPv6.isValid(value)) {
    return ipaddr.IPv6.parse(value).isIPv4MappedAddress() ? 'is an IPv4-mapped IPv6 address; write the IPv4 address instead' : undefined;
  }
  return 'is not an IPv4 or IPv6 address';
}

/** Parses one IP address strictly (dotted-quad IPv4, or IPv6 without a zone). */
export function parseIp(text: string): Parsed<ipaddr.IPv4 | ipaddr.IPv6> {
  const value = text.trim();
  const problem = ipProblem(value);
  if (problem) return fail(`${quoted(value)} ${problem}`);
  return ok(ipaddr.IPv4.isValidFourPartDecimal(value) ? ipaddr.IPv4.parse(value) : ipaddr.IPv6.parse(value));
}

export function formatListen(listen: ListenAddress): string {
  return listen.family === 6 ? `[${listen.host}]:${listen.port}` : `${listen.host}:${listen.port}`;
}

/** An example of the address written right, when the host is one (for hints); else a generic one. */
function listenExample(host: string, port: string): string {
  const p = /^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535 ? port : '8756';
  if (ipProblem(host) === undefined) return host.includes(':') ? `[${host}]:${p}` : `${host}:${p}`;
  return host.includes(':') ? `[::1]:${p}` : `0.0.0.0:${p}`;
}

/** `IP:port`, IPv6 in brackets (`[::]:8756`), port 1–65535. */
export function parseListen(text: string): Parsed<ListenAddress> {
  const value = text.trim();
  if (value === '') return fail('enter an address and port, e.g. 0.0.0.0:8756');
  let host: string;
  let portText: string;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/s.exec(value);
  if (bracketed) {
    host = bracketed[1]!;
    if (bracketed[2] === undefined) return fail(`${quoted(value)} has no port; write it as IP:port, e.g. ${listenExample(host, '')}`);
    portText = bracketed[2];
  } else {
    const colon = value.lastIndexOf(':');
    if (colon < 0) return fail(`${quoted(value)} has no port; write it as IP:port, e.g. ${listenExample(value, '')}`);
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
    if (host.includes(':')) {
      // An IPv6 address without brackets: the part before the last ":" with its port, else the whole as the address.
      const example = ipProblem(host) === undefined || ipProblem(value) !== undefined ? listenExample(host, portText) : listenExample(value, '');
      return fail(`write an IPv6 address in brackets, e.g. ${example}`);
    }
  }
  const addr = parseIp(host);
  if (!addr.ok) return addr;
  if (!/^\d{1,5}$/.test(portText)) return fail(`${quoted(portText)} is not a port number (1–65535)`);
  const port = Number(portText);
  if (port < 1 || port > 65535) return fail(`port ${port} is out of range (1–65535)`);
  const family = addr.value.kind() === 'ipv4' ? 4 : 6;
  return ok({ host: addr.value.toString(), port, family });
}

/** One CIDR, normalised to its network address (`10.1.2.3/24` → `10.1.2.0/24`); a bare IP is /32 or /128. */
export function parseCidr(text: string): Parsed<string> {
  const value = text.trim();
  if (value === '') return fail('empty address range');
  const slash = value.indexOf('/');
  const addressText = slash < 0 ? value : value.slice(0, slash);
  const problem = ipProblem(addressText.trim());
  if (problem) return fail(`${quoted(value)}: ${problem.replace(/^is /, 'the address is ').replace(/^has /, 'the address has ')}`);
  const addr = parseIp(addressText) as { ok: true; value: ipaddr.IPv4 | ipaddr.IPv6 };
  const max = addr.value.kind() === 'ipv4' ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const bitsText = value.slice(slash + 1);
    if (!/^\d{1,3}$/.test(bitsText) || Number(bitsText) > max) {
      return fail(`${quoted(value)}: the prefix length must be 0–${max}`);
    }
    bits = Number(bitsText);
  }
  const network =
    addr.value.kind() === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(`${addr.value.toString()}/${bits}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${addr.value.toString()}/${bits}`);
  return ok(`${network.toString()}/${bits}`);
}

/** A CIDR that may not be /0 (which would match every address). */
export function parseNarrowCidr(text: string, whyNotZero: string): Parsed<string> {
  const parsed = parseCidr(text);
  if (parsed.ok && parsed.value.endsWith('/0')) return fail(`${quoted(text.trim())} matches every address: ${whyNotZero}`);
  return parsed;
}

/** One or more CIDRs, comma or space separated, normalised and de-duplicated in order. */
export function parseTrustedForwarders(input: string | readonly string[]): Parsed<string[]> {
  const parts = (typeof input === 'string' ? [input] : input).flatMap((p) => p.split(/[,\s]+/)).filter((p) => p !== '');
  if (parts.length === 0) return fail('enter at least one address range, e.g. 127.0.0.1/32');
  const result: string[] = [];
  for (const part of parts) {
    const cidr = parseNarrowCidr(part, 'that would trust X-Forwarded-For from any client; list your proxies instead');
    if (!cidr.ok) return cidr;
    if (!result.includes(cidr.value)) result.push(cidr.value);
  }
  return ok(result);
}

export type DatabaseOption = 1 | 2 | 3;

export function parseDatabaseOption(input: string | number): Parsed<DatabaseOption> {
  const value = String(input).trim();
  if (value === '1' || value === '2' || value === '3') return ok(Number(value) as DatabaseOption);
  return fail(`${quoted(value)} is not an option; choose 1, 2 or 3`);
}

/** A server name usable as an HAProxy server name and cookie value. */
export function parseServerName(input: string): Parsed<string> {
  const value = input.trim();
  if (/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(value)) return ok(value);
  return fail(`${quoted(value)} is not a valid server name: use 1–63 letters, digits, ".", "_" or "-", starting with a letter or digit`);
}

/** `NAME=HOST:PORT`, as HAProxy nodes are written. */
export function parseNodeSpec(text: string): Parsed<{ name: string; host: string; port: number }> {
  const eq = text.indexOf('=');
  if (eq < 0) return { ok: false, error: `${quoted(text)} is not NAME=HOST:PORT` };
  const name = parseServerName(text.slice(0, eq));
  if (!name.ok) return name;
  const address = parseListen(text.slice(eq + 1));
  if (!address.ok) return { ok: false, error: `${quoted(text)}: ${address.error}` };
  return { ok: true, value: { name: name.value, host: address.value.host, port: address.value.port } };
}

/** A host name turned into a valid server name (the default). */
export function serverNameFromHostname(hostname: string): string {
  const cleaned = hostname
    .split('.')[0]!
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 63);
  return cleaned === '' ? 'knocknoc' : cleaned;
}

export const DEFAULTS = {
  listen: '127.0.0.1:8756',
  trustedForwarders: ['127.0.0.1/32'],
  databaseOption: 1 as DatabaseOption,
};
