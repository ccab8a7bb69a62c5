// Plans for HAProxy changes, in the one plan/apply/undo model: install the package when it is
// missing, write the configuration (checked with `haproxy -c` on a temporary file beside it before
// it replaces the old one, which is kept as .bak), then start HAProxy or reload it without
// dropping connections. Undoing a reload puts the old configuration back and reloads again, so
// a change that fails leaves the old configuration serving. Used by `knocker haproxy` and by
// `knocker install` for the answers' haproxy section.
import fs from 'node:fs/promises';
import path from 'node:path';
import { formatListen, parseListen } from '../config/values.js';
import { ApplyFailedError } from '../errors.js';
import type { Check } from '../shared/checks.js';
import { installPackages, packageManagerFor, probeListen, readOsRelease, type PackageManager } from '../system/host.js';
import { readIfExists, writeFileAtomic } from '../system/files.js';
import type { Logger } from '../system/log.js';
import { packageVersion } from '../system/package.js';
import { fileStep, type Step } from '../system/plan.js';
import { run, which } from '../system/run.js';
import { unitActive } from '../system/service.js';
import { plural } from '../system/units.js';
import { isRoot } from '../system/users.js';
import {
  BACKEND,
  nodeAddress,
  nodeSpec,
  parseNodes,
  readSettings,
  readTemplate,
  renderConfig,
  settingsProblems,
  TemplateError,
  type ExistingConfig,
  type HaproxyAnswers,
  type HaproxyNode,
  type HaproxySettings,
} from './config.js';
import {
  configLayout,
  ensureFolders,
  findHaproxy,
  haproxyRunState,
  haproxyService,
  haproxyVersion,
  reloadHaproxy,
  startHaproxy,
  stopHaproxy,
  HAPROXY_UNIT,
  type HaproxyRunState,
  type HaproxyService,
} from './service.js';
import type { Root } from '../system/root.js';

/** The oldest HAProxy whose configuration language has everything the template uses. */
const MIN_VERSION = [2, 2];
/** The longest path a Unix socket may have (sun_path). */
const MAX_SOCKET_PATH = 107;

export interface HaproxyFacts {
  service: HaproxyService;
  binary: string | undefined;
  version: string | undefined;
  /** Set on a real host where HAProxy is missing and this package manager can install it. */
  install: PackageManager | undefined;
  existingText: string | undefined;
  existing: ExistingConfig;
  run: HaproxyRunState;
}

export async function inspectHaproxy(root: Root): Promise<HaproxyFacts> {
  const service = await haproxyService(root);
  const binary = await findHaproxy();
  const version = binary ? await haproxyVersion(binary) : undefined;
  let install: PackageManager | undefined;
  if (!binary && !root.isSandbox) {
    const manager = packageManagerFor(await readOsRelease());
    if (manager && (await which(manager))) install = manager;
  }
  const existingText = await readIfExists(service.paths.conf);
  return { service, binary, version, install, existingText, existing: readSettings(existingText), run: await haproxyRunState(service) };
}

function versionAtLeast(version: string, minimum: number[]): boolean {
  const parts = version.split('.').map(Number);
  for (const [i, want] of minimum.entries()) {
    const have = parts[i] ?? 0;
    if (have !== want) return have > want;
  }
  return true;
}

/** Everything checked before a change: nothing is changed when one fails. */
export async function haproxyChecks(settings: HaproxySettings, facts: HaproxyFacts): Promise<Check[]> {
  const checks: Check[] = [];
  const { service, binary, version } = facts;
  if (binary && version && !versionAtLeast(version, MIN_VERSION)) {
    checks.push({
      name: 'HAProxy',
      ok: false,
      detail: `${binary} is version ${version}; knocker needs ${MIN_VERSION.join('.')} or newer`,
      hints: ['upgrade HAProxy with the package manager'],
    });
  } else if (binary) {
    checks.push({ name: 'HAProxy', ok: true, detail: `${binary} (version ${version ?? 'unknown'})` });
  } else if (facts.install) {
    checks.push({ name: 'HAProxy', ok: true, detail: `not installed yet; will be installed with ${facts.install}` });
  } else {
    checks.push({
      name: 'HAProxy',
      ok: false,
      detail: service.root.isSandbox ? 'not installed (a sandbox root never installs packages)' : 'not installed, and no supported package manager here',
      hints: ['install it with the package manager, e.g. apt-get install haproxy'],
    });
  }
  if (!service.root.isSandbox && !isRoot()) {
    checks.push({
      name: 'privileges',
      ok: false,
      detail: 'setting up HAProxy on this host needs root',
      hints: ['run it with sudo, or use --root DIR for a sandbox'],
    });
  }
  const long = [service.paths.adminSocket, service.paths.statusSocket, service.paths.masterSocket].find((p) => p.length > MAX_SOCKET_PATH);
  if (long) checks.push({ name: 'socket paths', ok: false, detail: `${long} is too long for a Unix socket`, hints: ['use a shorter --root path'] });
  if (settings.tls) {
    const readable = await fs.access(settings.tls.cert).then(
      () => true,
      () => false,
    );
    checks.push(
      readable
        ? { name: 'certificate', ok: true, detail: settings.tls.cert }
        : {
            name: 'certificate',
            ok: false,
            detail: `cannot read ${settings.tls.cert}`,
            hints: ['give a PEM file holding the certificate chain and its private key'],
          },
    );
  }
  // A port HAProxy already listens on is its own; any other must be free.
  const current = facts.existing.kind === 'knocker' && facts.run.running ? facts.existing.settings : undefined;
  const listening = new Set(current ? [current.bind, ...(current.tls ? [current.tls.httpBind] : [])].map(formatListen) : []);
  for (const address of [settings.bind, ...(settings.tls ? [settings.tls.httpBind] : [])]) {
    const name = `listen address ${formatListen(address)}`;
    if (listening.has(formatListen(address))) {
      checks.push({ name, ok: true, detail: 'HAProxy listens there already' });
      continue;
    }
    const probe = await probeListen(address.host, address.port);
    const why: Record<string, string> = {
      EADDRINUSE: `port ${address.port} is already in use on ${address.host}`,
      EADDRNOTAVAIL: `${address.host} is not an address of this host`,
      EACCES: `binding port ${address.port} needs root`,
    };
    checks.push(
      probe.free
        ? { name, ok: true, detail: 'free' }
        : { name, ok: false, detail: why[probe.code] ?? `cannot listen there (${probe.code})`, hints: ['choose another address with --bind'] },
    );
  }
  return checks;
}

/** `haproxy -c` on the candidate file; HAProxy's alerts, naming the real file, when it fails. */
function validateWith(binary: () => Promise<string>, shownAs: string): (temp: string) => Promise<void> {
  return async (temp) => {
    const result = await run(await binary(), ['-c', '-f', temp], { allowFailure: true });
    if (result.exitCode === 0) return;
    const said = `${result.stdout}\n${result.stderr}`
      .split(temp)
      .join(shownAs)
      .split('\n')
      .filter((l) => /ALERT|Fatal|error/i.test(l));
    throw new Error(
      `the new configuration does not pass haproxy -c; ${shownAs} is left as it was:\n${said
        .slice(0, 8)
        .map((l) => `  ${l.trim()}`)
        .join('\n')}`,
    );
  };
}

export interface HaproxyStepsOptions {
  log: Logger;
  /**
   * Start HAProxy when it is stopped (setup and install). add and remove leave a HAProxy an
   * operator stopped as it is: the configuration applies when it starts.
   */
  startIfStopped: boolean;
}

export interface HaproxySteps {
  steps: Step[];
  /** The configuration as it will be written. */
  content: string;
}

/** The steps that bring HAProxy on this host to `settings`. Read-only: it only inspects. */
export async function haproxySteps(settings: HaproxySettings, facts: HaproxyFacts, options: HaproxyStepsOptions): Promise<HaproxySteps> {
  const { log } = options;
  const { service } = facts;
  const { paths } = service;
  const steps: Step[] = [];
  let binary = facts.binary;
  const resolveBinary = async () => {
    binary ??= await findHaproxy();
    if (!binary) throw new Error('haproxy is not installed');
    return binary;
  };
  if (!binary && facts.install) {
    const manager = facts.install;
    steps.push({
      kind: 'package',
      title: `Install HAProxy with ${manager}`,
      details: [`${manager} install -y haproxy`],
      changes: true,
      apply: () => installPackages(manager, ['haproxy'], { log }),
      // Removing packages on rollback could take other software with it; it stays installed.
      undo: async () => log.info('rollback: the haproxy package stays installed'),
    });
  }
  const layout = await configLayout(service, `knocker ${packageVersion()}`);
  if (!service.root.isSandbox && !layout.identity && facts.install) {
    // The package about to be installed creates the haproxy user.
    layout.identity = { chroot: paths.stateDir, user: 'haproxy', group: 'haproxy' };
  }
  let content: string;
  try {
    content = renderConfig(await readTemplate(), settings, layout);
  } catch (error) {
    if (!(error instanceof TemplateError)) throw error;
    throw new ApplyFailedError(`cannot fill the HAProxy template: ${error.message}`, [], ['nothing was changed; HAProxy keeps its configuration']);
  }
  const shownAs = paths.conf;
  const written = await fileStep({ file: paths.conf, shownAs, content, mode: 0o644, validate: validateWith(resolveBinary, shownAs) });
  const { run: state } = facts;
  // Written before the new file, gone once HAProxy has reloaded it: a run killed in between leaves
  // it, and the next run reloads even though the file is already as wanted.
  const pending = await fs.access(paths.reloadPending).then(
    () => true,
    () => false,
  );
  const notePending = () =>
    writeFileAtomic(paths.reloadPending, `${shownAs} was written by knocker (pid ${process.pid}); HAProxy has not reloaded it yet\n`, {
      mode: 0o644,
      backup: false,
    });
  const write: Step = {
    ...written,
    async apply() {
      if (state.running) {
        await fs.mkdir(path.dirname(paths.reloadPending), { recursive: true });
        await notePending();
      }
      return written.apply();
    },
    async undo() {
      await written.undo();
      // The file HAProxy runs is back in place.
      await fs.rm(paths.reloadPending, { force: true });
    },
  };
  const nodes = plural(settings.nodes.length, 'web node');
  steps.push({
    ...write,
    title: `${facts.existingText === undefined ? 'Write' : 'Update'} ${shownAs}: ${nodes} behind ${settings.tls ? 'https' : 'http'}://${formatListen(settings.bind)} (checked with haproxy -c first)`,
    details: [
      ...write.details,
      `checked with haproxy -c -f <a temporary file beside it> first${facts.existingText === undefined ? '' : `; if it fails the old file stays in place, else it is kept as ${shownAs}.bak`}`,
    ],
  });
  if (facts.existing.kind === 'foreign' && write.changes) {
    log.info(`${shownAs} was not written by knocker; it is replaced and kept as ${shownAs}.bak`);
  }

  const keep = (server: { backend: string; name: string; address: string; port: number }) =>
    server.backend === BACKEND && settings.nodes.some((n) => n.name === server.name && n.host === server.address && n.port === server.port);
  if (state.running && (write.changes || pending)) {
    const previous = facts.existingText;
    steps.push({
      kind: 'service',
      title: `Reload HAProxy (${state.where}) without dropping connections${write.changes ? '' : `: ${shownAs} was written by a run that was cut off before its reload`}`,
      details: [
        `save \`show servers state\` to ${paths.stateFile} (DRAIN and MAINT are kept)`,
        service.manager === 'systemd' ? `systemctl reload ${HAPROXY_UNIT}` : `SIGUSR2 to the master (${state.where})`,
        'wait until a new worker answers on the admin socket',
      ],
      changes: true,
      apply: () => reloadHaproxy(service, log, keep),
      async undo() {
        // Runs before the file step's undo: put the old configuration back, then reload onto it.
        if (previous !== undefined) await writeFileAtomic(paths.conf, previous, { backup: false });
        await reloadHaproxy(service, log);
      },
    });
  } else if (!state.running && !options.startIfStopped) {
    steps.push({
      kind: 'service',
      title: 'HAProxy is stopped: it uses this configuration when it starts',
      details: [],
      changes: false,
      apply: async () => {},
      undo: async () => {},
    });
  } else {
    steps.push({
      kind: 'service',
      title: state.running
        ? `HAProxy: running (${state.where}) with this configuration`
        : `Start HAProxy (${service.manager === 'systemd' ? HAPROXY_UNIT : 'daemon'}) and wait until its admin socket answers`,
      details:
        service.manager === 'systemd'
          ? [`systemctl enable ${HAPROXY_UNIT}; systemctl start ${HAPROXY_UNIT}`]
          : [`haproxy -W -f ${paths.conf} -p ${paths.pidFile} -S ${paths.masterSocket} (detached; log ${paths.logFile})`],
      changes: !state.running,
      async apply() {
        await ensureFolders(paths);
        if (service.manager === 'systemd') {
          await run('systemctl', ['enable', HAPROXY_UNIT], { log });
          // Debian's package starts haproxy.service, with its own default configuration, the
          // moment it is installed (the step above): a start would leave that one running.
          if (await unitActive(HAPROXY_UNIT))
            return `reloaded onto this configuration, as its package had started it with the default one: ${await reloadHaproxy(service, log)}`;
        }
        return startHaproxy(service, await resolveBinary(), log);
      },
      undo: async () => {
        await stopHaproxy(service, log);
      },
      remains: async () => (await haproxyRunState(service)).running,
    });
  }
  return { steps, content };
}

/**
 * The settings for an installer's haproxy answers (bind and nodes). A certificate in place is kept
 * while HAProxy keeps listening on the same address, and a standby node while its address stays.
 */
export function settingsFromAnswers(answers: HaproxyAnswers, existing: ExistingConfig): { settings?: HaproxySettings; problems: string[] } {
  const bind = parseListen(answers.bind);
  const { nodes, problems } = parseNodes(answers.nodes, false);
  if (!bind.ok) problems.unshift(`haproxy.bind: ${bind.error}`);
  if (!bind.ok || problems.length > 0) return { problems };
  const inPlace = existing.kind === 'knocker' ? existing.settings : undefined;
  const tls = inPlace?.tls && formatListen(inPlace.bind) === formatListen(bind.value) ? inPlace.tls : undefined;
  // The answers cannot say "backup": a standby in place stays one while its address stays.
  const standby = (node: HaproxyNode) => inPlace?.nodes.some((n) => n.backup && nodeSpec(n) === nodeSpec(node)) ?? false;
  const settings: HaproxySettings = { bind: bind.value, ...(tls ? { tls } : {}), nodes: nodes.map((n) => ({ ...n, backup: standby(n) })) };
  return { settings, problems: settingsProblems(settings) };
}

/** The lines that describe the settings, after a change or for `list`. */
export function describeSettings(settings: HaproxySettings): string[] {
  const lines = [
    settings.tls
      ? `HAProxy listens on https://${formatListen(settings.bind)} (certificate ${settings.tls.cert}), and redirects http://${formatListen(settings.tls.httpBind)} there`
      : `HAProxy listens on http://${formatListen(settings.bind)}`,
  ];
  for (const node of settings.nodes) lines.push(`  ${node.name.padEnd(16)} ${nodeAddress(node).padEnd(24)} ${node.backup ? 'backup' : 'active'}`);
  return lines;
}
