// The dashboard's line budget, on its own: text cut to the width before it is drawn, and the
// events pane, which keeps the newest events within its lines whatever their length.
import { expect, test } from 'vitest';
import { eventLines } from '../../src/screens/status-screen.js';
import { fitLine, wrapLines } from '../../src/screens/lines.js';
import { sortServers } from '../../src/status/sort.js';

test('wrapLines: words kept whole, continuation indented, never wider than the width, cut with … at maxLines', () => {
  const text = 'web-2: stopped (marked stopped in the registry); /_status: connection refused; HAProxy: DOWN (L4CON: Connection refused)';
  const lines = wrapLines(text, 40, { indent: 4 });
  for (const line of lines) expect([...line].length).toBeLessThanOrEqual(40);
  expect(lines.slice(1).every((line) => line.startsWith('    '))).toBe(true);
  expect(lines.join(' ').replace(/\s+/g, ' ')).toBe(text);
  const two = wrapLines(text, 40, { indent: 4, maxLines: 2 });
  expect(two).toHaveLength(2);
  expect(two[1]!.endsWith('…')).toBe(true);
  expect(wrapLines('x'.repeat(100), 30)).toHaveLength(4);
  expect(fitLine('abcdef', 4)).toBe('abc…');
  expect(fitLine('abc', 4)).toBe('abc');
});

test('the events pane: the newest events in the budget, each at most two lines, the rest counted', () => {
  const events = Array.from({ length: 50 }, (_, i) => ({
    at: Date.UTC(2026, 11, 7, 12, 0, i),
    level: 'warn' as const,
    text: i % 3 === 0 ? `web-${i}: ok → no-answer: /_status: ${'connection refused, '.repeat(10)}` : `web-${i}: HAProxy UP → DRAIN`,
  }));
  for (const budget of [0, 1, 2, 3, 7, 20]) {
    const shown = eventLines(events, 80, budget);
    expect(shown.lines.length).toBeLessThanOrEqual(budget);
    for (const line of shown.lines) expect([...line.text].length).toBeLessThanOrEqual(80);
    const firsts = shown.lines.filter((line) => line.event);
    expect(shown.older + firsts.length).toBe(50);
    // The newest is always the last line's event.
    if (budget > 0) expect(shown.lines.some((line) => line.text.includes('web-49:'))).toBe(true);
  }
  // A long event takes two lines, not more.
  const long = eventLines(events.slice(0, 1), 80, 10);
  expect(long.lines).toHaveLength(2);
});

test('sorting by name, version and last seen; health puts problems first', () => {
  const row = (name: string, health: 'ok' | 'fail', version: string, seenAgo: number) =>
    ({
      name,
      health,
      word: health,
      problems: [],
      address: undefined,
      probe: undefined,
      haproxy: undefined,
      backup: false,
      registry: {
        name,
        listen: '',
        version,
        schemaVersion: 1,
        state: 'running',
        online: true,
        lastSeen: new Date(1_000_000 - seenAgo),
        startedAt: new Date(0),
      },
    }) as Parameters<typeof sortServers>[0][number];
  const rows = [row('web-10', 'ok', '1.10.0', 1), row('web-2', 'fail', '1.9.0', 50), row('web-1', 'ok', '1.10.0', 5)];
  expect(sortServers(rows, 'name').map((r) => r.name)).toEqual(['web-1', 'web-2', 'web-10']);
  expect(sortServers(rows, 'health').map((r) => r.name)).toEqual(['web-2', 'web-1', 'web-10']);
  expect(sortServers(rows, 'version').map((r) => r.name)).toEqual(['web-2', 'web-1', 'web-10']);
  expect(sortServers(rows, 'seen').map((r) => r.name)).toEqual(['web-2', 'web-1', 'web-10']);
});

test('an indented word longer than the line is cut, not left as an empty first line', () => {
  const lines = wrapLines(`  ${'{"status":"ok",'.repeat(8)}`, 40, { indent: 4 });
  expect(lines[0]!.trim()).not.toBe('');
  for (const line of lines) expect([...line].length).toBeLessThanOrEqual(40);
});
