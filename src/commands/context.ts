// What the door (src/cli.ts) hands every command: where its output goes, the environment it read,
// whether this run has a terminal (decided once, there), and how a command reports its exit code.
// Commands read nothing of the process themselves.
import type { Command } from 'commander';
import type { Output } from '../shared/output.js';
import { UsageError } from '../errors.js';
import { armKillHook } from '../system/kill-hook.js';
import { Root, rootPathProblem } from '../system/root.js';

export interface CommandContext {
  io: Output;
  /** The process's environment (KNOCKNOC_ROOT, KNOCKNOC_LISTEN, …), read by the door. */
  env: Readonly<Record<string, string | undefined>>;
  /** stdin and stdout are both terminals. A command adds its own flags (--non-interactive, --once…). */
  terminal: boolean;
  /** The command's result; the door returns it as the exit code. */
  exit: (code: number) => void;
  /** Aborted on the first Ctrl-C (SIGINT) or SIGTERM, for a command that runs until then (`service logs -f`). */
  interrupted: AbortSignal;
  /** Reads stdin to its end (at most `maxBytes`), for a secret piped in (`install --join -`). */
  readStdin?: (maxBytes: number) => Promise<string>;
  /** Asks a question on the terminal and returns the line typed (only where there is a terminal). */
  ask?: (question: string) => Promise<string>;
  /** Shows a prompt (on stderr) and returns the next key typed on the terminal (only where there is one). */
  readKey?: (prompt: string) => Promise<string>;
}

/** The root a command works on: --root (a global option), else KNOCKNOC_ROOT, else the real system. */
export function rootOf(command: Command, ctx: CommandContext): Root {
  const { root } = command.optsWithGlobals<{ root?: string }>();
  const chosen = new Root(root ?? ctx.env.KNOCKNOC_ROOT ?? '/');
  const problem = rootPathProblem(chosen.dir);
  if (problem) throw new UsageError(`${problem}; nothing was changed`);
  // The kill-at-a-step test hook (src/system/plan.ts) is honoured on sandbox roots only.
  if (chosen.isSandbox) armKillHook(ctx.env.KNOCKER_TEST_KILL_AT);
  return chosen;
}
