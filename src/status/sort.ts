// The orders the dashboard lists its servers in, cycled with one key: health (problems first, as
// the monitor sorts), name (rows that stay put during an upgrade), version (oldest release first)
// and seen (the longest silent first). Pure functions of the rows.
import { sortRows, type ServerRow } from './model.js';

export type SortKey = 'health' | 'name' | 'version' | 'seen';

export const SORT_KEYS: readonly SortKey[] = ['health', 'name', 'version', 'seen'];

export function nextSort(key: SortKey): SortKey {
  return SORT_KEYS[(SORT_KEYS.indexOf(key) + 1) % SORT_KEYS.length]!;
}

const byName = (a: ServerRow, b: ServerRow) => a.name.localeCompare(b.name, 'en', { numeric: true });
const versionOf = (row: ServerRow) => row.probe?.body?.version ?? row.registry?.version ?? '';

export function sortServers(rows: ServerRow[], key: SortKey): ServerRow[] {
  switch (key) {
    case 'health':
      return sortRows(rows);
    case 'name':
      return [...rows].sort(byName);
    case 'version':
      return [...rows].sort((a, b) => versionOf(a).localeCompare(versionOf(b), 'en', { numeric: true }) || byName(a, b));
    case 'seen':
      // Never seen (not in the registry) first, then the oldest heartbeat.
      return [...rows].sort((a, b) => (a.registry?.lastSeen.getTime() ?? -1) - (b.registry?.lastSeen.getTime() ?? -1) || byName(a, b));
  }
}
