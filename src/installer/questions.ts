// The installer's questions, in the seed's words and order, and the pure state machine the TUI
// drives: type, submit (empty = the default), go back one question. No React here: the screen
// renders this state and sends these actions.
import { formatListen, parseListen } from '../config/values.js';
import { nodeSetProblems, nodeSpec, parseNodes, reachableAddress } from '../haproxy/config.js';
import type { HaproxyAnswers } from '../haproxy/config.js';
import type { Field, Resolution } from './answers.js';
import { validateField } from './answers.js';
import { parseDatabaseUrl } from '../postgres/url.js';

export type QuestionId =
  | 'listen'
  | 'trustedForwarders'
  | 'databaseOption'
  | 'databaseUrl'
  | 'databaseCa'
  | 'serverName'
  | 'haproxy'
  | 'haproxyBind'
  | 'haproxyNodes';

export interface Question {
  id: QuestionId;
  /** Lines shown above the prompt (the seed's explanations). */
  intro: string[];
  /** The prompt, with the current default in it. */
  prompt: (defaultValue: string, values: Values) => string;
  kind: 'text' | 'choice' | 'url';
  /** Short label of the one-line summary once answered. */
  label: string;
  /** Whether the question is asked for these answers so far. */
  applies: (values: Values) => boolean;
  /** After-answer note (the seed's advice after the connection string). */
  note?: (values: Values) => string | undefined;
}

/** `joined`: the database answers came from a join invitation (knocker install --join): not asked. */
export type Values = Record<QuestionId, string> & { joined?: 'yes' };

export const DATABASE_CHOICES = [
  { value: '1', label: '1) Use a local PostgreSQL installation' },
  { value: '2', label: '2) Use a new external or preconfigured PostgreSQL database' },
  { value: '3', label: '3) This Server is a web node only, use pre-existing external Knocknoc database' },
] as const;

export const QUESTIONS: Question[] = [
  {
    id: 'listen',
    intro: [],
    prompt: (d) => `Enter IP and port to listen on (default: ${d}):`,
    kind: 'text',
    label: 'Listen',
    applies: () => true,
  },
  {
    id: 'trustedForwarders',
    intro: [
      "If you're running behind a reverse-proxy, set the trusted forwarders.",
      'Default is safe if not. You can adjust this later, see Server Install on https://docs.knocknoc.io',
    ],
    prompt: (d) => `Enter TrustedForwarders (default: ${d}):`,
    kind: 'text',
    label: 'TrustedForwarders',
    applies: () => true,
  },
  {
    id: 'databaseOption',
    intro: ['Knocknoc stores its data in PostgreSQL, and you can choose how to configure the database.', 'You have three options:'],
    prompt: (d) => `Option 1, 2, or 3? (default is ${d}):`,
    kind: 'choice',
    label: 'Database option',
    applies: (values) => !values.joined,
  },
  {
    id: 'databaseUrl',
    intro: [],
    prompt: (_d, values) =>
      values.databaseOption === '3'
        ? 'Enter pre-existing external Knocknoc database connection string:'
        : 'Enter the new external PostgreSQL database connection string:',
    kind: 'url',
    label: 'Connection string',
    applies: (values) => !values.joined && (values.databaseOption === '2' || values.databaseOption === '3'),
    note: (values) =>
      values.databaseOption === '3' ? 'If a node cannot reach the database, confirm its IP has been added with exposedb --add on the primary.' : undefined,
  },
  {
    id: 'databaseCa',
    intro: ["The connection string asks to verify the database server's certificate: give the CA that issued it."],
    prompt: (d) => `Enter the CA certificate file (knocker exposedb --init on the primary names it)${d ? ` (default: ${shownCa(d)})` : ''}:`,
    kind: 'text',
    label: 'Database CA',
    applies: (values) =>
      !values.joined && (values.databaseOption === '2' || values.databaseOption === '3') && (values.databaseCa !== '' || urlWantsCa(values.databaseUrl)),
  },
  {
    id: 'serverName',
    intro: ['Every web node sharing the database needs a name of its own; cloned hosts often share a host name.'],
    prompt: (d) => `Enter this server's name (default: ${d}):`,
    kind: 'text',
    label: 'Server name',
    applies: () => true,
  },
  {
    id: 'haproxy',
    intro: [
      'HAProxy can spread web traffic over several Knocknoc web nodes, health-checked on /_status, with',
      'cookie persistence. You can also set it up later with knocker haproxy setup, or use your own load balancer.',
    ],
    prompt: (d) => `Set up HAProxy on this host? (default: ${d}):`,
    kind: 'text',
    label: 'HAProxy',
    applies: () => true,
  },
  {
    id: 'haproxyBind',
    intro: [],
    prompt: (d) => `Enter IP and port for HAProxy to listen on (default: ${d}):`,
    kind: 'text',
    label: 'HAProxy listens on',
    applies: (values) => values.haproxy === 'yes',
  },
  {
    id: 'haproxyNodes',
    intro: ['The web nodes behind it, as NAME=HOST:PORT, comma separated (this node too, if it serves).'],
    prompt: (d) => `Enter the web nodes (default: ${d}):`,
    kind: 'text',
    label: 'HAProxy web nodes',
    applies: (values) => values.haproxy === 'yes',
  },
];

/** A connection string that verifies its server (verify-ca, verify-full) and names no CA file itself. */
export function urlWantsCa(text: string): boolean {
  const parsed = parseDatabaseUrl(text);
  return parsed.ok && (parsed.value.sslmode === 'verify-full' || parsed.value.sslmode === 'verify-ca') && parsed.value.sslrootcert === undefined;
}

/** A CA answer as shown: its file, or a word for PEM text. */
export function shownCa(value: string): string {
  return value.startsWith('-----BEGIN') ? '(a PEM certificate)' : value;
}

type Validated = { ok: true; value: string } | { ok: false; error: string };

function validateFieldAnswer(field: Field): (text: string) => Validated {
  return (text) => {
    const result = validateField(field, text);
    if (!result.ok) return result;
    return { ok: true, value: Array.isArray(result.value) ? result.value.join(', ') : String(result.value) };
  };
}

const VALIDATE: Record<QuestionId, (text: string) => Validated> = {
  listen: validateFieldAnswer('listen'),
  trustedForwarders: validateFieldAnswer('trustedForwarders'),
  databaseOption: validateFieldAnswer('databaseOption'),
  databaseUrl: validateFieldAnswer('databaseUrl'),
  databaseCa: validateFieldAnswer('databaseCa'),
  serverName: validateFieldAnswer('serverName'),
  haproxy: (text) => {
    const word = text.trim().toLowerCase();
    if (word === 'y' || word === 'yes') return { ok: true, value: 'yes' };
    if (word === 'n' || word === 'no') return { ok: true, value: 'no' };
    return { ok: false, error: 'answer yes or no' };
  },
  haproxyBind: (text) => {
    const parsed = parseListen(text);
    return parsed.ok ? { ok: true, value: formatListen(parsed.value) } : parsed;
  },
  haproxyNodes: (text) => {
    const { nodes, problems } = parseNodes(text.split(/[,\s]+/).filter(Boolean), false);
    const all = [...problems, ...(problems.length === 0 ? nodeSetProblems(nodes) : [])];
    return all.length > 0 ? { ok: false, error: all[0]! } : { ok: true, value: nodes.map(nodeSpec).join(', ') };
  },
};

/** Validates what the operator typed for a question; returns the normalised text or the error. */
export function validateAnswer(id: QuestionId, text: string): Validated {
  return VALIDATE[id](text);
}

/** This node, as HAProxy would reach it: the default node list. */
export function thisNode(serverName: string, listen: string): string {
  const parsed = parseListen(listen);
  return parsed.ok ? `${serverName}=${formatListen({ ...parsed.value, host: reachableAddress(parsed.value) })}` : '';
}

/** The haproxy answers of a finished flow (undefined when HAProxy is not wanted). */
export function haproxyAnswersFrom(values: Values): HaproxyAnswers | undefined {
  if (values.haproxy !== 'yes') return undefined;
  return { bind: values.haproxyBind, nodes: values.haproxyNodes.split(/,\s*/).filter(Boolean) };
}

export interface FlowState {
  /** Index in QUESTIONS of the question being asked; QUESTIONS.length when all are answered. */
  index: number;
  /** The defaults (from flags, environment, answers file, knocknoc.conf or built-in). */
  defaults: Values;
  /** Answers given so far (normalised). */
  values: Values;
  /** What is typed in the current field. */
  draft: string;
  error: string | undefined;
  /** Questions answered, in order (for the summary lines and for going back). */
  answered: QuestionId[];
}

export type FlowAction =
  | { type: 'type'; text: string }
  | { type: 'append'; text: string }
  | { type: 'erase' }
  | { type: 'submit'; text?: string }
  | { type: 'back' };

export function initialFlow(defaults: Values): FlowState {
  return { index: 0, defaults, values: { ...defaults }, draft: '', error: undefined, answered: [] };
}

/** HAProxy's default listen address when it is set up. */
export const DEFAULT_HAPROXY_BIND = '0.0.0.0:80';

/**
 * The defaults a resolution gives the questions. HAProxy's come from the answers file, else from
 * the configuration knocker wrote on this host (`inPlace`); its nodes default to this node.
 */
export function defaultsFrom(resolution: Resolution, inPlace?: HaproxyAnswers): Values {
  const v = resolution.values;
  const haproxy = resolution.haproxy?.value ?? inPlace;
  const listen = v.listen?.value ?? '';
  return {
    listen,
    trustedForwarders: v.trustedForwarders?.value.join(', ') ?? '',
    databaseOption: String(v.databaseOption?.value ?? 1),
    databaseUrl: v.databaseUrl?.value ?? '',
    databaseCa: v.databaseCa?.value ?? '',
    serverName: v.serverName?.value ?? '',
    haproxy: haproxy ? 'yes' : 'no',
    haproxyBind: haproxy?.bind ?? DEFAULT_HAPROXY_BIND,
    haproxyNodes: haproxy?.nodes.join(', ') ?? (v.serverName ? thisNode(v.serverName.value, listen) : ''),
    ...(v.databaseUrl?.source.kind === 'join' ? { joined: 'yes' as const } : {}),
  };
}

function nextIndex(from: number, values: Values): number {
  let i = from;
  while (i < QUESTIONS.length && !QUESTIONS[i]!.applies(values)) i += 1;
  return i;
}

/** The name in a node list that holds only this node at `listen` (the default list), else undefined. */
function defaultNodeName(nodes: string, listen: string): string | undefined {
  const name = /^([^=,\s]+)=\S+$/.exec(nodes)?.[1];
  return name !== undefined && nodes === thisNode(name, listen) ? name : undefined;
}

export function flowReducer(state: FlowState, action: FlowAction): FlowState {
  const question = QUESTIONS[state.index];
  switch (action.type) {
    case 'append':
      return flowReducer(state, { type: 'type', text: state.draft + action.text });
    case 'erase':
      return flowReducer(state, { type: 'type', text: state.draft.slice(0, -1) });
    case 'type': {
      if (!question) return state;
      const error =
        action.text.trim() === ''
          ? undefined
          : (() => {
              const result = validateAnswer(question.id, action.text);
              return result.ok ? undefined : result.error;
            })();
      return { ...state, draft: action.text, error };
    }
    case 'submit': {
      if (!question) return state;
      const typed = (action.text ?? state.draft).trim();
      const text = typed === '' ? state.values[question.id] : typed;
      if (text === '') return { ...state, error: 'this answer is required' };
      const result = validateAnswer(question.id, text);
      if (!result.ok) return { ...state, draft: typed, error: result.error };
      const values = { ...state.values, [question.id]: result.value };
      // The default node list names this node: it follows a changed listen address.
      const thisNodeName =
        question.id === 'listen' || question.id === 'serverName' ? defaultNodeName(state.values.haproxyNodes, state.values.listen) : undefined;
      if (thisNodeName && question.id === 'listen') values.haproxyNodes = thisNode(thisNodeName, result.value);
      // ... and this node's name, when it was the default list's.
      if (thisNodeName === state.values.serverName && question.id === 'serverName') values.haproxyNodes = thisNode(result.value, values.listen);
      const index = nextIndex(state.index + 1, values);
      return { ...state, values, index, draft: '', error: undefined, answered: [...state.answered, question.id] };
    }
    case 'back': {
      const previous = state.answered[state.answered.length - 1];
      if (!previous) return state;
      return {
        ...state,
        index: QUESTIONS.findIndex((q) => q.id === previous),
        answered: state.answered.slice(0, -1),
        draft: '',
        error: undefined,
      };
    }
  }
}

export function isFinished(state: FlowState): boolean {
  return state.index >= QUESTIONS.length;
}
