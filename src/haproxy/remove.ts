// `knocker haproxy remove`: web nodes taken out of the configuration in place, reloaded.
import { UsageError } from '../errors.js';
import type { Output } from '../shared/output.js';
import type { Root } from '../system/root.js';
import { applyChange, type Change, type ChangeOptions } from './change.js';
import { knockerSettings } from './installed.js';

/** The change that takes these nodes out; another command may plan it as part of its own (planHaproxyChange). */
export function removeNodes(names: string[]): Change {
  return {
    title: `knocker haproxy remove ${names.join(' ')}`,
    startIfStopped: false,
    settings(facts) {
      const settings = knockerSettings(facts);
      const unknown = names.filter((name) => !settings.nodes.some((n) => n.name === name));
      if (unknown.length > 0) {
        throw new UsageError(`no such node${unknown.length === 1 ? '' : 's'}: ${unknown.join(', ')}; nothing was changed`, [
          `the nodes are: ${settings.nodes.map((n) => n.name).join(', ')}`,
        ]);
      }
      return { ...settings, nodes: settings.nodes.filter((n) => !names.includes(n.name)) };
    },
  };
}

export async function haproxyRemove(root: Root, names: string[], options: ChangeOptions, io: Output): Promise<number> {
  return applyChange(root, removeNodes(names), options, io);
}
