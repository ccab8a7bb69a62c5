// Issue 24: knocker's standby commands on a data host of an automatic pair, against a real
// pg_auto_failover formation (test/helpers/pgaf.ts: a monitor made by knocker ha monitor, two data
// nodes made by pg_autoctl create postgres, each supervised by its own pg_autoctl run, node.json
// written on each). `standby status` shows the formation from pg_autoctl's JSON (validated);
// `standby switchover` is pg_auto_failover's (perform switchover), tested under a writer recording
// every acknowledged write and a sampler checking never two writable hosts; knocker's own moves
// (promote, rejoin, remove, init, exposedb --add-standby, pre-start's fence, service start/stop of
// PostgreSQL) refuse with exit 3 and change nothing; with the monitor gone, status says so (exit 1)
// and shows what the local keeper knows, and a switchover is refused.
import fs from 'node:fs/promises';
import path from 'node:path';
import { render } from 'ink-testing-library';
import React from 'react';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Dashboard } from '../../src/status-app.js';
import { openMonitor, staleAfterMs } from '../../src/status/index.js';
import { PATHS } from '../../src/system/root.js';
import { press, waitForFrame } from '../helpers/ink.js';
import { parseEvents, parseState, replicationMode, type FormationReport } from '../../src/ha/formation.js';
import { settledPair } from '../../src/ha/switchover.js';
import { monitorFiles, stopMonitor } from '../../src/ha/monitor.js';
import { HA_NODE_STATE } from '../../src/ha/node-state.js';
import { run, standby } from '../helpers/failclosed.js';
import { expectNoAckedLostOn, formationSampler, formationWriter, makeFormation, type DataNode, type Formation } from '../helpers/pgaf.js';
import { snapshotTree } from '../helpers/roots.js';
import { waitFor } from '../helpers/server.js';

let f: Formation;

beforeAll(async () => {
  f = await makeFormation({ primary: '127.0.24.60', monitor: '127.0.24.61', nodes: ['127.0.24.62', '127.0.24.63'], client: '127.0.24.69' });
}, 600_000);

afterAll(async () => f?.destroy(), 120_000);

const statusOf = async (node: DataNode) => {
  const r = await standby(node.root, 'status', '--json');
  return { exitCode: r.exitCode, report: JSON.parse(r.stdout) as FormationReport, stderr: r.stderr };
};

test("pg_autoctl's JSON is validated before use: a field that does not fit is an error, never guessed", () => {
  const good = {
    health: 1,
    nodename: 'node1',
    nodehost: '127.0.0.1',
    nodeport: 5432,
    reported_lsn: '0/3000060',
    reported_tli: 1,
    current_group_state: 'primary',
    assigned_group_state: 'primary',
  };
  expect(parseState(JSON.stringify([good]))[0]).toMatchObject({ name: 'node1', health: 'healthy', inTransition: false });
  expect(() => parseState(JSON.stringify([{ ...good, nodename: 'a\nproblem: fake' }]))).toThrow(/nodename/);
  expect(() => parseState(JSON.stringify([{ ...good, health: '1' }]))).toThrow(/health/);
  expect(() => parseState(JSON.stringify([{ ...good, reported_lsn: 'x' }]))).toThrow(/reported_lsn/);
  expect(() => parseState(JSON.stringify([{ ...good, nodeport: 70000 }]))).toThrow(/nodeport/);
  expect(() => parseState('{}')).toThrow(/list/);
  expect(() =>
    parseEvents(JSON.stringify([{ eventid: 1, eventtime: 'never', nodename: 'n', reportedstate: 'single', goalstate: 'single', description: '' }])),
  ).toThrow(/eventtime/);
  // The replication mode and whether a switchover may start, from the states alone.
  const node = (name: string, reported: string, goal = reported, health = 1) =>
    parseState(JSON.stringify([{ ...good, nodename: name, current_group_state: reported, assigned_group_state: goal, health }]))[0]!;
  expect(replicationMode([node('a', 'primary'), node('b', 'secondary')])).toEqual({ primary: 'a', mode: 'sync' });
  expect(replicationMode([node('a', 'wait_primary'), node('b', 'catchingup')])).toEqual({ primary: 'a', mode: 'wait_primary' });
  expect(replicationMode([node('a', 'draining', 'demoted'), node('b', 'prepare_promotion', 'stop_replication')])).toEqual({ primary: null, mode: 'none' });
  expect(settledPair([node('a', 'primary'), node('b', 'secondary', 'secondary', 0)])).toBe('no healthy secondary');
  expect(settledPair([node('a', 'primary'), node('b', 'catchingup', 'secondary')])).toBe('b is moving (catchingup -> secondary)');
  expect(settledPair([node('a', 'wait_primary'), node('b', 'catchingup')])).toMatch(/a is wait_primary/);
  expect(settledPair([node('a', 'primary'), node('b', 'secondary')])).toMatchObject({ primary: { name: 'a' }, secondary: { name: 'b' } });
});

test('standby status on both data nodes: the formation (reported and goal state, health, LSN), sync replication, the monitor reachable, the last events; exit 0', async () => {
  const primary = await f.settled();
  for (const node of f.nodes) {
    const { exitCode, report, stderr } = await statusOf(node);
    expect(exitCode, stderr).toBe(0);
    expect(report.mode).toBe('automatic');
    expect(report.self).toEqual({ name: node.name, address: node.address });
    expect(report.monitor).toEqual({ uri: f.monitor.uri, reachable: true });
    expect(report.primary).toBe(primary.name);
    expect(report.replication).toBe('sync');
    expect(report.nodes.map((n) => [n.name, n.address, n.port, n.reportedState, n.goalState, n.health]).sort()).toEqual(
      f.nodes.map((n) => [n.name, n.address, f.port, n === primary ? 'primary' : 'secondary', n === primary ? 'primary' : 'secondary', 'healthy']).sort(),
    );
    for (const n of report.nodes) expect(n.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(report.events.length).toBeGreaterThan(0);
    expect(report.events.at(-1)!.description).toMatch(/node/);
    expect(report.local).toEqual({
      reportedState: node === primary ? 'primary' : 'secondary',
      goalState: node === primary ? 'primary' : 'secondary',
      keeperRunning: true,
      postgresRunning: true,
    });
    expect(report.problems).toEqual([]);
  }
  const text = await standby(f.nodes[1].root, 'status');
  expect(text.exitCode).toBe(0);
  expect(text.stdout).toContain(`Monitor    ${f.monitor.uri}  reachable`);
  expect(text.stdout).toMatch(/Replication sync/);
  expect(text.stdout).toMatch(/\nOK\n?$/);
}, 120_000);

test('standby switchover --dry-run prints the plan (pg_autoctl perform switchover) and changes nothing', async () => {
  const primary = await f.settled();
  const dry = await standby(primary.root, 'switchover', '--dry-run', '--json');
  expect(dry.exitCode, dry.stderr).toBe(0);
  const plan = JSON.parse(dry.stdout);
  expect(plan.plan.steps[0].details.join(' ')).toContain('pg_autoctl perform switchover');
  expect(plan.details.mode).toBe('automatic');
  expect(plan.details.from.name).toBe(primary.name);
  expect((await f.settled()).name).toBe(primary.name);
}, 120_000);

test('standby switchover under load: the other node becomes the primary, 0 acknowledged writes lost, never two writable hosts', async () => {
  const before = await f.settled();
  const other = f.nodes.find((n) => n !== before)!;
  const writer = formationWriter(f, 1);
  const sampler = formationSampler(f);
  await waitFor('writes before the switchover', () => (writer.acked.length > 30 ? true : undefined), 60_000);
  const startedAt = Date.now();
  const over = await standby(before.root, 'switchover');
  const tookMs = Date.now() - startedAt;
  expect(over.exitCode, over.stderr).toBe(0);
  expect(over.stdout.trim()).toBe(`primary ${other.address}:${f.port}`);
  expect((await f.settled()).name).toBe(other.name);
  const count = writer.acked.length;
  await waitFor('writes through the new primary', () => (writer.acked.length > count + 30 ? true : undefined), 60_000);
  await writer.stop();
  await sampler.stop();
  // The longest stretch without an acknowledged write around the switchover.
  let gap = 0;
  for (let i = 1; i < writer.ackedAt.length; i += 1)
    if (writer.ackedAt[i]! >= startedAt - 1000) gap = Math.max(gap, writer.ackedAt[i]! - writer.ackedAt[i - 1]!);
  await expectNoAckedLostOn(f, other, writer);
  expect(sampler.rounds).toBeGreaterThan(0);
  expect(sampler.twoWritable).toEqual([]);
  console.info(
    `automatic switchover: command ${tookMs} ms, writes unavailable ${gap} ms, ${writer.acked.length} writes acknowledged (none lost), ${writer.failures} refused or cut, ${sampler.rounds} sampler rounds (never two writable)`,
  );
  const { report } = await statusOf(other);
  expect(report.primary).toBe(other.name);
  // The last events are the switchover's.
  expect(Date.parse(report.events.at(-1)!.at)).toBeGreaterThanOrEqual(startedAt - 1000);
}, 300_000);

/** What a refusal must not change: the node's files outside PostgreSQL's own running data, and its configuration files. */
async function untouched(node: DataNode): Promise<Map<string, unknown>> {
  const tree = await snapshotTree(node.root.dir, {
    live: (rel) => rel.startsWith('var/log') || rel.includes('/xdg/') || (rel.includes('pgaf/data/') && !/pgaf\/data\/[^/]+\.(conf|signal)$/.test(rel)),
  });
  return tree;
}

test('knocker promote, rejoin, remove, init, exposedb --add-standby, pre-start, service start/stop of PostgreSQL, uninstall and upgrade refuse on an automatic pair: exit 3, what to do instead, nothing changed', async () => {
  const primary = await f.settled();
  const secondary = f.nodes.find((n) => n !== primary)!;
  const bundle = path.join(secondary.dir, 'no-such-bundle.json');
  const cases: Array<{ on: DataNode; args: string[]; instead: RegExp }> = [
    { on: secondary, args: ['standby', 'promote', '--force'], instead: /promotes the standby by itself/ },
    { on: secondary, args: ['standby', 'promote', '--dry-run', '--json'], instead: /promotes the standby by itself/ },
    { on: primary, args: ['standby', 'rejoin'], instead: /comes back as the standby by itself/ },
    { on: primary, args: ['standby', 'remove'], instead: /leave the automatic pair first/ },
    { on: secondary, args: ['standby', 'init', '--bundle', bundle], instead: /leave the automatic pair first/ },
    { on: primary, args: ['exposedb', '--add-standby', '127.0.24.68'], instead: /leave the automatic pair first/ },
    { on: secondary, args: ['standby', 'pre-start'], instead: /started by its keeper/ },
    { on: primary, args: ['service', 'stop', 'postgres'], instead: /the keeper daemon of this root.*fails over: knocker standby switchover first/ },
    { on: secondary, args: ['service', 'start', 'postgres'], instead: /the keeper daemon of this root/ },
    { on: primary, args: ['service', 'restart', 'all'], instead: /the keeper daemon of this root.*the others one by one: knocker service restart server/ },
    { on: secondary, args: ['uninstall', '--yes'], instead: /the way back to knocker's manual pair comes first.*pg_autoctl drop node/ },
    { on: primary, args: ['uninstall', '--dry-run', '--json'], instead: /the way back to knocker's manual pair comes first/ },
    { on: primary, args: ['upgrade', '--non-interactive', '--upgrade-command', 'true'], instead: /does not yet follow an automatic pair's order/ },
    { on: secondary, args: ['upgrade', '--dry-run', '--json'], instead: /does not yet follow an automatic pair's order/ },
  ];
  const before = await Promise.all(f.nodes.map(untouched));
  for (const c of cases) {
    const [group, ...rest] = c.args;
    const result = await run([group!, '--root', c.on.root.dir, ...rest]);
    const all = `${result.stdout}\n${result.stderr}`;
    expect(result.exitCode, `${c.args.join(' ')}: ${all}`).toBe(3);
    expect(all, c.args.join(' ')).toContain(`refused: this host's PostgreSQL is run by pg_auto_failover (node ${c.on.name}, ${c.on.root.path(HA_NODE_STATE)})`);
    expect(all, c.args.join(' ')).toMatch(c.instead);
    if (c.args.includes('--json')) {
      const out = JSON.parse(result.stdout);
      expect(out.error.exitCode).toBe(3);
    } else if (c.args[1] === 'pre-start') expect(result.stdout).toBe('');
  }
  const after = await Promise.all(f.nodes.map(untouched));
  expect(after).toEqual(before);
  expect((await f.settled()).name).toBe(primary.name);
  for (const node of f.nodes) expect((await statusOf(node)).exitCode).toBe(0);
}, 300_000);

test('knocker status --json and --once, and the dashboard, show the formation on a data host (nodes, monitor, replication mode, last events)', async () => {
  const primary = await f.settled();
  const node = f.nodes.find((n) => n !== primary)!;
  // This data host also runs a web node: its knocknoc.conf (root A's, pointed at the formation's nodes).
  const conf = (await fs.readFile(f.primaryRoot.path(PATHS.conf), 'utf8')).replace(
    /^DatabaseURL\s*=.*$/m,
    `DatabaseURL = ${f.writerUrl.replace(`@${f.nodes[0].address}:${f.port}/`, `@${f.nodes.map((n) => `${n.address}:${f.port}`).join(',')}/`)}&target_session_attrs=read-write&sslrootcert=${path.join(node.dir, 'tls', 'ca.crt')}`,
  );
  await fs.mkdir(path.dirname(node.root.path(PATHS.conf)), { recursive: true });
  await fs.writeFile(node.root.path(PATHS.conf), conf, { mode: 0o640 });
  const json = await run(['status', '--root', node.root.dir, '--json']);
  const snapshot = JSON.parse(json.stdout);
  const formation = snapshot.formation as FormationReport;
  expect(formation, json.stderr).toBeTruthy();
  expect(formation.mode).toBe('automatic');
  expect(formation.self.name).toBe(node.name);
  expect(formation.monitor.reachable).toBe(true);
  expect(formation.replication).toBe('sync');
  expect(formation.primary).toBe(primary.name);
  expect(formation.nodes.map((n) => `${n.name}:${n.reportedState}/${n.goalState}:${n.health}`).sort()).toEqual(
    f.nodes.map((n) => `${n.name}:${n === primary ? 'primary/primary' : 'secondary/secondary'}:healthy`).sort(),
  );
  expect(formation.events.length).toBeGreaterThan(0);
  expect(snapshot.sources.formation.error).toBeNull();
  const once = await run(['status', '--root', node.root.dir, '--once']);
  expect(once.stdout).toContain('automatic pair (pg_auto_failover): monitor reachable, replication sync');
  expect(once.stdout).toMatch(new RegExp(`node ${primary.name} ${primary.address.replace(/\./g, '\\.')}:${f.port}: primary, healthy`));

  const monitor = await openMonitor(node.root, { intervalMs: 1000 });
  monitor.start();
  const ui = render(React.createElement(Dashboard, { services: { monitor, staleAfterMs: () => staleAfterMs(monitor) }, onExit: () => {} }));
  try {
    // No server is registered in the formation's database: the database's detail (D) shows it.
    await waitForFrame(ui, /database/, 60_000);
    await press(ui, 'D');
    const shown = await waitForFrame(ui, /automatic pair \(pg_auto_failover\): monitor reachable/, 60_000);
    expect(shown).toContain('Automatic pair (pg_auto_failover)');
    expect(shown).toContain(`node ${node.name}`);
  } finally {
    ui.unmount();
    await monitor.stop();
  }
}, 180_000);

test('the monitor gone: standby status says so and shows what this keeper knows (exit 1); a switchover is refused (exit 3); the pair keeps serving', async () => {
  const primary = await f.settled();
  await stopMonitor(monitorFiles(f.monitor.root));
  const started = Date.now();
  const { exitCode, report } = await statusOf(primary);
  const tookMs = Date.now() - started;
  expect(exitCode).toBe(1);
  expect(report.monitor.reachable).toBe(false);
  expect(report.monitor.error).toBeTruthy();
  expect(report.nodes).toEqual([]);
  expect(report.replication).toBe('unknown');
  expect(report.local).toMatchObject({ reportedState: 'primary', goalState: 'primary', keeperRunning: true, postgresRunning: true });
  expect(report.problems.join('\n')).toMatch(/the monitor does not answer/);
  console.info(`standby status with the monitor gone answered in ${tookMs} ms`);
  const text = await standby(primary.root, 'status');
  expect(text.exitCode).toBe(1);
  expect(text.stdout).toContain('NOT REACHABLE');
  const over = await standby(primary.root, 'switchover');
  expect(over.exitCode).toBe(3);
  expect(over.stderr).toContain('the monitor does not answer');
  const writer = formationWriter(f, 1_000_000);
  await waitFor('writes with the monitor gone', () => (writer.acked.length > 20 ? true : undefined), 60_000);
  await writer.stop();
  await expectNoAckedLostOn(f, primary, writer);
  await fs.access(primary.pgdata);
}, 300_000);
