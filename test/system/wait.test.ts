// The one wait (src/system/wait.ts): a value ends it, a timeout names what was last seen, a GiveUp
// ends it at once, and an AbortSignal (Ctrl-C) ends it between probes.
import { describe, expect, it } from 'vitest';
import { giveUp, GiveUp, orGiveUp, waitFor, waitForOrUndefined, WaitTimeout } from '../../src/system/wait.js';

describe('waitFor', () => {
  it('returns the first value a probe gives, probing again after undefined and errors', async () => {
    let calls = 0;
    const value = await waitFor(
      'the third probe',
      () => {
        calls += 1;
        if (calls === 1) throw new Error('connection refused');
        return calls === 3 ? 'ready' : undefined;
      },
      { timeoutMs: 10_000, everyMs: 1 },
    );
    expect(value).toBe('ready');
    expect(calls).toBe(3);
  });

  it('times out naming what it waited for and what it last saw', async () => {
    const error = await waitFor(
      'PostgreSQL to accept connections',
      (p) => {
        p.seen('starting up');
        return undefined;
      },
      { timeoutMs: 30, everyMs: 5 },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WaitTimeout);
    expect((error as WaitTimeout).message).toMatch(/^PostgreSQL to accept connections: not after 0\.03 s \(last seen: starting up\)$/);
    expect(await waitForOrUndefined('nothing', () => undefined, { timeoutMs: 10, everyMs: 5 })).toBeUndefined();
  });

  it('gives up at once when the probe says waiting cannot help', async () => {
    let calls = 0;
    const error = await waitFor(
      'a process',
      () => {
        calls += 1;
        giveUp('the process exited with code 1');
      },
      { timeoutMs: 60_000 },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GiveUp);
    expect(calls).toBe(1);
  });

  it("gives up at once, in the read's own words, when a read marked orGiveUp fails", async () => {
    let calls = 0;
    const error = await waitFor(
      'HAProxy to see web-1 UP',
      async () => {
        calls += 1;
        return orGiveUp(Promise.reject(new Error('connect ENOENT /run/haproxy/admin.sock')));
      },
      { timeoutMs: 60_000 },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GiveUp);
    expect((error as Error).message).toBe('connect ENOENT /run/haproxy/admin.sock');
    expect(calls).toBe(1);
  });

  it('ends when its signal aborts, with the signal reason', async () => {
    const controller = new AbortController();
    const reason = new Error('interrupted');
    let calls = 0;
    const waiting = waitFor(
      'forever',
      () => {
        calls += 1;
        if (calls === 2) controller.abort(reason);
        return undefined;
      },
      { timeoutMs: 60_000, everyMs: 1, signal: controller.signal },
    );
    await expect(waiting).rejects.toBe(reason);
  });
});
