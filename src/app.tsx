// The interactive installer: questions → preflight and plan → apply with live progress → result.
// This component owns the flow and the app's exit; screens only display and collect input, and
// all work is done by the install session it is given.
import { useEffect, useReducer } from 'react';
import { Box, Text, useInput } from 'ink';
import { formatError, KnockerError } from './errors.js';
import type { InstallSession, Prepared } from './installer/index.js';
import { PreflightFailed, type Check } from './shared/checks.js';
import { defaultsFrom, flowReducer, haproxyAnswersFrom, initialFlow, isFinished, type Values } from './installer/questions.js';
import { nextSteps } from './installer/summary.js';
import { PlanScreen, PreflightFailedScreen } from './screens/plan-screen.js';
import { progressAfter, progressItems, ProgressScreen, ResultScreen, type ProgressItem } from './screens/progress-screen.js';
import { QuestionsScreen } from './screens/questions-screen.js';
import { runApp, type OnExit } from './screens/app-exit.js';
import { bindings } from './screens/keys.js';
import { theme } from './screens/theme.js';
import type { ApplyEvent, ApplyOutcome } from './system/plan.js';
import { readPackageFile } from './system/package.js';
import { plural, seconds } from './system/units.js';

/** What the installer screen needs from the outside world. */
export interface InstallerServices {
  bannerArt: string;
  existingConf: string | undefined;
  defaults: Values;
  /** Apply without the final confirmation (--yes). */
  skipConfirmation: boolean;
  prepare(values: Values): Promise<Prepared>;
  apply(prepared: Prepared, onEvent: (event: ApplyEvent) => void): Promise<ApplyOutcome>;
  summary(prepared: Prepared): string[];
}

type Phase =
  | { name: 'questions' }
  | { name: 'checking' }
  | { name: 'preflight-failed'; checks: Check[]; message: string; hints: string[] }
  | { name: 'plan'; prepared: Prepared }
  | { name: 'applying'; prepared: Prepared }
  | { name: 'finished'; ok: boolean; headline: string; lines: string[]; exitCode: number };

interface AppState {
  phase: Phase;
  progress: ProgressItem[];
  notice?: string;
}

type AppAction =
  | { type: 'check' }
  | { type: 'prepared'; prepared: Prepared; skipConfirmation: boolean }
  | { type: 'preflight-failed'; checks: Check[]; message: string; hints: string[] }
  | { type: 'back-to-questions' }
  | { type: 'apply' }
  | { type: 'event'; event: ApplyEvent }
  | { type: 'finish'; ok: boolean; headline: string; lines: string[]; exitCode: number }
  | { type: 'notice'; text: string };

function appReducer(state: AppState, action: AppAction): AppState {
  switch (action.type) {
    case 'check':
      return { ...state, phase: { name: 'checking' } };
    case 'prepared': {
      const changes = action.prepared.plan.steps.some((s) => s.changes);
      if (action.skipConfirmation && changes)
        return { ...state, phase: { name: 'applying', prepared: action.prepared }, progress: progressItems(action.prepared.plan) };
      if (action.skipConfirmation && !changes) {
        return {
          ...state,
          phase: { name: 'finished', ok: true, headline: 'Nothing to change: this host already matches these answers.', lines: [], exitCode: 0 },
        };
      }
      return { ...state, phase: { name: 'plan', prepared: action.prepared } };
    }
    case 'preflight-failed':
      return { ...state, phase: { name: 'preflight-failed', checks: action.checks, message: action.message, hints: action.hints } };
    case 'back-to-questions':
      return { ...state, phase: { name: 'questions' } };
    case 'apply':
      return state.phase.name === 'plan'
        ? { ...state, phase: { name: 'applying', prepared: state.phase.prepared }, progress: progressItems(state.phase.prepared.plan) }
        : state;
    case 'event': {
      if (state.phase.name !== 'applying') return state;
      return { ...state, progress: progressAfter(state.progress, state.phase.prepared.plan, action.event) };
    }
    case 'finish':
      return { ...state, phase: { name: 'finished', ok: action.ok, headline: action.headline, lines: action.lines, exitCode: action.exitCode } };
    case 'notice':
      return { ...state, notice: action.text };
  }
}

export interface InstallerAppProps {
  services: InstallerServices;
  /** Where the installer reports its outcome (src/screens/app-exit.tsx ends the app). */
  onExit: OnExit;
}

export function InstallerApp({ services, onExit }: InstallerAppProps) {
  const [flow, dispatchFlow] = useReducer(flowReducer, services.defaults, initialFlow);
  const [state, dispatch] = useReducer(appReducer, { phase: { name: 'questions' }, progress: [] });
  const { phase } = state;

  useInput((input, key) => {
    if (!bindings.interrupt(input, key)) return;
    if (phase.name === 'applying') {
      dispatch({ type: 'notice', text: 'Applying: stopping now could leave this host half-installed. It will finish, or roll back by itself.' });
    } else if (phase.name !== 'finished') {
      dispatch({ type: 'finish', ok: false, headline: 'Cancelled: nothing was changed.', lines: [], exitCode: 130 });
    }
  });

  // All questions answered: run preflight and build the plan.
  useEffect(() => {
    if (phase.name === 'questions' && isFinished(flow)) dispatch({ type: 'check' });
  }, [phase.name, flow]);

  useEffect(() => {
    if (phase.name !== 'checking') return undefined;
    let cancelled = false;
    services.prepare(flow.values).then(
      (prepared) => !cancelled && dispatch({ type: 'prepared', prepared, skipConfirmation: services.skipConfirmation }),
      (error: unknown) => {
        if (cancelled) return;
        if (error instanceof PreflightFailed) {
          dispatch({ type: 'preflight-failed', checks: error.checks, message: error.message, hints: error.hints });
        } else if (error instanceof KnockerError) {
          dispatch({ type: 'preflight-failed', checks: [], message: error.message, hints: error.hints });
        } else {
          dispatch({ type: 'finish', ok: false, headline: 'knocker stopped on an internal error', lines: formatError(error), exitCode: 1 });
        }
      },
    );
    return () => {
      cancelled = true;
    };
  }, [phase.name]); // once per check: the flow values are final while checking

  useEffect(() => {
    if (phase.name !== 'applying') return;
    const { prepared } = phase;
    const started = Date.now();
    services
      .apply(prepared, (event) => dispatch({ type: 'event', event }))
      .then(
        () => {
          const changes = prepared.plan.steps.filter((s) => s.changes).length;
          dispatch({
            type: 'finish',
            ok: true,
            headline: `Knocknoc is installed: ${plural(changes, 'change')} in ${seconds(Date.now() - started)}.`,
            lines: services.summary(prepared),
            exitCode: 0,
          });
        },
        (error: unknown) => {
          const exitCode = error instanceof KnockerError ? error.exitCode : 1;
          dispatch({ type: 'finish', ok: false, headline: 'The install failed.', lines: formatError(error), exitCode });
        },
      );
  }, [phase.name]); // once per apply

  // The outcome, once the final frame has been rendered.
  useEffect(() => {
    if (phase.name === 'finished') onExit(phase.exitCode);
  }, [phase, onExit]);

  const intro = { bannerArt: services.bannerArt, existingConf: services.existingConf };
  switch (phase.name) {
    case 'questions':
      return <QuestionsScreen {...intro} flow={flow} dispatch={dispatchFlow} isActive />;
    case 'checking':
      return (
        <Box flexDirection="column">
          <QuestionsScreen {...intro} flow={flow} dispatch={dispatchFlow} isActive={false} />
          <Text color={theme.accent}>Checking this host and the database…</Text>
        </Box>
      );
    case 'preflight-failed':
      return (
        <PreflightFailedScreen
          checks={phase.checks}
          message={phase.message}
          hints={phase.hints}
          isActive
          onBack={() => {
            dispatchFlow({ type: 'back' });
            dispatch({ type: 'back-to-questions' });
          }}
          onQuit={() => dispatch({ type: 'finish', ok: false, headline: 'Preflight failed: nothing was changed.', lines: [], exitCode: 3 })}
        />
      );
    case 'plan':
      return (
        <Box flexDirection="column">
          <PlanScreen
            checks={phase.prepared.report.checks}
            steps={phase.prepared.plan.steps}
            warnings={phase.prepared.plan.warnings}
            isActive
            onApply={() => dispatch({ type: 'apply' })}
            onBack={() => {
              dispatchFlow({ type: 'back' });
              dispatch({ type: 'back-to-questions' });
            }}
            onQuit={() =>
              dispatch({
                type: 'finish',
                ok: true,
                headline: phase.prepared.plan.steps.some((s) => s.changes)
                  ? 'Nothing was changed.'
                  : 'Nothing to change: this host already matches these answers.',
                lines: [],
                exitCode: 0,
              })
            }
          />
        </Box>
      );
    case 'applying':
      return <ProgressScreen items={state.progress} notice={state.notice} />;
    case 'finished':
      return <ResultScreen items={state.progress} ok={phase.ok} headline={phase.headline} lines={phase.lines} />;
  }
}

/** The services of an install session, for the installer screen. */
export function installerServices(session: InstallSession, options: { skipConfirmation: boolean; bannerArt: string }): InstallerServices {
  return {
    bannerArt: options.bannerArt,
    existingConf: session.existingConfFile,
    defaults: defaultsFrom(session.resolution, session.existingHaproxy),
    skipConfirmation: options.skipConfirmation,
    prepare: (values) => {
      const haproxy = haproxyAnswersFrom(values);
      return session.prepare(
        {
          listen: values.listen,
          trustedForwarders: values.trustedForwarders.split(/,\s*/).filter(Boolean),
          databaseOption: Number(values.databaseOption) as 1 | 2 | 3,
          ...(values.databaseOption === '1' ? {} : { databaseUrl: values.databaseUrl, ...(values.databaseCa ? { databaseCa: values.databaseCa } : {}) }),
          serverName: values.serverName,
          ...(haproxy ? { haproxy } : {}),
        },
        { saveAnswers: true },
      );
    },
    apply: (prepared, onEvent) => session.apply(prepared, onEvent),
    summary: (prepared) => nextSteps(session, prepared),
  };
}

export function readBanner(): string {
  return readPackageFile('assets/banner.txt');
}

/** Renders the interactive installer until it finishes; returns the exit code. */
export async function runInteractiveInstall(session: InstallSession, options: { yes: boolean }): Promise<number> {
  const services = installerServices(session, { skipConfirmation: options.yes, bannerArt: readBanner() });
  try {
    return await runApp((onExit) => <InstallerApp services={services} onExit={onExit} />);
  } finally {
    await session.close();
  }
}
