// The HAProxy knocker set up on this host, as the commands after setup need it: its settings read
// back from the configuration in place (or why there are none), and HAProxy not answering as a
// preflight failure with what to look at.
import { PreflightError } from '../errors.js';
import { knockerCommand } from '../shared/hint.js';
import type { Root } from '../system/root.js';
import type { HaproxySettings } from './config.js';
import type { HaproxyFacts } from './plan.js';
import { RuntimeApiError } from './runtime.js';

/** The settings of the configuration knocker wrote; a preflight error when there is none. */
export function knockerSettings(facts: HaproxyFacts): HaproxySettings {
  const { existing } = facts;
  const conf = facts.service.paths.conf;
  if (existing.kind === 'knocker') return existing.settings;
  const root = facts.service.root;
  if (existing.kind === 'unreadable')
    throw new PreflightError(`${conf} was written by knocker but cannot be read back: ${existing.problem}`, [
      `write it again with the nodes: ${knockerCommand(root, 'haproxy setup NAME=HOST:PORT …')}`,
    ]);
  throw new PreflightError(
    `HAProxy is not set up by knocker on this host (${existing.kind === 'none' ? `no ${conf}` : `${conf} was not written by knocker`})`,
    [`set it up first: ${knockerCommand(root, 'haproxy setup NAME=HOST:PORT …')}`],
  );
}

/** An unreachable runtime API as a preflight error (is HAProxy running?); any other error as it is. */
export function unreachable(error: unknown, root: Root): never {
  if (error instanceof RuntimeApiError && error.unreachable) {
    throw new PreflightError(`HAProxy does not answer: ${error.message}`, [
      `is it running? knocker service status haproxy${root.isSandbox ? ` --root ${root.dir}` : ''}`,
    ]);
  }
  throw error;
}
