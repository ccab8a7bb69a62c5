// The fresh-hosts run, in vitest's main process: takes the run's folder and bridge (cleaning up what
// a run that died left), builds or reuses each release's image, builds the packages, makes the bridge, and
// hands their paths to the test files. Whatever happens — a failed test, a Ctrl-C, a SIGTERM — the
// teardown or the signal handler ends every host, mount, link and folder the ledger lists.
import { execa } from 'execa';
import type { TestProject } from 'vitest/node';
import { e2eReleases, ensureImage, RELEASES } from './harness/image.js';
import { cleanUp, findLeftovers, labConfig, recordBridge, takeOwnership } from './harness/ledger.mjs';
import { buildPackages } from './harness/packages.js';

const say = (line: string) => process.stderr.write(`[e2e] ${line}\n`);

export default async function setup(project: TestProject): Promise<() => void> {
  const config = labConfig();
  const { leftovers, cleaned } = takeOwnership(config);
  if (leftovers.length > 0) say(`a previous run left ${leftovers.join(', ')}; cleaned up: ${cleaned.join(', ')}`);

  // Synchronous: vitest exits right after its own handler of these signals.
  const onSignal = (signal: NodeJS.Signals) => {
    say(`${signal}: powering off the hosts and removing what the run made`);
    for (const line of cleanUp(config)) say(`  ${line}`);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const teardown = () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    // The test files power off and remove their own hosts: one still here is a harness defect.
    const strays = findLeftovers(config).filter((l) => l.startsWith('process') || l.startsWith('mount'));
    cleanUp(config);
    if (strays.length > 0) throw new Error(`the run left ${strays.join(', ')} behind (now cleaned up)`);
  };

  try {
    await execa('ip', ['link', 'add', config.bridge, 'type', 'bridge']);
    recordBridge(config);
    await execa('ip', ['addr', 'add', `${config.machineAddress}/${config.prefixLength}`, 'dev', config.bridge]);
    await execa('ip', ['link', 'set', config.bridge, 'up']);
    // One image per release (KNOCKER_E2E_RELEASES, by default all): built one after the other.
    const images = [];
    for (const release of e2eReleases()) {
      const image = await ensureImage(config, release, say);
      images.push({ release, name: RELEASES[release], dir: image.dir, postgres: image.postgres, haproxy: image.haproxy });
    }
    say(`releases: ${images.map((i) => `${i.name} (${i.release}: PostgreSQL ${i.postgres}, HAProxy ${i.haproxy})`).join(', ')}`);
    project.provide('e2eImages', images);
    if (process.env.KNOCKER_E2E_PACKAGES !== 'none') {
      const packages = await buildPackages(config, say);
      project.provide('e2eDeb', packages.deb);
      project.provide('e2eVersion', packages.version);
      project.provide('e2eNextDeb', packages.nextDeb);
      project.provide('e2eNextVersion', packages.nextVersion);
    }
  } catch (error) {
    teardown();
    throw error;
  }
  return teardown;
}
