// The plan, before anything changes: what preflight found, every step (file diffs, database work,
// services), and the question whether to apply it.
import { Box, Text, useInput } from 'ink';
import type { Check } from '../shared/checks.js';
import { bindings } from './keys.js';
import { confirmQuestion } from '../shared/confirm.js';
import { plural } from '../system/units.js';
import { symbols, theme } from './theme.js';

export interface PlanStepView {
  kind: string;
  title: string;
  details: string[];
  changes: boolean;
}

const MAX_DETAIL_LINES = 12;

function DetailLine({ line }: { line: string }) {
  const color = line.startsWith('+') && !line.startsWith('+++') ? theme.added : line.startsWith('-') && !line.startsWith('---') ? theme.removed : theme.muted;
  return <Text color={color}> {line}</Text>;
}

export function ChecksView({ checks }: { checks: Check[] }) {
  return (
    <Box flexDirection="column">
      <Text bold>Preflight</Text>
      {checks.map((c) => (
        <Box key={c.name} flexDirection="column">
          <Text>
            {'  '}
            <Text color={c.ok ? theme.ok : theme.error}>{c.ok ? `${symbols.ok} ok  ` : `${symbols.fail} FAIL`}</Text> {c.name}: {c.detail}
          </Text>
          {!c.ok && (c.hints ?? []).map((h) => <Text key={h} color={theme.warn}>{`         hint: ${h}`}</Text>)}
        </Box>
      ))}
    </Box>
  );
}

export interface PlanScreenProps {
  checks: Check[];
  steps: PlanStepView[];
  warnings: string[];
  onApply: () => void;
  onBack: () => void;
  onQuit: () => void;
  isActive: boolean;
}

export function PlanScreen({ checks, steps, warnings, onApply, onBack, onQuit, isActive }: PlanScreenProps) {
  const changes = steps.filter((s) => s.changes).length;
  useInput(
    (input, key) => {
      if (changes === 0) {
        if (bindings.submit(input, key) || bindings.quit(input)) onQuit();
        else if (bindings.back(input, key)) onBack();
      } else if (bindings.confirm(input, key)) onApply();
      else if (bindings.decline(input, key)) onBack();
      else if (bindings.quit(input)) onQuit();
    },
    { isActive },
  );
  return (
    <Box flexDirection="column">
      <ChecksView checks={checks} />
      <Box flexDirection="column" marginTop={1}>
        <Text bold>{changes === 0 ? 'Plan: nothing to change' : `Plan: ${plural(changes, 'change')}`}</Text>
        {steps.map((step, i) => (
          <Box key={i} flexDirection="column">
            <Text>
              {'  '}
              <Text color={step.changes ? theme.accent : theme.muted}>{step.changes ? symbols.change : symbols.unchanged}</Text> [{step.kind}] {step.title}
              {step.changes ? '' : <Text color={theme.muted}> (unchanged)</Text>}
            </Text>
            {step.changes && step.details.slice(0, MAX_DETAIL_LINES).map((line, j) => <DetailLine key={j} line={line} />)}
            {step.changes && step.details.length > MAX_DETAIL_LINES && (
              <Text color={theme.muted}> … {step.details.length - MAX_DETAIL_LINES} more lines (knocker install --dry-run shows them all)</Text>
            )}
          </Box>
        ))}
        {warnings.map((w) => (
          <Text key={w} color={theme.warn}>
            {'  '}warning: {w}
          </Text>
        ))}
      </Box>
      <Box marginTop={1}>
        {changes === 0 ? (
          <Text>
            Nothing to change: this host already matches these answers. <Text color={theme.muted}>Enter/q: exit · Esc: change answers</Text>
          </Text>
        ) : (
          <Text>
            {confirmQuestion(`Apply these ${plural(changes, 'change')}?`)} <Text color={theme.muted}>(no: back to the answers · q: quit)</Text>
          </Text>
        )}
      </Box>
    </Box>
  );
}

export interface PreflightFailedScreenProps {
  checks: Check[];
  message: string;
  hints: string[];
  onBack: () => void;
  onQuit: () => void;
  isActive: boolean;
}

export function PreflightFailedScreen({ checks, message, hints, onBack, onQuit, isActive }: PreflightFailedScreenProps) {
  useInput(
    (input, key) => {
      if (bindings.back(input, key)) onBack();
      else if (bindings.quit(input) || bindings.submit(input, key)) onQuit();
    },
    { isActive },
  );
  return (
    <Box flexDirection="column">
      {checks.length > 0 ? (
        <ChecksView checks={checks} />
      ) : (
        <Text color={theme.error}>
          {symbols.fail} {message}
        </Text>
      )}
      {checks.length === 0 &&
        hints.map((h) => (
          <Text key={h} color={theme.warn}>
            {' '}
            hint: {h}
          </Text>
        ))}
      <Box marginTop={1}>
        <Text>
          <Text color={theme.error}>Preflight failed: nothing was changed.</Text> <Text color={theme.muted}>Esc: change answers · q: quit</Text>
        </Text>
      </Box>
    </Box>
  );
}
