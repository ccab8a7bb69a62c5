// The upgrade's screen: asks before it starts (unless --yes), runs the upgrade of src/upgrade/ and
// shows its progress, and ends with the result. Ctrl-C stops once the server being upgraded is done
// and puts rotation back; a second Ctrl-C leaves at once (--resume or --rollback finish from the journal).
import { useEffect, useReducer, useRef } from 'react';
import { useInput } from 'ink';
import { ApplyFailedError, exitCodeOf, formatError } from './errors.js';
import { runApp, type OnExit } from './screens/app-exit.js';
import { bindings, eachKey } from './screens/keys.js';
import { progressAfter, progressItems, type ProgressItem } from './screens/progress-screen.js';
import { UpgradeScreen, type UpgradeStage } from './screens/upgrade-screen.js';
import { seconds } from './system/units.js';
import type { Plan } from './system/plan.js';
import { printableData } from './shared/printable.js';
import type { Journal } from './upgrade/journal.js';
import type { UpgradeEvent, UpgradeOutcome, UpgradeSession } from './upgrade/index.js';

/** What the screen needs of an upgrade: the session prepared, and how to run it. */
export interface UpgradeServices {
  session: Pick<UpgradeSession, 'checks' | 'journal' | 'preview' | 'root'>;
  apply(hooks: { onPlan: (plan: Plan) => void; onEvent: (event: UpgradeEvent) => void; stopRequested: () => boolean }): Promise<UpgradeOutcome>;
  skipConfirmation: boolean;
}

interface State {
  stage: UpgradeStage;
  title: string;
  plan: Plan;
  items: ProgressItem[];
  journal: Journal;
  output: Array<{ server: string; line: string }>;
  /** What putting servers back did (after a failure or a stop). */
  notes: string[];
  notice?: string;
  result?: { ok: boolean; headline: string; lines: string[]; exitCode: number };
}

type Action =
  | { type: 'start' }
  | { type: 'plan'; plan: Plan }
  | { type: 'event'; event: UpgradeEvent }
  | { type: 'notice'; text: string }
  | { type: 'finish'; ok: boolean; headline: string; lines: string[]; exitCode: number };

const OUTPUT_LINES = 6;

function reducer(state: State, action: Action): State {
  switch (action.type) {
    case 'start':
      return { ...state, stage: 'running' };
    case 'plan':
      return { ...state, plan: action.plan, items: progressItems(action.plan), title: action.plan.title };
    case 'event': {
      const e = action.event;
      if (e.type === 'journal') return { ...state, journal: e.journal };
      if (e.type === 'output') return { ...state, output: [...state.output, { server: e.server, line: e.line }].slice(-OUTPUT_LINES) };
      if (e.type === 'note') return { ...state, notes: [...state.notes, `${e.server}: ${e.text}`] };
      return { ...state, items: progressAfter(state.items, state.plan, e.event), output: e.event.type === 'step-start' ? [] : state.output };
    }
    case 'notice':
      return { ...state, notice: action.text };
    case 'finish':
      return { ...state, stage: 'finished', result: { ok: action.ok, headline: action.headline, lines: action.lines, exitCode: action.exitCode } };
  }
}

export function UpgradeApp({ services, onExit }: { services: UpgradeServices; onExit: OnExit }) {
  const { session } = services;
  const [state, dispatch] = useReducer(reducer, undefined, () => ({
    stage: 'confirm' as UpgradeStage,
    title: session.preview.title,
    plan: session.preview,
    items: progressItems(session.preview),
    journal: session.journal,
    output: [],
    notes: [],
  }));
  const stop = useRef(false);
  const started = useRef(false);
  const sandbox = session.root.isSandbox ? ` --root ${session.root.dir}` : '';

  const start = () => {
    if (started.current) return;
    started.current = true;
    dispatch({ type: 'start' });
    services
      .apply({
        onPlan: (plan) => dispatch({ type: 'plan', plan }),
        onEvent: (event) => dispatch({ type: 'event', event }),
        stopRequested: () => stop.current,
      })
      .then((outcome) =>
        dispatch({
          type: 'finish',
          ok: true,
          headline: `Done: every server on ${outcome.journal.target ?? 'the new version'} and in rotation, in ${seconds(outcome.ms)} (${seconds(outcome.commandMs)} in the upgrade commands).`,
          lines: [`Watch the cluster: knocker status${sandbox}`],
          exitCode: 0,
        }),
      )
      .catch((error: unknown) => {
        const [first, ...rest] = formatError(error);
        dispatch({
          type: 'finish',
          ok: false,
          headline: (first ?? 'the upgrade failed').replace(/^error: /, 'Stopped: '),
          lines: error instanceof ApplyFailedError ? rest : rest.slice(0, 8),
          exitCode: exitCodeOf(error),
        });
      });
  };

  useEffect(() => {
    if (services.skipConfirmation) start();
    // Started once, on the first render.
  }, []);

  useEffect(() => {
    if (state.stage === 'finished' && state.result) onExit(state.result.exitCode);
  }, [state.stage, state.result, onExit]);

  useInput((input, key) => {
    if (state.stage === 'running') {
      if (bindings.interrupt(input, key)) {
        if (stop.current) {
          // Leave at once: the run cannot be left going without a screen. The journal says where it
          // was; a running upgrade command, in a session of its own, finishes by itself.
          onExit(130, { now: true });
          return;
        }
        stop.current = true;
        dispatch({
          type: 'notice',
          text: 'Stopping once the server being upgraded is done, then putting rotation back (Ctrl-C again to leave at once; --resume or --rollback then)',
        });
      }
      return;
    }
    if (state.stage !== 'confirm') return;
    eachKey(input, key, (i, k) => {
      if (bindings.confirm(i, k)) {
        start();
        return false;
      }
      if (bindings.quit(i) || bindings.decline(i, k) || bindings.interrupt(i, k)) {
        dispatch({ type: 'finish', ok: true, headline: 'Nothing was changed.', lines: [], exitCode: 0 });
        return false;
      }
      return true;
    });
  });

  // Server names, versions and the command's own output are outside text: drawn, never obeyed.
  return (
    <UpgradeScreen
      stage={state.stage}
      title={state.title}
      checks={printableData(session.checks)}
      warnings={printableData(state.plan.warnings)}
      servers={printableData(state.journal.servers)}
      first={printableData(state.journal.first)}
      target={printableData(state.journal.target ?? state.journal.toVersion)}
      items={printableData(state.items)}
      output={printableData(state.output)}
      notes={printableData(state.notes)}
      notice={printableData(state.notice)}
      result={printableData(state.result)}
    />
  );
}

/** Renders the upgrade screen until it finishes; returns the exit code. */
export async function runUpgradeScreen(session: UpgradeSession, options: { yes: boolean }): Promise<number> {
  const { applyUpgrade } = await import('./upgrade/index.js');
  const services: UpgradeServices = { session, apply: (hooks) => applyUpgrade(session, hooks), skipConfirmation: options.yes };
  return runApp((onExit) => <UpgradeApp services={services} onExit={onExit} />);
}
