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
