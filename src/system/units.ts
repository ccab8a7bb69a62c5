// Durations and sizes as operators read them, for every command that prints one.

/** "4s", "3m05s", "2h10m", "5d03h". */
export function age(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86_400)}d${String(Math.floor((s % 86_400) / 3600)).padStart(2, '0')}h`;
}

/**
 * "0 B", "12 KiB", "3.4 MiB": binary units with their IEC names. Binary because what is measured
 * is PostgreSQL's WAL, whose settings (max_slot_wal_keep_size, wal_segment_size: 16 MB = 16 MiB)
 * and pg_size_pretty() count in 1024s; IEC names so that no one reads them as 1000s.
 */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = -1;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 10 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

/** A duration given in ms: "30 s" (whole seconds), "0.04 s" (under a second), "12.3 s". */
export function seconds(ms: number): string {
  if (ms % 1000 === 0) return `${ms / 1000} s`;
  return `${(ms / 1000).toFixed(ms < 1000 ? 2 : 1)} s`;
}

/** "1 server", "3 servers" (words whose plural takes an s). */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
