// Applying the plan: each step live with its elapsed time, then what was done (or rolled back),
// where the log and the answers file are, and what to do next.
import { Box, Text } from 'ink';
import { pendingSteps, type ApplyEvent, type Plan } from '../system/plan.js';
import { seconds } from '../system/units.js';
import { symbols, theme } from './theme.js';
import { useNow } from './use-now.js';

export type StepStatus = 'pending' | 'running' | 'done' | 'failed' | 'undone' | 'undo-failed';

export interface ProgressItem {
  title: string;
  status: StepStatus;
  startedAt?: number;
  ms?: number;
  note?: string;
  error?: string;
}

/** The rows of a plan's changing steps, before it is applied. */
export function progressItems(plan: Plan): ProgressItem[] {
  return pendingSteps(plan).map((s) => ({ title: s.title, status: 'pending' }));
}

/** The rows after one event of applyPlan (rows as progressItems made them for the same plan). */
export function progressAfter(items: ProgressItem[], plan: Plan, event: ApplyEvent): ProgressItem[] {
  const at = pendingSteps(plan).indexOf(event.step);
  if (at < 0) return items;
  const item = { ...items[at]! };
  if (event.type === 'step-start') Object.assign(item, { status: 'running', startedAt: Date.now() });
  else if (event.type === 'step-done') Object.assign(item, { status: 'done', ms: event.ms, note: event.note });
  else if (event.type === 'step-failed') Object.assign(item, { status: 'failed', ms: event.ms, error: event.error });
  else if (event.type === 'undo-done' && item.status !== 'failed') Object.assign(item, { status: 'undone' });
  else if (event.type === 'undo-failed') Object.assign(item, { status: 'undo-failed', error: event.error });
  const next = [...items];
  next[at] = item;
  return next;
}

export const LOOK: Record<StepStatus, { symbol: string; color: string; word: string }> = {
  pending: { symbol: symbols.pending, color: theme.muted, word: 'waiting' },
  running: { symbol: symbols.running, color: theme.accent, word: 'running' },
  done: { symbol: symbols.ok, color: theme.ok, word: 'done' },
  failed: { symbol: symbols.fail, color: theme.error, word: 'FAILED' },
  undone: { symbol: symbols.undone, color: theme.warn, word: 'rolled back' },
  'undo-failed': { symbol: symbols.fail, color: theme.error, word: 'ROLLBACK FAILED' },
};

export function ProgressList({ items }: { items: ProgressItem[] }) {
  const running = items.some((i) => i.status === 'running');
  const now = useNow(running);
  return (
    <Box flexDirection="column">
      {items.map((item, i) => {
        const look = LOOK[item.status];
        const elapsed = item.status === 'running' && item.startedAt ? seconds(now - item.startedAt) : item.ms !== undefined ? seconds(item.ms) : '';
        return (
          <Box key={i} flexDirection="column">
            <Text>
              {'  '}
              <Text color={look.color}>
                {look.symbol} {look.word.padEnd(7)}
              </Text>{' '}
              {item.title}
              {elapsed && <Text color={theme.muted}> {elapsed}</Text>}
              {item.note && <Text color={theme.muted}> ({item.note})</Text>}
            </Text>
            {item.error && <Text color={theme.error}>{`      ${item.error}`}</Text>}
          </Box>
        );
      })}
    </Box>
  );
}

export interface ProgressScreenProps {
  items: ProgressItem[];
  notice?: string;
}

export function ProgressScreen({ items, notice }: ProgressScreenProps) {
  const done = items.filter((i) => i.status === 'done').length;
  return (
    <Box flexDirection="column">
      <Text bold>
        Applying {done}/{items.length}
      </Text>
      <ProgressList items={items} />
      {notice && <Text color={theme.warn}>{notice}</Text>}
    </Box>
  );
}

export interface ResultScreenProps {
  items: ProgressItem[];
  ok: boolean;
  headline: string;
  lines: string[];
}

export function ResultScreen({ items, ok, headline, lines }: ResultScreenProps) {
  return (
    <Box flexDirection="column">
      <ProgressList items={items} />
      <Box marginTop={1}>
        <Text color={ok ? theme.ok : theme.error} bold>
          {ok ? symbols.ok : symbols.fail} {headline}
        </Text>
      </Box>
      {lines.map((line, i) => (
        <Text key={i}>{line}</Text>
      ))}
    </Box>
  );
}
