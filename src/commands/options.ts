// Flag parsers and rules that several commands share.
import { InvalidArgumentError } from 'commander';
import { UsageError } from '../errors.js';

/** A number of seconds from MIN to MAX (--interval, the upgrade's timeouts). */
export function secondsOption(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+(\.\d+)?$/.test(value.trim()) || n < min || n > max) throw new InvalidArgumentError(`give a number of seconds from ${min} to ${max}`);
    return n;
  };
}

/** An option that may be given once: a repeat is a mistake, not "the last one wins". */
export function once(flag: string) {
  return (value: string, previous: unknown): string => {
    if (previous !== undefined) throw new InvalidArgumentError(`${flag} may be given only once`);
    return value;
  };
}

/** A repeatable option, collected in order. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** --json prints a plan, so it needs --dry-run. */
export function jsonNeedsDryRun(options: { json?: boolean; dryRun?: boolean }): void {
  if (options.json && !options.dryRun) throw new UsageError('--json goes with --dry-run');
}
