// Issue 16's figures: a planned switchover of the shared-primary database to its standby, under a
// steady write load. One pair of sandbox roots (primary and standby on their own loopback
// addresses, set up with knocker install, exposedb --init/--add-standby and standby init), then
// `knocker standby switchover` run on whichever is the primary, back and forth, as whole processes.
// A writer on a third address inserts rows one after another through whichever host takes writes
// (new connection after an error, hosts tried in order, read-only ones skipped: what
// target_session_attrs=read-write does), recording when each insert was acknowledged.
//
// Per switchover: writes unavailable (the longest gap between two acknowledged inserts around the
// switchover), acknowledged inserts missing on the new primary afterwards (lost), failed inserts,
// the command's wall time, and the stop time knocker itself reports. Medians over the runs go to
// the "Standby switchover" section of bench/RESULTS.md.
//
//   npm run bench:standby [-- --runs 6]
import fs from 'node:fs/promises';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { clusterOwner, findPgBinaries, stopCluster } from '../src/postgres/cluster.js';
import { PATHS, Root } from '../src/system/root.js';
import { freePort } from '../src/system/host.js';
import { knocker } from '../test/helpers/knocker.js';
import { createProbeTable, probeIds, startWriter } from '../test/helpers/standby.js';
import { makeTempDir } from '../test/helpers/temp.js';
import { writeSection } from './results.js';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '6' } } });
const RUNS = Number(args.runs);
// Addresses of their own, so the bench never meets the tests' clusters.
const A = '127.0.0.240';
const B = '127.0.0.241';
const WRITER = '127.0.0.242';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function must(args: string[]): Promise<string> {
  const result = await knocker(args, { timeoutMs: 300_000 });
  if (result.exitCode !== 0) throw new Error(`knocker ${args.join(' ')} exited ${result.exitCode}:\n${result.stderr}`);
  return result.stdout.trim();
}

async function waitUntil(what: string, probe: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(20);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface Run {
  from: string;
  to: string;
  unavailableMs: number;
  lost: number;
  acked: number;
  failed: number;
  commandMs: number;
  reportedS: number;
}

async function main(): Promise<void> {
  const rootA = new Root(await makeTempDir('knocker-bench-standby-a-'));
  const rootB = new Root(await makeTempDir('knocker-bench-standby-b-'));
  const runs: Run[] = [];
  try {
    await must(['install', '--root', rootA.dir, '--listen', `${A}:${await freePort(A)}`]);
    const nodesUrl = await must(['exposedb', '--root', rootA.dir, '--init']);
    await must(['exposedb', '--root', rootA.dir, '--add', `${WRITER}/32`]);
    const port = Number(new URL(nodesUrl).port);
    const ca = await fs.readFile(rootA.path(PATHS.clusterCaCert), 'utf8');
    await createProbeTable(rootA);
    const bundle = await must(['exposedb', '--root', rootA.dir, '--add-standby', B]);
    await must(['standby', '--root', rootB.dir, 'init', '--bundle', bundle]);
    const hosts = [
      { host: A, port },
      { host: B, port },
    ];
    let primary = rootA;
    let standby = rootB;
    for (let i = 0; i < RUNS; i += 1) {
      const writer = startWriter(nodesUrl, hosts, WRITER, ca, (i + 1) * 1_000_000);
      await waitUntil('writes before', () => writer.acked.length > 100);
      const before = writer.ackedAt.length;
      const started = Date.now();
      const result = await knocker(['standby', '--root', primary.dir, 'switchover'], { timeoutMs: 300_000 });
      const commandMs = Date.now() - started;
      if (result.exitCode !== 0) throw new Error(`switchover exited ${result.exitCode}:\n${result.stderr}`);
      const reportedS = Number(/Writes were stopped for ([\d.]+) s/.exec(result.stderr)?.[1] ?? NaN);
      const after = writer.ackedAt.length;
      await waitUntil('writes after', () => writer.ackedAt.length > after + 100);
      await writer.stop();
      // The longest gap between acknowledged inserts from just before the command to after it.
      let gap = 0;
      for (let k = Math.max(1, before - 1); k < writer.ackedAt.length; k += 1) gap = Math.max(gap, writer.ackedAt[k]! - writer.ackedAt[k - 1]!);
      const ids = await probeIds(standby);
      const lost = writer.acked.filter((id) => !ids.has(id)).length;
      runs.push({
        from: primary === rootA ? A : B,
        to: primary === rootA ? B : A,
        unavailableMs: gap,
        lost,
        acked: writer.acked.length,
        failed: writer.failures,
        commandMs,
        reportedS,
      });
      console.log(
        `run ${i + 1}: ${runs.at(-1)!.from} -> ${runs.at(-1)!.to}: writes unavailable ${gap} ms, lost ${lost} of ${writer.acked.length}, failed ${writer.failures}, command ${commandMs} ms (reported stop ${reportedS} s)`,
      );
      [primary, standby] = [standby, primary];
    }
  } finally {
    const bin = await findPgBinaries();
    for (const root of [rootA, rootB]) {
      await knocker(['service', '--root', root.dir, 'stop', 'server']).catch(() => {});
      if (bin) await stopCluster({ bin, dataDir: root.path(PATHS.pgData), osUser: await clusterOwner() }, undefined, 'immediate').catch(() => {});
      await fs.rm(root.dir, { recursive: true, force: true });
    }
  }
  const lines = [
    '## Standby switchover',
    '',
    `\`npm run bench:standby\` (bench/standby-switchover.ts), ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores, PostgreSQL ${(await findPgBinaries())?.version}:`,
    `${RUNS} switchovers back and forth between two sandbox roots (${A}, ${B}), each \`knocker standby switchover\` as a whole`,
    'process, under a steady insert load (one insert after another, through whichever host takes writes).',
    '',
    '| run | from → to | writes unavailable | acknowledged lost | acknowledged | failed inserts | command | stop reported |',
    '|---|---|---|---|---|---|---|---|',
    ...runs.map(
      (r, i) =>
        `| ${i + 1} | ${r.from} → ${r.to} | ${(r.unavailableMs / 1000).toFixed(2)} s | ${r.lost} | ${r.acked} | ${r.failed} | ${(r.commandMs / 1000).toFixed(2)} s | ${r.reportedS.toFixed(1)} s |`,
    ),
    '',
    `Median: writes unavailable **${(median(runs.map((r) => r.unavailableMs)) / 1000).toFixed(2)} s** (aim ≤ 5 s), acknowledged writes lost **${runs.reduce((n, r) => n + r.lost, 0)}** in all runs (aim 0), whole command ${(median(runs.map((r) => r.commandMs)) / 1000).toFixed(2)} s.`,
    'Writes unavailable = the longest gap between two acknowledged inserts around the switchover (it includes the',
    "writer's reconnect: a failed insert, then trying the hosts in order until one takes writes).",
    '',
  ];
  await writeSection(lines.join('\n'));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
