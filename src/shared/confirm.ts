// The one way knocker asks before it changes something (the installer's plan, the upgrade, the
// dashboard's admin actions, `knocker uninstall`): one key, `y`, says yes; `n` or Esc says no; any
// other key is not an answer and the question stays. Enter is never an answer, so a key pressed
// for the screen before does not apply a plan. The same words follow every question.

/** What follows every question, on every screen and on the command line. */
export const CONFIRM_KEYS = 'y: yes · n/Esc: no';

/** A question as it is asked: "Apply these 7 changes? [y: yes · n/Esc: no]". */
export function confirmQuestion(question: string): string {
  return `${question} [${CONFIRM_KEYS}]`;
}

export type ConfirmAnswer = 'yes' | 'no' | undefined;

/** The answer a key gives: yes, no, or none (the question stays). Ctrl+C is a no. */
export function confirmAnswer(input: string, escapeKey = false): ConfirmAnswer {
  if (input === 'y' || input === 'Y') return 'yes';
  if (escapeKey || input === 'n' || input === 'N' || input === '\u001B' || input === '\u0003') return 'no';
  return undefined;
}

/** Asks on a terminal, one key at a time, until a key answers. */
export async function askConfirm(readKey: (prompt: string) => Promise<string>, question: string): Promise<boolean> {
  let prompt = `${confirmQuestion(question)} `;
  for (;;) {
    const answer = confirmAnswer(await readKey(prompt));
    if (answer) return answer === 'yes';
    prompt = `(${CONFIRM_KEYS}) `;
  }
}
