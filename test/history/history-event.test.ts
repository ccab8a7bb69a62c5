// Events read back from the database or the spool are outside input: only well-formed ones pass.
// --since takes a duration back from now or a date.
import { expect, test } from 'vitest';
import { parseEvent, parseSince } from '../../src/history/event.js';

const good = {
  id: '0b9b8d3e-51a4-4c55-9d0f-3f0c1b0e2a10',
  startedAt: '2026-12-07T15:00:00.000Z',
  finishedAt: new Date('2026-12-07T15:00:02.000Z'),
  host: 'db-1',
  server: 'web-1',
  command: 'knocker standby switchover',
  action: 'Switch over to 127.0.0.3',
  outcome: 'ok',
  detail: null,
};

test('a well-formed event passes, dates as text or Date', () => {
  expect(parseEvent(good)).toEqual({ ...good, startedAt: new Date(good.startedAt) });
  expect(parseEvent({ ...good, id: good.id.toUpperCase(), server: undefined })).toMatchObject({ id: good.id, server: null });
});

test('what is not an event says why', () => {
  expect(parseEvent(null)).toBe('not an object');
  expect(parseEvent([good])).toBe('not an object');
  expect(parseEvent({ ...good, id: "1'; DROP TABLE history" })).toBe('no valid id');
  expect(parseEvent({ ...good, finishedAt: 'yesterday' })).toMatch(/a time is missing or not a time/);
  expect(parseEvent({ ...good, finishedAt: '2026-12-07T14:00:00Z' })).toMatch(/finished before it started/);
  expect(parseEvent({ ...good, host: '' })).toMatch(/host, command or action missing/);
  expect(parseEvent({ ...good, command: 'x'.repeat(1_001) })).toMatch(/too long/);
  expect(parseEvent({ ...good, server: 42 })).toMatch(/server is not a name/);
  expect(parseEvent({ ...good, outcome: 'maybe' })).toMatch(/unknown outcome/);
  expect(parseEvent({ ...good, detail: { message: 'x' } })).toMatch(/detail is not text/);
});

test('--since: a duration back from now, or a date', () => {
  const now = Date.parse('2026-12-07T18:00:00Z');
  expect(parseSince('90s', now)).toEqual(new Date(now - 90_000));
  expect(parseSince('2h', now)).toEqual(new Date('2026-12-07T16:00:00Z'));
  expect(parseSince('7d', now)).toEqual(new Date('2026-11-30T18:00:00Z'));
  expect(parseSince('2026-12-07', now)).toEqual(new Date('2026-12-07T00:00:00Z'));
  expect(parseSince('2026-12-07T15:30:00Z', now)).toEqual(new Date('2026-12-07T15:30:00Z'));
  for (const bad of ['', 'yesterday', '2h ago', '-5m', '2026-13-45', '1e3s']) expect(parseSince(bad, now), bad).toBeUndefined();
});
