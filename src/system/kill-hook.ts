// The plan runner's test hook, in a module of its own so that arming it loads nothing else.

/**
 * A test hook: KNOCKER_TEST_KILL_AT=before:N (or after:N) makes the run SIGKILL itself right before
 * (after) the Nth changing step of a plan, N as the progress counts it ([N/M]), to prove that a run
 * killed at any step boundary converges on the next. Armed by the door only for a sandbox root
 * (src/commands/context.ts); all it can do is stop this process, as a power cut would.
 */
let killAt: { when: 'before' | 'after'; step: number } | undefined;

export function armKillHook(spec: string | undefined): void {
  const match = /^(before|after):([1-9]\d{0,3})$/.exec(spec?.trim() ?? '');
  killAt = match ? { when: match[1] as 'before' | 'after', step: Number(match[2]) } : undefined;
}

export function killPoint(when: 'before' | 'after', step: number): void {
  if (killAt?.when === when && killAt.step === step) process.kill(process.pid, 'SIGKILL');
}
