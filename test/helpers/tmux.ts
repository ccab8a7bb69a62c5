// A real terminal for the whole program: a private tmux server per test, keys sent as a person
// types them, and the screen read back with capture-pane.
import { execa } from 'execa';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import { sleep, waitFor } from '../../src/system/wait.js';

export interface Terminal {
  /** Types literal text. */
  type(text: string): Promise<void>;
  /** Sends named keys (Enter, Escape, Down, C-c, …). */
  keys(...keys: string[]): Promise<void>;
  screen(): Promise<string>;
  /** What the terminal shows now (no scrollback); with `escapes`, its colours and styles as escape sequences. */
  visible(options?: { escapes?: boolean }): Promise<string>;
  /** Resizes the terminal, as a person dragging its window. */
  resize(width: number, height: number): Promise<void>;
  waitFor(match: RegExp | string, timeoutMs?: number): Promise<string>;
  /** The pid of the program running in the terminal (to send it a signal as a service manager would). */
  programPid(): Promise<number>;
  close(): Promise<void>;
}

export async function openTerminal(command: string[], options: { width?: number; height?: number; env?: Record<string, string> } = {}): Promise<Terminal> {
  const socket = `knocker-test-${crypto.randomBytes(4).toString('hex')}`;
  // The environment given is the whole of it (a variable left out of it is not set in the terminal).
  const tmux = (...args: string[]) => execa('tmux', ['-L', socket, ...args], { env: options.env, extendEnv: options.env === undefined });
  // The shell command only reports the exit code and keeps the pane open for reading.
  const quoted = command.map((c) => `'${c.replace(/'/g, `'\\''`)}'`).join(' ');
  await tmux('new-session', '-d', '-x', String(options.width ?? 100), '-y', String(options.height ?? 50), `${quoted}; echo "EXIT=$?"; sleep 600`);
  const pause = () => sleep(60);
  const terminal: Terminal = {
    async type(text) {
      await tmux('send-keys', '-l', text);
      await pause();
    },
    async keys(...keys) {
      for (const key of keys) {
        await tmux('send-keys', key);
        await pause();
      }
    },
    async screen() {
      return String((await tmux('capture-pane', '-p', '-S', '-200')).stdout);
    },
    async visible(options = {}) {
      return String((await tmux('capture-pane', '-p', ...(options.escapes ? ['-e'] : []))).stdout);
    },
    async resize(width, height) {
      await tmux('resize-window', '-x', String(width), '-y', String(height));
    },
    waitFor(match, timeoutMs = 20_000) {
      return waitFor(
        `a screen showing ${String(match)}`,
        async (p) => {
          const screen = await terminal.screen();
          // Strings are looked for in the running text, so a wrapped line still matches.
          if (typeof match === 'string' ? screen.replace(/\s+/g, ' ').includes(match) : match.test(screen)) return screen;
          p.seen(`\n${screen}\n`);
          return undefined;
        },
        { timeoutMs },
      );
    },
    async programPid() {
      // The pane runs a shell that runs the program: its one child.
      const shell = String((await tmux('list-panes', '-F', '#{pane_pid}')).stdout).trim();
      const children = await waitFor(
        'the program to start in the terminal',
        async () => (await fs.readFile(`/proc/${shell}/task/${shell}/children`, 'utf8').catch(() => '')).trim() || undefined,
        { timeoutMs: 20_000 },
      );
      return Number(children.split(/\s+/)[0]);
    },
    async close() {
      await tmux('kill-server').catch(() => {});
    },
  };
  return terminal;
}
