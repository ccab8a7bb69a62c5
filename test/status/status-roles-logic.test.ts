// Which host is the primary and what a server on another host is told, as a pure function of one
// refresh: the promote race (status's pooled session still on the old primary, the nodes already
// on the new one) gives no "stop or fence" advice, and never names the new primary as the one to
// stop; two hosts accepting writes is a failure naming both.
import { expect, test } from 'vitest';
import { judge, type DatabaseData, type Probe } from '../../src/status/model.js';
import { databaseHostProblem, rolesVerdict, type HostAnswer } from '../../src/status/roles.js';

const P = '10.0.0.11:5432';
const S = '10.0.0.12:5432';
const answer = (host: string, role: HostAnswer['role']): HostAnswer => ({
  host,
  role,
  inRecovery: role === 'unreachable' ? null : role === 'standby',
  acceptsWrites: role === 'unreachable' ? null : role === 'primary',
  error: role === 'unreachable' ? 'connection refused' : null,
});
const database = (host: string, role: 'primary' | 'standby'): DatabaseData =>
  ({ host, role, hosts: [P, S], serverAddress: null, standbys: [], slots: [] }) as unknown as DatabaseData;

test('the promote race: status still on the old primary, the nodes on the new one: no advice, and never "stop the new primary"', () => {
  // S was just promoted and P fenced (read-only for new sessions); status's pooled session on P
  // began before the fence and still finds a primary there.
  const verdict = rolesVerdict({
    survey: { answers: [answer(P, 'read-only'), answer(S, 'primary')], round: 3 },
    database: { data: database(P, 'primary'), round: 3 },
    usedBy: [{ server: 'web-1', host: S }],
  });
  expect(verdict.primary).toBeUndefined();
  expect(verdict.twoPrimaries).toBe(false);
  expect(verdict.unsettled).toContain(P);
  // The node already on the new primary: nothing wrong with it.
  expect(databaseHostProblem(S, verdict, database(P, 'primary'))).toBeUndefined();
  // One still on the old primary: said, as attention, with no advice.
  const left = databaseHostProblem(P, verdict, database(P, 'primary'));
  expect(left).toMatchObject({ word: 'unsettled', health: 'warn' });
  expect(left!.text).not.toMatch(/stop|fence/);

  // The same with P now a standby (a switchover): the pooled session there finds a standby.
  const switched = rolesVerdict({
    survey: { answers: [answer(P, 'standby'), answer(S, 'primary')], round: 4 },
    database: { data: database(P, 'standby'), round: 4 },
    usedBy: [],
  });
  expect(switched.primary).toBeUndefined();
  expect(databaseHostProblem(S, switched, database(P, 'standby'))).toBeUndefined();
});

test('views from different refreshes are not compared: no advice until both are from one', () => {
  const verdict = rolesVerdict({
    survey: { answers: [answer(P, 'standby'), answer(S, 'primary')], round: 5 },
    database: { data: database(S, 'primary'), round: 4 },
    usedBy: [],
  });
  expect(verdict.primary).toBeUndefined();
  expect(verdict.unsettled).toBe('the hosts and the database answered in different refreshes');
  expect(databaseHostProblem(P, verdict, database(S, 'primary'))).toMatchObject({ word: 'unsettled', health: 'warn' });
});

test('both views agree on the new primary: a server left on the old one is old-primary, told it moves, not to fence anything', () => {
  const verdict = rolesVerdict({
    survey: { answers: [answer(P, 'standby'), answer(S, 'primary')], round: 6 },
    database: { data: database(S, 'primary'), round: 6 },
    usedBy: [],
  });
  expect(verdict.primary?.names).toEqual([S]);
  expect(verdict.health).toBe('ok');
  expect(databaseHostProblem(S, verdict, database(S, 'primary'))).toBeUndefined();
  expect(databaseHostProblem(P, verdict, database(S, 'primary'))).toEqual({
    word: 'old-primary',
    health: 'fail',
    text: `uses the database on ${P}, now a standby, not the primary ${S}: its writes fail there; it moves to ${S} when it reconnects`,
  });
  const gone = rolesVerdict({
    survey: { answers: [answer(P, 'unreachable'), answer(S, 'primary')], round: 7 },
    database: { data: database(S, 'primary'), round: 7 },
    usedBy: [],
  });
  expect(gone.health).toBe('warn');
  expect(databaseHostProblem(P, gone, database(S, 'primary'))!.text).toContain('knocker standby status');
});

test('two hosts accepting writes: a failure naming both, what to do, and which nodes are on each', () => {
  const verdict = rolesVerdict({
    survey: { answers: [answer(P, 'primary'), answer(S, 'primary')], round: 1 },
    database: { data: database(P, 'primary'), round: 1 },
    usedBy: [
      { server: 'web-1', host: P },
      { server: 'web-2', host: S },
    ],
  });
  expect(verdict).toMatchObject({ twoPrimaries: true, writable: [P, S], health: 'fail' });
  expect(verdict.problems[0]).toContain(`TWO PRIMARIES: ${P} and ${S}`);
  expect(verdict.problems[1]).toBe(`web nodes on each: ${P}: web-1; ${S}: web-2`);
  expect(verdict.problems[2]).toContain('knocker standby rejoin');
  expect(databaseHostProblem(S, verdict, database(P, 'primary'))).toMatchObject({ word: 'two-primaries', health: 'fail' });
  // Even when status's own views disagree: the hosts were each asked at the same moment.
  expect(rolesVerdict({ survey: { answers: [answer(P, 'primary'), answer(S, 'primary')], round: 2 }, database: undefined, usedBy: [] }).twoPrimaries).toBe(
    true,
  );
});

test('no host accepting writes is a failure; a one-host DatabaseURL keeps the session view', () => {
  expect(rolesVerdict({ survey: { answers: [answer(P, 'standby'), answer(S, 'read-only')], round: 1 }, database: undefined, usedBy: [] })).toMatchObject({
    health: 'fail',
    problems: [`no host of DatabaseURL accepts writes: ${P} standby, ${S} read-only`],
  });
  const single = rolesVerdict({ survey: undefined, database: { data: database(P, 'primary'), round: 1 }, usedBy: [] });
  expect(single).toMatchObject({ health: 'ok', hosts: undefined, twoPrimaries: false });
  expect(single.primary?.names).toEqual([P]);
});

test('"retire it" only for a server that does not answer, and only while the registry is read from the agreed primary', () => {
  const registry = {
    name: 'web-1',
    listen: '10.0.0.21:8756',
    version: '1.0.0',
    schemaVersion: 1,
    state: 'running' as const,
    online: false,
    lastSeen: new Date(0),
    startedAt: new Date(0),
  };
  const answering: Probe = { address: '10.0.0.21:8756', at: 0, http: 503, latencyMs: 1, body: undefined, error: undefined };
  const silent: Probe = { address: '10.0.0.21:8756', at: 0, http: undefined, latencyMs: undefined, body: undefined, error: 'connection refused' };
  const retire = (name: string) => `knocker server forget ${name}`;
  const settled = rolesVerdict({
    survey: { answers: [answer(P, 'standby'), answer(S, 'primary')], round: 2 },
    database: { data: database(S, 'primary'), round: 2 },
    usedBy: [],
  });
  const race = rolesVerdict({
    survey: { answers: [answer(P, 'read-only'), answer(S, 'primary')], round: 2 },
    database: { data: database(P, 'primary'), round: 2 },
    usedBy: [],
  });
  const problems = (probe: Probe, roles: typeof settled) =>
    judge({ name: 'web-1', address: probe.address, registry, probe, haproxy: undefined, backup: false }, false, retire, roles).problems;
  expect(problems(silent, settled)).toContain('gone for good? retire it: knocker server forget web-1');
  // It answers: it runs (after a promote its heartbeats may go to the new primary).
  expect(problems(answering, settled).join('; ')).not.toContain('retire');
  // The registry read through status's session on the old primary: its heartbeats are not there.
  expect(problems(silent, race).join('; ')).not.toContain('retire');
});
