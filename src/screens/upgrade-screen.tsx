// The rolling upgrade on screen: the checks, every server with its version and where it is in the
// upgrade, the steps with their progress, the last lines of the running upgrade command, and the
// question before anything changes or the result after. Display only: src/upgrade-app.tsx owns
// the keys and the run.
import { Box, Text } from 'ink';
import type { Check } from '../installer/checks.js';
import type { JournalServer } from '../upgrade/journal.js';
import { ChecksView } from './plan-screen.js';
import { ProgressList, type ProgressItem } from './progress-screen.js';
import { symbols, theme } from './theme.js';

export type UpgradeStage = 'confirm' | 'running' | 'finished';

export interface UpgradeScreenProps {
  stage: UpgradeStage;
  title: string;
  checks: Check[];
  warnings: string[];
  servers: JournalServer[];
  first: string;
  target: string | undefined;
  items: ProgressItem[];
  /** The last lines the running upgrade command printed, with its server. */
  output: Array<{ server: string; line: string }>;
  notice?: string;
  result?: { ok: boolean; headline: string; lines: string[] };
}

const PHASE: Record<JournalServer['phase'], { word: string; color: string }> = {
  waiting: { word: 'waiting', color: theme.muted },
  out: { word: 'out of rotation', color: theme.warn },
  upgrading: { word: 'upgrading', color: theme.accent },
  upgraded: { word: 'upgraded, checking', color: theme.accent },
  done: { word: 'done, in rotation', color: theme.ok },
};

function ServersView({ servers, first, target }: { servers: JournalServer[]; first: string; target: string | undefined }) {
  const width = Math.max(6, ...servers.map((s) => s.name.length));
  return (
    <Box flexDirection="column" marginTop={1}>
      <Text bold>
        Servers <Text color={theme.muted}>{target ? `(to ${target})` : '(to the release the first server comes back on)'}</Text>
      </Text>
      {servers.map((s) => {
        const look = PHASE[s.phase];
        return (
          <Text key={s.name}>
            {'  '}
            {s.name.padEnd(width)} <Text color={theme.muted}>{`${s.host}:${s.port}`.padEnd(22)}</Text> {s.fromVersion.padEnd(10)}{' '}
            <Text color={look.color}>{look.word}</Text>
            {s.name === first && <Text color={theme.muted}> (first, alone in rotation)</Text>}
            {s.backup && <Text color={theme.muted}> (backup)</Text>}
          </Text>
        );
      })}
    </Box>
  );
}

export function UpgradeScreen(props: UpgradeScreenProps) {
  const { stage } = props;
  return (
    <Box flexDirection="column">
      <Text bold color={theme.accent}>
        {props.title}
      </Text>
      {stage === 'confirm' && <ChecksView checks={props.checks} />}
      <ServersView servers={props.servers} first={props.first} target={props.target} />
      <Box flexDirection="column" marginTop={1}>
        <Text bold>Steps</Text>
        <ProgressList items={props.items} />
      </Box>
      {props.warnings.map((w) => (
        <Text key={w} color={theme.warn}>
          warning: {w}
        </Text>
      ))}
      {props.output.length > 0 && stage === 'running' && (
        <Box flexDirection="column" marginTop={1}>
          {props.output.map((o, i) => (
            <Text key={i} color={theme.muted} wrap="truncate-end">
              {`    ${o.server}| ${o.line}`}
            </Text>
          ))}
        </Box>
      )}
      {stage === 'confirm' && (
        <Box marginTop={1}>
          <Text>
            Start the upgrade? <Text color={theme.accent}>Enter/y</Text> start · <Text color={theme.accent}>q/n</Text> quit, nothing changed
          </Text>
        </Box>
      )}
      {stage === 'running' && (
        <Text color={props.notice ? theme.warn : theme.muted}>{props.notice ?? 'Ctrl-C stops after the current step and puts rotation back'}</Text>
      )}
      {props.result && (
        <Box flexDirection="column" marginTop={1}>
          <Text color={props.result.ok ? theme.ok : theme.error} bold>
            {props.result.ok ? symbols.ok : symbols.fail} {props.result.headline}
          </Text>
          {props.result.lines.map((line, i) => (
            <Text key={i}>{line}</Text>
          ))}
        </Box>
      )}
    </Box>
  );
}
