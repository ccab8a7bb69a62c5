// What the upgrade's commands say and check of a run left open (stopped, or cut off outright): the
// upgrade command it may have left running, and how the last one ended.
import { PreflightError } from '../errors.js';
import { isAlive } from '../system/lock.js';
import type { Root } from '../system/root.js';
import type { Journal } from '../system/upgrade-journal.js';
import { findUpgradeCommand } from './command.js';

/** A cut-off run's upgrade command may still be at work (it has a session of its own): never start a second. */
export async function commandStillRunning(journal: Journal, root: Root): Promise<void> {
  const running = journal.running;
  if (!running) return;
  const pid = running.pid !== undefined && isAlive(running.pid) ? running.pid : await findUpgradeCommand(running.marker);
  if (pid !== undefined) {
    throw new PreflightError(`the upgrade command for ${running.server} (pid ${pid}) is still running from the run that was cut off`, [
      `let it finish (or end it), then run this again${hintFor(root)}`,
    ]);
  }
}

export function hintFor(root: Root): string {
  return root.isSandbox ? ` --root ${root.dir}` : '';
}

/** " (the last one finished at …)", said when there is nothing to resume or roll back. */
export function lastRun(recorded: Journal | undefined): string {
  return recorded ? ` (the last one ${recorded.state === 'done' ? 'finished' : 'was rolled back'} at ${recorded.updatedAt})` : '';
}
