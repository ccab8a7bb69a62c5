// `knocker upgrade --rollback`: an unfinished upgrade closed, rotation put back as it was, by the
// house's runner under the upgrade's lock. Every line is progress (stderr); nothing is upgraded back.
import { PreflightError, UsageError } from '../errors.js';
import { saveServerState } from '../haproxy/service.js';
import type { Output } from '../shared/output.js';
import { PATHS, type Root } from '../system/root.js';
import { withRun } from '../system/runner.js';
import { UPGRADE_RUN } from './apply.js';
import { readCluster } from './cluster.js';
import { journalOwnerAlive, JournalWriter, readJournal } from './journal.js';
import { commandStillRunning, hintFor, lastRun } from './open-run.js';
import { healthChecksOn, putBackServer } from './steps.js';

/**
 * `--rollback`: puts rotation back as it was before the upgrade for every server not done (each
 * back in rotation once its check passes), turns health checks on again, and closes the journal.
 * Releases already upgraded stay upgraded.
 */
export async function rollbackUpgrade(root: Root, io: Output): Promise<number> {
  const file = root.path(PATHS.upgradeJournal);
  const journal = await readJournal(file).catch((error: Error) => {
    throw new PreflightError(error.message);
  });
  if (!journal || journal.state === 'done' || journal.state === 'rolled-back') {
    throw new UsageError(`there is no upgrade to roll back${lastRun(journal)}`);
  }
  if (journalOwnerAlive(journal))
    throw new PreflightError(`knocker upgrade is running (pid ${journal.pid}): stop it first (Ctrl-C puts rotation back by itself)`);
  await commandStillRunning(journal, root);
  return withRun(root, { ...UPGRADE_RUN, command: 'knocker upgrade --rollback' }, { dryRun: false, json: false }, io, async ({ log }) => {
    const facts = await readCluster(root);
    const writer = new JournalWriter(file, journal);
    io.err(`Rolling back the upgrade started ${journal.startedAt}${journal.target ? ` (to ${journal.target})` : ''}:`);
    if (journal.healthDisabled) {
      io.err(`  ${journal.healthDisabled}: health checks on again`);
      await healthChecksOn({ paths: facts.paths, journal: writer }, journal.healthDisabled);
    }
    for (const server of journal.servers) {
      const admin = facts.adminStates.get(server.name);
      if (admin === undefined) {
        io.err(`  ${server.name}: not in the running HAProxy any more, left as it is`);
      } else if (server.phase === 'done') {
        io.err(`  ${server.name}: upgraded, in rotation`);
      } else if (admin === 'ready' && !server.heldOut) {
        io.err(`  ${server.name}: in rotation as before`);
      } else {
        io.err(`  ${server.name}: ${await putBackServer({ paths: facts.paths, journal: writer }, server.name)}`);
      }
    }
    await saveServerState(facts.paths, log);
    await writer.update((jr) => {
      jr.state = 'rolled-back';
    }, 'rolled back');
    log.info('upgrade rolled back');
    const held = writer.journal.servers.filter((s) => s.heldOut).map((s) => s.name);
    if (held.length > 0) {
      io.err(
        `Kept in maintenance, out of step with the migrated database: ${held.join(', ')}. Upgrade ${held.length === 1 ? 'it' : 'them'}, then: knocker haproxy ready NAME${hintFor(root)}`,
      );
    }
    const upgraded = writer.journal.servers.filter((s) => s.phase === 'done' || s.phase === 'upgraded');
    if (upgraded.length > 0) io.err(`Already upgraded (not downgraded): ${upgraded.map((s) => s.name).join(', ')}.`);
    io.err(`Rotation restored. Watch it: knocker status${hintFor(root)}`);
    return 0;
  });
}
