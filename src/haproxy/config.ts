// The HAProxy configuration knocker owns: its settings (where it listens, optional TLS, the web
// nodes) rendered from assets/haproxy.cfg.template, and read back from the file knocker wrote, so
// that add, remove and list start from what is really in place. Pure functions besides reading
// the template.
import fs from 'node:fs/promises';
import path from 'node:path';
import { formatListen, parseListen, parseNodeSpec, parseServerName, type ListenAddress } from '../config/values.js';
import { packageRoot, readPackageFile } from '../system/package.js';
import { quoted } from '../shared/printable.js';

/** The names the runtime API knows them by: `set server web_nodes/web-1 state drain`. */
export const FRONTEND = 'knocknoc';
export const BACKEND = 'web_nodes';
/** HAProxy's persistence cookie; its value is the node's name. */
export const COOKIE = 'SRVID';
const MARKER = '# Written by knocker';

/** The HAProxy part of the installer's answers (answers file `haproxy:`, or the TUI's question). */
export interface HaproxyAnswers {
  bind: string;
  /** NAME=HOST:PORT */
  nodes: string[];
}

export interface HaproxyNode {
  name: string;
  host: string;
  port: number;
  /** A hot/cold standby: serves only while every active node is down. */
  backup: boolean;
}

export interface TlsSettings {
  /** PEM file with the certificate chain and its private key. */
  cert: string;
  /** Where plain HTTP is answered with a redirect to HTTPS. */
  httpBind: ListenAddress;
}

export interface HaproxySettings {
  bind: ListenAddress;
  tls?: TlsSettings;
  nodes: HaproxyNode[];
  /** Where HAProxy's own Prometheus exporter answers GET /metrics (no authentication); none: off. */
  metrics?: ListenAddress;
}

/** The exporter's port on a real host (the port HAProxy's own documentation uses for it). */
export const DEFAULT_METRICS_PORT = 8405;
export const METRICS_FRONTEND = 'metrics';

/** Whether only this host can reach an address (127.0.0.0/8, ::1). */
export function isLoopbackHost(host: string): boolean {
  return /^127\./.test(host) || host === '::1' || host === 'localhost';
}

/** Where things are on this host (real paths), and how HAProxy runs here. */
export interface ConfigLayout {
  adminSocket: string;
  statusSocket: string;
  stateFile: string;
  /** On a real host: chroot and drop to the haproxy user. None under a sandbox root. */
  identity?: { chroot: string; user: string; group: string };
  /** Where its standard output ends up, for the comment in the file. */
  logTarget: string;
  /** "knocker 1.0.0", for the header. */
  writtenBy: string;
}

export const DEFAULT_HTTP_PORT = 80;
export const DEFAULT_HTTPS_PORT = 443;

export function addressOf(host: string, port: number): ListenAddress {
  return { host, port, family: host.includes(':') ? 6 : 4 };
}

/** `10.0.0.11:8756`, `[2001:db8::11]:8756`. */
export function nodeAddress(node: Pick<HaproxyNode, 'host' | 'port'>): string {
  return formatListen(addressOf(node.host, node.port));
}

/** `web-1=10.0.0.11:8756`, as nodes are written on the command line. */
export function nodeSpec(node: HaproxyNode): string {
  return `${node.name}=${nodeAddress(node)}`;
}

/** Parses `NAME=HOST:PORT` specs; every bad one is reported. */
export function parseNodes(specs: string[], backup: boolean): { nodes: HaproxyNode[]; problems: string[] } {
  const nodes: HaproxyNode[] = [];
  const problems: string[] = [];
  for (const spec of specs) {
    const parsed = parseNodeSpec(spec);
    if (parsed.ok) nodes.push({ ...parsed.value, backup });
    else problems.push(parsed.error);
  }
  return { nodes, problems };
}

/** A problem of a node set, with the index of the node it was found at (for file:line:column). */
export interface NodeSetProblem {
  message: string;
  node?: number;
}

/** What is wrong with a node set as a whole: a name HAProxy cannot take, two nodes with one name or one address, no active node. */
export function nodeSetIssues(nodes: HaproxyNode[]): NodeSetProblem[] {
  const problems: NodeSetProblem[] = [];
  const byName = new Map<string, HaproxyNode>();
  const byAddress = new Map<string, HaproxyNode>();
  for (const [index, node] of nodes.entries()) {
    // A name from the registry reaches here unparsed: it becomes an HAProxy word and a cookie value.
    const name = parseServerName(node.name);
    if (!name.ok || name.value !== node.name)
      problems.push({ node: index, message: `HAProxy cannot take this node's name: ${name.ok ? `${quoted(node.name)} has spaces around it` : name.error}` });
    const other = byName.get(node.name);
    if (other)
      problems.push({
        node: index,
        message: `two nodes are named ${quoted(node.name)} (${nodeAddress(other)} and ${nodeAddress(node)}): the name is also the persistence cookie, it must be unique`,
      });
    byName.set(node.name, node);
    const same = byAddress.get(nodeAddress(node));
    if (same && same.name !== node.name) problems.push({ node: index, message: `${same.name} and ${node.name} are the same address, ${nodeAddress(node)}` });
    byAddress.set(nodeAddress(node), node);
  }
  if (nodes.length > 0 && nodes.every((n) => n.backup)) problems.push({ message: 'every node is a backup: at least one must be active' });
  if (nodes.length === 0) problems.push({ message: 'no web node: give at least one as NAME=HOST:PORT' });
  return problems;
}

export function nodeSetProblems(nodes: HaproxyNode[]): string[] {
  return nodeSetIssues(nodes).map((p) => p.message);
}

/** The settings' own consistency (nodes apart). */
export function settingsProblems(settings: HaproxySettings): string[] {
  const problems = nodeSetProblems(settings.nodes);
  if (settings.tls && formatListen(settings.tls.httpBind) === formatListen(settings.bind)) {
    problems.push(`HTTPS and the plain-HTTP redirect cannot both listen on ${formatListen(settings.bind)}`);
  }
  return problems;
}

const TEMPLATE = 'assets/haproxy.cfg.template';

export function templateFile(root = packageRoot()): string {
  return path.join(root, TEMPLATE);
}

export class TemplateError extends Error {}

/** Why a text cannot be one word of HAProxy's configuration language, or undefined. */
export function haproxyWordProblem(text: string): string | undefined {
  if (text.includes("'") || /[\u0000-\u001F\u007F]/.test(text))
    return `${quoted(text)} cannot be written in an HAProxy configuration (it holds a ' or a control character)`;
  return undefined;
}

/** One word of HAProxy's configuration language: quoted when it needs to be. */
function word(text: string): string {
  if (/^[A-Za-z0-9_./:@+,=-]+$/.test(text)) return text;
  const problem = haproxyWordProblem(text);
  if (problem) throw new TemplateError(problem);
  return `'${text}'`;
}

function redirectLine(bind: ListenAddress): string {
  const port = bind.port === DEFAULT_HTTPS_PORT ? '' : `:${bind.port}`;
  // The host the client asked for, without the plain-HTTP port, then the HTTPS port and the path.
  return `    http-request redirect location 'https://%[req.hdr(host),regsub(:[0-9]+$,)]${port}%[pathq]' code 301 unless { ssl_fc }`;
}

/** Fills in the template. Throws TemplateError when the template is not one knocker can fill. */
export function renderConfig(template: string, settings: HaproxySettings, layout: ConfigLayout): string {
  const { bind, tls } = settings;
  const blocks: Record<string, string[]> = {
    header: [
      `${MARKER} (${layout.writtenBy}) for the Knocknoc web nodes. Change it with knocker haproxy`,
      '# setup|add|remove: hand edits are replaced the next time knocker writes it.',
    ],
    processIdentity: layout.identity
      ? [`    chroot ${word(layout.identity.chroot)}`, `    user ${word(layout.identity.user)}`, `    group ${word(layout.identity.group)}`]
      : ['    # Under a sandbox root: no chroot and no user switch.'],
    binds: tls
      ? [`    bind ${formatListen(bind)} ssl crt ${word(tls.cert)} alpn h2,http/1.1`, `    bind ${formatListen(tls.httpBind)}`]
      : [`    bind ${formatListen(bind)}`],
    redirectToHttps: tls ? ['    # Plain HTTP is only a redirect to HTTPS.', redirectLine(bind)] : [],
    metrics: settings.metrics
      ? [
          "# HAProxy's own Prometheus exporter (GET /metrics). It has no authentication: knocker binds it to",
          '# loopback unless told otherwise (knocker haproxy setup --metrics-bind, --no-metrics).',
          `frontend ${METRICS_FRONTEND}`,
          `    bind ${formatListen(settings.metrics)}`,
          // A scrape every few seconds is not worth a log line (and `no log` would leave httplog's format without a target: a warning).
          '    http-request set-log-level silent',
          '    http-request use-service prometheus-exporter if { path /metrics }',
        ]
      : [],
    servers: settings.nodes.map((n) => `    server ${n.name} ${nodeAddress(n)} cookie ${n.name} check${n.backup ? ' backup' : ''}`),
  };
  const inline: Record<string, string> = {
    logTarget: layout.logTarget,
    adminSocket: word(layout.adminSocket),
    statusSocket: word(layout.statusSocket),
    stateFile: word(layout.stateFile),
    frontend: FRONTEND,
    backend: BACKEND,
    cookie: COOKIE,
    cookieSecure: tls ? ' secure' : '',
  };
  const required = ['header', 'servers', 'binds', 'adminSocket', 'statusSocket', 'stateFile', 'backend', 'cookie'];
  const used = new Set<string>();
  const unknown = new Set<string>();
  const out: string[] = [];
  for (const line of template.split('\n')) {
    if (line.startsWith('##')) continue;
    const alone = /^\s*\{\{(\w+)\}\}\s*$/.exec(line)?.[1];
    if (alone !== undefined && alone in blocks) {
      used.add(alone);
      out.push(...blocks[alone]!);
      continue;
    }
    out.push(
      line.replace(/\{\{(\w*)\}\}/g, (_all, name: string) => {
        if (name in inline) {
          used.add(name);
          return inline[name]!;
        }
        unknown.add(name in blocks ? `{{${name}}} (it must stand alone on its line)` : `{{${name}}}`);
        return '';
      }),
    );
  }
  const missing = required.filter((name) => !used.has(name));
  if (unknown.size > 0 || missing.length > 0) {
    throw new TemplateError(
      [
        ...(unknown.size > 0 ? [`unknown placeholder${unknown.size === 1 ? '' : 's'} ${[...unknown].join(', ')}`] : []),
        ...(missing.length > 0 ? [`no ${missing.map((m) => `{{${m}}}`).join(', ')}`] : []),
      ].join('; '),
    );
  }
  return `${out.join('\n').replace(/\n+$/, '')}\n`;
}

/** The template of another file, or the one this release ships. */
export async function readTemplate(file?: string): Promise<string> {
  try {
    return file ? await fs.readFile(file, 'utf8') : readPackageFile(TEMPLATE);
  } catch (error) {
    throw new TemplateError(`cannot read the template ${file ?? templateFile()}: ${(error as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Reading back the file knocker wrote

export type ExistingConfig =
  | { kind: 'none' }
  /** A configuration knocker did not write (the package's default, or a hand-made one). */
  | { kind: 'foreign' }
  | { kind: 'knocker'; settings: HaproxySettings }
  /** knocker's marker, but not readable as knocker wrote it. */
  | { kind: 'unreadable'; problem: string };

/** Splits a configuration line into words, honouring single and double quotes. */
function words(line: string): string[] {
  const result: string[] = [];
  const pattern = /'([^']*)'|"([^"]*)"|(\S+)/g;
  for (let match = pattern.exec(line); match; match = pattern.exec(line)) {
    if (match[3]?.startsWith('#')) break;
    result.push(match[1] ?? match[2] ?? match[3]!);
  }
  return result;
}

const SECTION = /^(global|defaults|frontend|backend|listen|peers|resolvers|userlist|program|cache|ring|http-errors|mailers)\b/;

/** The settings a configuration written by knocker holds. */
export function readSettings(text: string | undefined): ExistingConfig {
  if (text === undefined) return { kind: 'none' };
  if (!text.split('\n').some((l) => l.startsWith(MARKER))) return { kind: 'foreign' };
  let section = '';
  const binds: Array<{ address: ListenAddress; cert?: string }> = [];
  const nodes: HaproxyNode[] = [];
  let metrics: ListenAddress | undefined;
  for (const [i, line] of text.split('\n').entries()) {
    if (SECTION.test(line)) {
      section = words(line).slice(0, 2).join(' ');
      continue;
    }
    const [keyword, ...args] = words(line);
    const at = `line ${i + 1}`;
    if (section === `frontend ${FRONTEND}` && keyword === 'bind') {
      const address = parseListen(args[0] ?? '');
      if (!address.ok) return { kind: 'unreadable', problem: `${at}: bind ${args[0] ?? ''}: ${address.error}` };
      const crt = args.indexOf('crt');
      binds.push({ address: address.value, cert: args.includes('ssl') && crt >= 0 ? args[crt + 1] : undefined });
    } else if (section === `frontend ${METRICS_FRONTEND}` && keyword === 'bind') {
      const address = parseListen(args[0] ?? '');
      if (!address.ok) return { kind: 'unreadable', problem: `${at}: bind ${args[0] ?? ''}: ${address.error}` };
      metrics = address.value;
    } else if (section === `backend ${BACKEND}` && keyword === 'server') {
      const [name = '', address = ''] = args;
      const spec = parseNodeSpec(`${name}=${address}`);
      if (!spec.ok) return { kind: 'unreadable', problem: `${at}: server ${name} ${address}: ${spec.error}` };
      nodes.push({ ...spec.value, backup: args.includes('backup') });
    }
  }
  const secure = binds.find((b) => b.cert !== undefined);
  const plain = binds.find((b) => b.cert === undefined);
  const bind = secure ?? plain;
  if (!bind) return { kind: 'unreadable', problem: `no bind line in frontend ${FRONTEND}` };
  const settings: HaproxySettings = { bind: bind.address, nodes, ...(metrics ? { metrics } : {}) };
  if (secure) {
    if (!plain) return { kind: 'unreadable', problem: `frontend ${FRONTEND} has HTTPS but no plain-HTTP bind` };
    settings.tls = { cert: secure.cert!, httpBind: plain.address };
  }
  return { kind: 'knocker', settings };
}

/** Where a node's host reaches a node listening on `listen`: a wildcard means loopback. */
export function reachableAddress(listen: ListenAddress): string {
  return listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
}

/** The haproxy answers that give back the settings knocker wrote on this host. */
export function answersFromSettings(existing: ExistingConfig): HaproxyAnswers | undefined {
  if (existing.kind !== 'knocker') return undefined;
  return { bind: formatListen(existing.settings.bind), nodes: existing.settings.nodes.map(nodeSpec) };
}
