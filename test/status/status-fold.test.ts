// Folding the events pane: the same change of several servers is one line, a recovery is ✔ (ok)
// whatever it left, different changes and distant times stay apart; history reads as events.
import { expect, test } from 'vitest';
import { foldEvents, historyAsEvents } from '../../src/status/fold.js';
import type { Health, StatusEvent } from '../../src/status/model.js';

const T = 1_700_000_000_000;

function change(at: number, subject: string, from: string, to: string, level: Health, fromLevel: Health, detail?: string): StatusEvent {
  return { at, level, text: `${subject}: ${from} → ${to}${detail ? `: ${detail}` : ''}`, transition: { subject, from, to, detail, fromLevel } };
}

test('a failover of three nodes is one line per transition, and their recovery one ✔ line', () => {
  const events = [
    change(T, 'web-1', 'ok', 'no-db', 'fail', 'ok', 'database unreachable'),
    change(T + 1_000, 'web-2', 'ok', 'no-db', 'fail', 'ok', 'database unreachable'),
    { at: T + 1_500, level: 'warn' as const, text: 'database: now on 127.0.0.3:5432 (was 127.0.0.2:5432), a primary' },
    change(T + 2_000, 'web-3', 'ok', 'no-db', 'fail', 'ok', 'database unreachable'),
    change(T + 9_000, 'web-2', 'no-db', 'ok', 'ok', 'fail'),
    change(T + 9_000, 'web-1', 'no-db', 'ok', 'ok', 'fail'),
    change(T + 11_000, 'web-3', 'no-db', 'ok', 'ok', 'fail'),
  ];
  expect(foldEvents(events)).toEqual([
    { at: T + 1_500, level: 'warn', text: 'database: now on 127.0.0.3:5432 (was 127.0.0.2:5432), a primary', count: 1 },
    { at: T + 2_000, level: 'fail', text: 'web-1, web-2, web-3: ok → no-db: database unreachable', count: 3 },
    { at: T + 11_000, level: 'ok', text: 'web-2, web-1, web-3: no-db → ok', count: 3 },
  ]);
});

test('a recovery is ok (✔) even from a state the event itself would not call healthy; details that differ are left out', () => {
  const folded = foldEvents([
    change(T, 'web-1', 'down', 'ok', 'ok', 'fail'),
    change(T, 'web-2', 'ok', 'down', 'fail', 'ok', 'connection refused at 127.0.0.2:8756'),
    change(T + 1, 'web-3', 'ok', 'down', 'fail', 'ok', 'connection refused at 127.0.0.3:8756'),
  ]);
  expect(folded.map((f) => [f.level, f.text])).toEqual([
    ['ok', 'web-1: down → ok'],
    ['fail', 'web-2, web-3: ok → down'],
  ]);
});

test('the same server twice, or the same change far apart, stays on separate lines; many names are cut', () => {
  const flapping = foldEvents([change(T, 'web-1', 'ok', 'down', 'fail', 'ok'), change(T + 5_000, 'web-1', 'ok', 'down', 'fail', 'ok')]);
  expect(flapping.map((f) => f.count)).toEqual([1, 1]);
  const apart = foldEvents([change(T, 'web-1', 'ok', 'down', 'fail', 'ok'), change(T + 120_000, 'web-2', 'ok', 'down', 'fail', 'ok')], 60_000);
  expect(apart.map((f) => f.text)).toEqual(['web-1: ok → down', 'web-2: ok → down']);
  const many = foldEvents(Array.from({ length: 9 }, (_, i) => change(T + i, `web-${i + 1}`, 'ok', 'drain', 'warn', 'ok')));
  expect(many).toEqual([{ at: T + 8, level: 'warn', text: 'web-1, web-2, web-3, web-4, web-5, web-6 and 3 more: ok → drain', count: 9 }]);
  expect(foldEvents([])).toEqual([]);
});

test('history events read as where, what and how it ended', () => {
  const base = { startedAt: new Date(T), host: 'db-2', command: 'knocker standby switchover', detail: null };
  const events = historyAsEvents([
    { ...base, id: 'a', finishedAt: new Date(T + 5_000), server: 'web-2', action: 'Switch over to 127.0.0.3', outcome: 'ok' },
    { ...base, id: 'b', finishedAt: new Date(T + 9_000), server: null, action: 'knocker standby switchover', outcome: 'rolled-back' },
  ]);
  expect(events).toEqual([
    { at: T + 5_000, level: 'ok', text: 'web-2 (db-2): knocker standby switchover: Switch over to 127.0.0.3 — done' },
    { at: T + 9_000, level: 'warn', text: 'db-2: knocker standby switchover — failed, rolled back' },
  ]);
});
