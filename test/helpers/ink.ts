// Driving Ink screens in tests (FACTS.md: wait for a new frame between keys; Enter is '\r').
import type { render } from 'ink-testing-library';
import { sleep, waitFor } from '../../src/system/wait.js';

export type Rendered = ReturnType<typeof render>;

export const KEYS = {
  enter: '\r',
  escape: '\u001B',
  up: '\u001B[A',
  down: '\u001B[B',
  backspace: '\u007F',
  ctrlC: '\u0003',
  ctrlU: '\u0015',
} as const;

const strip = (text: string) => text.replace(/\u001B\[[0-9;]*m/g, '');

/** The last frame without colours. */
export function frame(instance: Rendered): string {
  return strip(instance.lastFrame() ?? '');
}

/** The last frame as running text: lines joined and spaces collapsed, so wrapping does not matter. */
export function text(instance: Rendered): string {
  return frame(instance).replace(/\s+/g, ' ');
}

const yieldToReact = () => new Promise((resolve) => setImmediate(() => setTimeout(resolve, 0)));

/** Writes one key (or a typed string) and waits until the screen has changed and settled. */
export async function press(instance: Rendered, input: string, options: { expectChange?: boolean } = {}): Promise<void> {
  const before = instance.lastFrame();
  instance.stdin.write(input);
  const started = Date.now();
  if (options.expectChange === false) {
    await sleep(30);
  } else {
    while (instance.lastFrame() === before) {
      // A bound for a loaded machine, not a window: the frame normally comes within milliseconds.
      if (Date.now() - started > 20_000) throw new Error(`no new frame after ${JSON.stringify(input)}:\n${frame(instance)}`);
      await yieldToReact();
    }
  }
  // Let useInput handlers re-subscribe with fresh state before the next key.
  await yieldToReact();
  await sleep(5);
}

/** Types text one character at a time, as a person would. */
export async function type(instance: Rendered, text: string): Promise<void> {
  for (const char of text) await press(instance, char);
}

/** Waits until the frame matches. */
export async function waitForFrame(instance: Rendered, match: RegExp | string, timeoutMs = 20_000): Promise<string> {
  const current = await waitFor(
    `a frame matching ${String(match)}`,
    (p) => {
      const current = frame(instance);
      if (typeof match === 'string' ? current.includes(match) : match.test(current)) return current;
      p.seen(`\n${current}\n`);
      return undefined;
    },
    { timeoutMs, everyMs: 20 },
  );
  // A frame can be on screen before its effects (and so its key handlers) have run.
  await yieldToReact();
  await sleep(20);
  return current;
}
