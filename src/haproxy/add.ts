// `knocker haproxy add`: more web nodes (active, or --backup) in the configuration in place, reloaded.
import { UsageError } from '../errors.js';
import type { Output } from '../shared/output.js';
import type { Root } from '../system/root.js';
import { applyChange, nodesOption, type ChangeOptions } from './change.js';
import { nodeSpec, type HaproxyNode } from './config.js';
import { knockerSettings } from './installed.js';

export async function haproxyAdd(root: Root, active: string[], backup: string[], options: ChangeOptions, io: Output): Promise<number> {
  const added = nodesOption(active, backup);
  if (added.length === 0) throw new UsageError('which nodes? Give them as NAME=HOST:PORT (--backup NAME=HOST:PORT for a standby)');
  return applyChange(
    root,
    {
      title: `knocker haproxy add ${added.map(nodeSpec).join(' ')}`,
      startIfStopped: false,
      settings(facts) {
        const settings = knockerSettings(facts);
        // A node already there as given is no change (a re-run after a cut-off one finishes its reload);
        // one of that name elsewhere, or of the other role, is a mistake.
        const same = (n: HaproxyNode) => settings.nodes.some((e) => nodeSpec(e) === nodeSpec(n) && e.backup === n.backup);
        const taken = added.filter((n) => !same(n) && settings.nodes.some((e) => e.name === n.name));
        if (taken.length > 0) {
          throw new UsageError(
            'already nodes of this HAProxy; nothing was changed',
            taken.map(
              (n) =>
                `${n.name} is ${nodeSpec(settings.nodes.find((e) => e.name === n.name)!)}${settings.nodes.find((e) => e.name === n.name)!.backup ? ' (backup)' : ''}: remove it first to change it`,
            ),
          );
        }
        return { ...settings, nodes: [...settings.nodes, ...added.filter((n) => !same(n))] };
      },
    },
    options,
    io,
  );
}
