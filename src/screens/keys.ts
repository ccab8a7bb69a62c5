// The key bindings of the screens, in one place.
import type { Key } from 'ink';

export const bindings = {
  back: (_input: string, key: Key) => key.escape,
  submit: (_input: string, key: Key) => key.return,
  confirm: (input: string, key: Key) => key.return || input === 'y' || input === 'Y',
  decline: (input: string, key: Key) => input === 'n' || input === 'N' || key.escape,
  quit: (input: string) => input === 'q' || input === 'Q',
  interrupt: (input: string, key: Key) => key.ctrl && input === 'c',
  erase: (_input: string, key: Key) => key.backspace || key.delete,
  clearLine: (input: string, key: Key) => key.ctrl && input === 'u',
};

/**
 * Keys typed faster than the screen redraws (or pasted) reach a handler as one chunk: "Ry",
 * "127.0.0.1:87", "abc\r". This hands each character over as a key of its own, Enter and Backspace
 * included, in order; a handler returns false to drop the rest of the chunk.
 */
export function eachKey(input: string, key: Key, handle: (input: string, key: Key) => boolean | void): void {
  const plain = !key.ctrl && !key.meta && !key.escape && !key.return && !key.upArrow && !key.downArrow && !key.leftArrow && !key.rightArrow && !key.tab;
  if (!plain || input.length <= 1) {
    handle(input, key);
    return;
  }
  for (const char of input) {
    const enter = char === '\r' || char === '\n';
    const erase = char === '\u007F' || char === '\b';
    if (handle(enter || erase ? '' : char, { ...key, return: enter, backspace: erase, shift: char !== char.toLowerCase() }) === false) return;
  }
}
