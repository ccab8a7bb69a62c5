// Commands that knocker prints for the operator to run next: in the same context as the run that
// printed them (a sandbox root keeps its --root), so that pasting one acts where this one did.
import type { Root } from '../system/root.js';

/** A word as a POSIX shell reads it back: plain when it can be, else single-quoted. */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** " --root DIR" under a sandbox root, else nothing. */
export function rootFlag(root: Root): string {
  return root.isSandbox ? ` --root ${shellWord(root.dir)}` : '';
}

/** `knocker ARGS` as this root runs it. */
export function knockerCommand(root: Root, args: string): string {
  return `knocker ${args}${rootFlag(root)}`;
}
