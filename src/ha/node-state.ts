// This data host's membership of an automatic pair: written by `knocker ha adopt` once pg_autoctl
// owns this host's PostgreSQL, removed by the way back to knocker's manual pair. Its presence is what
// tells knocker's own commands (fence, standby moves, service, status, uninstall, upgrade) that the
// roles here are pg_auto_failover's to change, never theirs. No secret in it: the monitor's URI has
// no password (the keeper reads it from `passfile`).
import { PreflightError } from '../errors.js';
import { readIfExists, writeFileAtomic } from '../system/files.js';
import type { Root } from '../system/root.js';

export const HA_NODE_STATE = '/var/lib/knocknoc/ha/node.json';

export interface HaNodeState {
  version: 1;
  mode: 'automatic';
  /** pg_autoctl's node name (--name) and the address it was given (--hostname). */
  name: string;
  address: string;
  /** The monitor's URI, verify-full with the cluster's CA, no password in it. */
  monitorUri: string;
  /** PGDATA as pg_autoctl knows it, its XDG folders (config and state), its passfile. */
  pgdata: string;
  xdg: string;
  passfile: string;
  /** The keeper's supervision: a systemd unit on a host, a pid file under a sandbox root. */
  unit?: string;
  pidFile?: string;
  /** When the adoption finished (ISO 8601). */
  adoptedAt: string;
}

const NAME = /^[A-Za-z0-9_.-]{1,63}$/;
const ADDRESS = /^[A-Za-z0-9.:-]{1,253}$/;

function absolute(value: unknown, field: string): string {
  if (typeof value !== 'string' || !value.startsWith('/') || value.includes('\0') || value.includes('\n')) throw new Error(`${field} is not an absolute path`);
  return value;
}

/** Checks every field of what was read (the file is read from outside: never trusted as it is). */
export function validateHaNodeState(value: unknown): HaNodeState {
  if (!value || typeof value !== 'object') throw new Error('not an object');
  const state = value as Record<string, unknown>;
  if (state.version !== 1) throw new Error('not a state file of this version');
  if (state.mode !== 'automatic') throw new Error('mode is not "automatic"');
  if (typeof state.name !== 'string' || !NAME.test(state.name)) throw new Error('name is not a node name');
  if (typeof state.address !== 'string' || !ADDRESS.test(state.address)) throw new Error('address is not a host address');
  if (typeof state.monitorUri !== 'string' || !/^postgres(ql)?:\/\/[^:@/]+@/.test(state.monitorUri) || /\s/.test(state.monitorUri))
    throw new Error('monitorUri is not a password-less postgres:// URI');
  if (typeof state.adoptedAt !== 'string' || Number.isNaN(Date.parse(state.adoptedAt))) throw new Error('adoptedAt is not a time');
  const result: HaNodeState = {
    version: 1,
    mode: 'automatic',
    name: state.name,
    address: state.address,
    monitorUri: state.monitorUri,
    pgdata: absolute(state.pgdata, 'pgdata'),
    xdg: absolute(state.xdg, 'xdg'),
    passfile: absolute(state.passfile, 'passfile'),
    adoptedAt: state.adoptedAt,
  };
  if (state.unit !== undefined) {
    if (typeof state.unit !== 'string' || !/^[A-Za-z0-9@._-]{1,200}\.service$/.test(state.unit)) throw new Error('unit is not a systemd service name');
    result.unit = state.unit;
  }
  if (state.pidFile !== undefined) result.pidFile = absolute(state.pidFile, 'pidFile');
  return result;
}

/** This host's automatic-pair state, or undefined when this host is not a data node of one. */
export async function readHaNodeState(root: Root): Promise<HaNodeState | undefined> {
  const file = root.path(HA_NODE_STATE);
  const text = await readIfExists(file);
  if (text === undefined) return undefined;
  try {
    return validateHaNodeState(JSON.parse(text));
  } catch (error) {
    throw new PreflightError(`${file} cannot be read: ${(error as Error).message}`);
  }
}

export async function writeHaNodeState(root: Root, state: HaNodeState): Promise<void> {
  await writeFileAtomic(root.path(HA_NODE_STATE), `${JSON.stringify(validateHaNodeState(state), null, 2)}\n`, { mode: 0o600 });
}

/** This host's address as an automatic pair's node.json keeps it (never in PGDATA: pg_rewind copies the peer's files); undefined elsewhere. */
export async function adoptedAddress(root: Root): Promise<string | undefined> {
  return (await readHaNodeState(root))?.address;
}

/**
 * Refuses a knocker move that would fight pg_autoctl's keeper (fence, promote, switchover, rejoin of
 * the manual pair) when this host is a data node of an automatic pair; says what to use instead.
 */
export async function refuseOnAutomaticPair(root: Root, what: string, instead: string): Promise<void> {
  const state = await readHaNodeState(root);
  if (!state) return;
  throw new PreflightError(`${what} refused: this host's PostgreSQL is run by pg_auto_failover (node ${state.name}, ${root.path(HA_NODE_STATE)})`, [instead]);
}
