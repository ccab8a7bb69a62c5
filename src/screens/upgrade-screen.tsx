// The rolling upgrade on screen: the checks, every server with its version and where it is in the
// upgrade, the steps with their progress, the last lines of the running upgrade command, and the
// question before anything changes or the result after. Display only: src/upgrade-app.tsx owns
// the keys and the run.
import { Box, Text } from 'ink';
import type { Check } from '../shared/checks.js';
import type { JournalServer } from '../upgrade/journal.js';
import { confirmQuestion } from '../shared/confirm.js';
import { ChecksView } from './plan-screen.js';
import { seconds } from '../system/units.js';
import { LOOK, type ProgressItem } from './progress-screen.js';
import { symbols, theme } from './theme.js';
import { useNow } from './use-now.js';

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
  /** What putting servers back did. */
  notes: string[];
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

/** Each step on one line (cut at the terminal's edge), its time and outcome on the next. */
function StepsView({ items, full }: { items: ProgressItem[]; full: boolean }) {
  const now = useNow(items.some((i) => i.status === 'running'));
  return (
    <Box flexDirection="column">
      {items.map((item, i) => {
        const look = LOOK[item.status];
        const elapsed = item.status === 'running' && item.startedAt ? seconds(now - item.startedAt) : item.ms !== undefined ? seconds(item.ms) : undefined;
        const after = [elapsed, item.note].filter(Boolean).join(' · ');
        return (
          <Box key={i} flexDirection="column">
            <Text wrap={full ? 'wrap' : 'truncate-end'}>
              {'  '}
              <Text color={look.color}>
                {look.symbol} {look.word.padEnd(7)}
              </Text>{' '}
              {item.title}
            </Text>
            {after !== '' && (
              <Text color={theme.muted} wrap="truncate-end">
                {`            ${after}`}
              </Text>
            )}
            {item.error && <Text color={theme.error}>{`            ${item.error}`}</Text>}
          </Box>
        );
      })}
    </Box>
  );
}

function versionText(server: JournalServer, target: string | undefined): string {
  return target && (server.phase === 'upgraded' || server.phase === 'done') ? `${server.fromVersion} → ${target}` : server.fromVersion;
}

function ServersView({ servers, first, target }: { servers: JournalServer[]; first: string; target: string | undefined }) {
  const width = Math.max(6, ...servers.map((s) => s.name.length));
  const versionWidth = Math.max(...servers.map((s) => versionText(s, target).length));
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
            {s.name.padEnd(width)} <Text color={theme.muted}>{`${s.host}:${s.port}`.padEnd(22)}</Text> {versionText(s, target).padEnd(versionWidth)}{' '}
            <Text color={look.color}>{look.word}</Text>
            {s.name === first && s.phase !== 'done' && <Text color={theme.muted}> (first, alone in rotation)</Text>}
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
        <StepsView items={props.items} full={stage === 'confirm'} />
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
      {props.notes.length > 0 && (
        <Box flexDirection="column" marginTop={1}>
          <Text bold>Rotation put back</Text>
          {props.notes.map((note) => (
            <Text key={note}>{`  ${note}`}</Text>
          ))}
        </Box>
      )}
      {stage === 'confirm' && (
        <Box marginTop={1}>
          <Text>
            {confirmQuestion('Start the upgrade?')} <Text color={theme.muted}>(no or q: quit, nothing changed)</Text>
          </Text>
        </Box>
      )}
      {stage === 'running' && (
        <Text color={props.notice ? theme.warn : theme.muted}>
          {props.notice ?? 'Ctrl-C stops once the server being upgraded is done, and puts rotation back'}
        </Text>
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
