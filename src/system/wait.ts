// The one wait of the house (Patroni's polling_loop, on Node's own timers): the helper owns time
// (a deadline, a pause between probes, an AbortSignal), the probe owns the test. A probe returns a
// value when the wait is over, `undefined` to keep waiting, or throws `giveUp(…)` to stop at once;
// any other error it throws is remembered as what was last seen and the wait goes on (a server
// still starting refuses connections). Nothing else in src/ writes its own poll loop or a
// `new Promise((r) => setTimeout(r, …))`.
import { setTimeout as delay } from 'node:timers/promises';
import { errorMessage } from '../errors.js';
import { seconds } from './units.js';

export interface WaitOptions {
  /** How long to wait in all before giving up with a WaitTimeout. */
  timeoutMs: number;
  /** The pause between two probes (the machine may be busy: probes are not timed). Default 100 ms. */
  everyMs?: number;
  /** Ends the wait at once (Ctrl-C, the caller's own deadline); the signal's reason is thrown. */
  signal?: AbortSignal;
}

/** What a probe can tell the wait besides its answer: the last thing it saw, for the timeout's message. */
export interface Probe {
  seen(text: string): void;
}

/** Thrown by a probe to end the wait at once: waiting longer cannot help. */
export class GiveUp extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GiveUp';
  }
}

export function giveUp(message: string, cause?: unknown): never {
  throw new GiveUp(message, cause === undefined ? undefined : { cause });
}

/** A read inside a probe whose failure ends the wait at once, with its own words (a socket gone: waiting cannot help). */
export function orGiveUp<T>(work: Promise<T>): Promise<T> {
  return work.catch((error: unknown) => giveUp(errorMessage(error), error));
}

/** The wait ran out: `what` did not happen within the timeout; `lastSeen` says what was seen instead. */
export class WaitTimeout extends Error {
  readonly lastSeen: string | undefined;
  constructor(what: string, timeoutMs: number, lastSeen: string | undefined) {
    super(`${what}: not after ${seconds(timeoutMs)}${lastSeen ? ` (last seen: ${lastSeen})` : ''}`);
    this.name = 'WaitTimeout';
    this.lastSeen = lastSeen;
  }
}

/**
 * Pauses `ms`, or less when `signal` aborts (then throws its reason). `ref: false`: the pause does
 * not keep the process alive (a bound raced against work that may outlive the program's end).
 */
export async function sleep(ms: number, signal?: AbortSignal, options: { ref?: boolean } = {}): Promise<void> {
  try {
    await delay(ms, undefined, { signal, ref: options.ref ?? true });
  } catch (error) {
    // node:timers/promises rejects with its own AbortError: the caller's reason is what it gave.
    if (signal?.aborted) throw signal.reason;
    throw error;
  }
}

/**
 * Probes until it gives a value. Throws WaitTimeout after `timeoutMs` (with what was last seen),
 * the probe's GiveUp at once, or the signal's reason when it aborts.
 */
export async function waitFor<T>(what: string, probe: (p: Probe) => Promise<T | undefined> | T | undefined, options: WaitOptions): Promise<T> {
  const { timeoutMs, everyMs = 100, signal } = options;
  const deadline = Date.now() + timeoutMs;
  let lastSeen: string | undefined;
  const p: Probe = {
    seen(text) {
      lastSeen = text;
    },
  };
  for (;;) {
    signal?.throwIfAborted();
    try {
      const value = await probe(p);
      if (value !== undefined) return value;
    } catch (error) {
      if (error instanceof GiveUp) throw error;
      if (signal?.aborted) throw signal.reason;
      lastSeen = errorMessage(error);
    }
    const left = deadline - Date.now();
    if (left <= 0) throw new WaitTimeout(what, timeoutMs, lastSeen);
    await sleep(Math.min(everyMs, left), signal);
  }
}

/** The same wait, answering `undefined` instead of throwing when the time runs out. */
export async function waitForOrUndefined<T>(
  what: string,
  probe: (p: Probe) => Promise<T | undefined> | T | undefined,
  options: WaitOptions,
): Promise<T | undefined> {
  try {
    return await waitFor(what, probe, options);
  } catch (error) {
    if (error instanceof WaitTimeout) return undefined;
    throw error;
  }
}
