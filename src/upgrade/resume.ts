// `knocker upgrade --resume`: the open run's journal taken up again — where it stands checked
// against the cluster as it is now, the command given again (or as recorded), --to-version held to
// the release the first server came back on — never while that run's upgrade command still runs.
import { UsageError } from '../errors.js';
import type { Check } from '../shared/checks.js';
import type { Root } from '../system/root.js';
import { resumeChecks, type ClusterFacts } from './cluster.js';
import type { Journal } from './journal.js';
import { commandStillRunning } from './open-run.js';

export async function resumeJournal(
  root: Root,
  facts: ClusterFacts,
  open: Journal,
  kept: { text: string; masked: boolean },
  toVersion: string | undefined,
): Promise<{ journal: Journal; checks: Check[] }> {
  const checks = resumeChecks(facts, open);
  const journal = structuredClone(open);
  journal.command = kept.text;
  journal.commandMasked = kept.masked;
  if (toVersion !== undefined && journal.target !== undefined && toVersion !== journal.target) {
    throw new UsageError(`--to-version ${toVersion}: this upgrade is to ${journal.target} (the first server came back on it)`);
  }
  if (toVersion !== undefined) journal.toVersion = toVersion;
  await commandStillRunning(open, root);
  return { journal, checks };
}
