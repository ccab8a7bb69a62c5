// A one-line input for a connection string that never shows its password: the characters between
// "user:" and "@" are drawn as asterisks as they are typed or pasted.
import { Text, useInput } from 'ink';
import { bindings } from './keys.js';

export function maskPassword(text: string): string {
  return text.replace(/^(postgres(?:ql)?:\/\/[^:/?#@]*:)([^@]*)(@|$)/i, (_m, head: string, password: string, at: string) => `${head}${'*'.repeat(password.length)}${at}`);
}

export interface MaskedUrlInputProps {
  value: string;
  placeholder?: string;
  /** Edits are sent as actions, never as a new value computed from a captured one. */
  onAppend: (text: string) => void;
  onErase: () => void;
  onClear: () => void;
  onSubmit: () => void;
  isActive: boolean;
}

export function MaskedUrlInput({ value, placeholder, onAppend, onErase, onClear, onSubmit, isActive }: MaskedUrlInputProps) {
  useInput(
    (input, key) => {
      if (bindings.submit(input, key)) {
        onSubmit();
      } else if (bindings.erase(input, key)) {
        onErase();
      } else if (bindings.clearLine(input, key)) {
        onClear();
      } else if (!key.ctrl && !key.meta && !key.escape && !key.tab && !key.upArrow && !key.downArrow && !key.leftArrow && !key.rightArrow && input) {
        // A paste (or fast typing) can bring Enter inside the chunk: what precedes it is the answer.
        const end = input.search(/[\r\n]/);
        onAppend(end < 0 ? input : input.slice(0, end));
        if (end >= 0) onSubmit();
      }
    },
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
      {maskPassword(value)}
      <Text inverse> </Text>
    </Text>
  );
}
