// A one-line text input whose edits are sent as actions (append, erase, clear), never as a new
// value computed from the one captured at the last render: keys that arrive in two chunks before
// the screen re-renders (a fast typist, a paste, a slow machine) are all kept. ink-text-input
// computes `value + input` from its last render, and loses the first chunk in that case.
// A connection string never shows its password: `mask` draws it as asterisks as it is typed.
import { Text, useInput } from 'ink';
import { bindings, eachKey } from './keys.js';

export function maskPassword(text: string): string {
  return text.replace(
    /^(postgres(?:ql)?:\/\/[^:/?#@]*:)([^@]*)(@|$)/i,
    (_m, head: string, password: string, at: string) => `${head}${'*'.repeat(password.length)}${at}`,
  );
}

export interface LineInputProps {
  value: string;
  placeholder?: string;
  /** How the value is drawn (default: as typed). */
  mask?: (value: string) => string;
  onAppend: (text: string) => void;
  onErase: () => void;
  onClear: () => void;
  onSubmit: () => void;
  isActive: boolean;
}

export function LineInput({ value, placeholder, mask, onAppend, onErase, onClear, onSubmit, isActive }: LineInputProps) {
  useInput(
    (chunk, chunkKey) =>
      eachKey(chunk, chunkKey, (input, key) => {
        if (bindings.submit(input, key)) {
          onSubmit();
          // What follows Enter in a paste is not this answer's.
          return false;
        }
        if (bindings.erase(input, key)) onErase();
        else if (bindings.clearLine(input, key)) onClear();
        else if (!key.ctrl && !key.meta && !key.escape && !key.tab && !key.upArrow && !key.downArrow && !key.leftArrow && !key.rightArrow && input)
          onAppend(input);
        return true;
      }),
    { isActive },
  );
  if (value === '' && placeholder) {
    return (
      <Text>
        <Text inverse> </Text>
        <Text dimColor>{placeholder}</Text>
      </Text>
    );
  }
  return (
    <Text>
      {mask ? mask(value) : value}
      {isActive && <Text inverse> </Text>}
    </Text>
  );
}
