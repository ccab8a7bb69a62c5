// The installer's questions, as Knocknoc's installer asks them: answered ones collapse to one
// line, the current one shows its explanation, its prompt with the default, and any error under
// the field as it is typed. Esc goes back one question.
import { Box, Text, useInput } from 'ink';
import SelectInput from 'ink-select-input';
import { DATABASE_CHOICES, QUESTIONS, shownCa, type FlowAction, type FlowState } from '../installer/questions.js';
import { redactUrl } from '../postgres/url.js';
import { Banner } from './banner.js';
import { bindings } from './keys.js';
import { LineInput, maskPassword } from './line-input.js';
import { symbols, theme } from './theme.js';

export interface IntroProps {
  bannerArt: string;
  /** The existing knocknoc.conf, when there is one (its values are the defaults). */
  existingConf: string | undefined;
}

export function Intro({ bannerArt, existingConf }: IntroProps) {
  return (
    <Box flexDirection="column">
      <Banner art={bannerArt} />
      <Text>
        Please answer the following questions to configure Knocknoc correctly.{' '}
        {existingConf
          ? `(Existing configuration found in ${existingConf}: its values are the defaults)`
          : '(No existing configuration detected, starting fresh)'}
      </Text>
      <Text>Please refer to https://docs.knocknoc.io/ if you need more help.</Text>
    </Box>
  );
}

function shown(id: string, value: string): string {
  return id === 'databaseUrl' ? redactUrl(value) : id === 'databaseCa' ? shownCa(value) : value;
}

export interface QuestionsScreenProps extends IntroProps {
  flow: FlowState;
  dispatch: (action: FlowAction) => void;
  isActive: boolean;
}

export function QuestionsScreen({ flow, dispatch, isActive, ...intro }: QuestionsScreenProps) {
  const question = QUESTIONS[flow.index];
  useInput(
    (input, key) => {
      if (bindings.back(input, key)) dispatch({ type: 'back' });
    },
    { isActive },
  );
  const width = Math.max(...QUESTIONS.map((q) => q.label.length));
  return (
    <Box flexDirection="column">
      <Intro {...intro} />
      <Box flexDirection="column" marginTop={1}>
        {flow.answered.map((id) => {
          const q = QUESTIONS.find((x) => x.id === id)!;
          const note = q.note?.(flow.values);
          return (
            <Box key={id} flexDirection="column">
              <Text>
                <Text color={theme.ok}>{symbols.ok}</Text> {q.label.padEnd(width)} {shown(id, flow.values[id])}
              </Text>
              {note && <Text color={theme.muted}> {note}</Text>}
            </Box>
          );
        })}
      </Box>
      {question && (
        <Box flexDirection="column" marginTop={flow.answered.length > 0 ? 1 : 0}>
          {question.intro.map((line) => (
            <Text key={line}>{line}</Text>
          ))}
          {question.kind === 'choice' && (
            <SelectInput
              items={DATABASE_CHOICES.map((c) => ({
                key: c.value,
                value: c.value,
                label: c.value === flow.values.databaseOption ? `${c.label} (default)` : c.label,
              }))}
              initialIndex={Math.max(0, Number(flow.values.databaseOption) - 1)}
              isFocused={isActive}
              onSelect={(item) => dispatch({ type: 'submit', text: item.value })}
            />
          )}
          <Text>
            <Text color={theme.accent}>{question.kind === 'choice' ? '  ' : `${symbols.pointer} `}</Text>
            {question.prompt(flow.values[question.id], flow.values)}{' '}
            {question.kind !== 'choice' && (
              <LineInput
                value={flow.draft}
                {...(question.kind === 'url'
                  ? {
                      mask: maskPassword,
                      placeholder: flow.values.databaseUrl
                        ? `Enter keeps ${redactUrl(flow.values.databaseUrl)}`
                        : 'postgres://USER:PASSWORD@HOST:5432/DATABASE',
                    }
                  : {})}
                isActive={isActive}
                onAppend={(text) => dispatch({ type: 'append', text })}
                onErase={() => dispatch({ type: 'erase' })}
                onClear={() => dispatch({ type: 'type', text: '' })}
                onSubmit={() => dispatch({ type: 'submit' })}
              />
            )}
          </Text>
          {flow.error && (
            <Text color={theme.error}>
              {'  '}
              {symbols.fail} {flow.error}
            </Text>
          )}
          <Text color={theme.muted}>
            {question.kind === 'choice'
              ? '↑/↓ or 1–3 to choose, Enter to accept'
              : flow.values[question.id] === ''
                ? 'Enter accepts (an answer is required)'
                : 'Enter accepts (empty = default)'}
            {flow.answered.length > 0 ? ' · Esc: previous question' : ''} · Ctrl+C: quit
          </Text>
        </Box>
      )}
    </Box>
  );
}
