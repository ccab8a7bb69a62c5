// What every `knocker standby` command shares beyond the house's runner (src/system/runner.ts, which
// owns the lock, the standby log, --dry-run and apply): its flags, and its waits' defaults.
import { waitFor } from '../system/wait.js';

export type { RunFlags } from '../system/runner.js';

/** Waits until `probe` gives a value (the house's one wait, src/system/wait.ts), or throws after the timeout. */
export function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  return waitFor(what, () => probe(), { timeoutMs, everyMs });
}
