// The upgrade's plan, built from its journal: the servers other than the first taken out of rotation
// and confirmed out, the first upgraded alone while HAProxy holds its requests, then each other
// server upgraded and brought back after a passing check. Servers already done are left out, so a
// resumed run goes on where the last one stopped.
import type { Plan, Step } from '../system/plan.js';
import { WANTED_RETRIES } from './cluster.js';
import { hintFor } from './open-run.js';
import type { UpgradeSession } from './prepare.js';
import { checksOnStep, confirmStep, holdStep, needsTakingOut, readyStep, takeOutStep, upgradeCommandStep, waitVersionStep, type StepContext } from './steps.js';

export async function buildPlan(session: Omit<UpgradeSession, 'preview'>, ctx: StepContext): Promise<Plan> {
  const { journal } = session;
  const target = journal.target ?? journal.toVersion;
  const steps: Step[] = [];
  const first = journal.servers.find((s) => s.name === journal.first)!;
  const pending = journal.servers.filter((s) => s.phase !== 'done');
  if (first.phase !== 'done') {
    const others = pending.filter((s) => s !== first).map((s) => s.name);
    if (others.length > 0) {
      steps.push(takeOutStep(ctx, others), confirmStep(ctx, others));
    }
    steps.push(holdStep(ctx, first.name), upgradeCommandStep(ctx, first.name), waitVersionStep(ctx, first.name, target), checksOnStep(ctx, first.name));
  }
  for (const server of pending) {
    if (server === first) continue;
    if (first.phase === 'done' && (await needsTakingOut(ctx, server.name).catch(() => true))) steps.push(takeOutStep(ctx, [server.name]));
    steps.push(
      upgradeCommandStep(ctx, server.name),
      waitVersionStep(ctx, server.name, target ?? `the version ${first.name} came back on`),
      readyStep(ctx, server.name),
    );
  }
  const done = journal.servers.filter((s) => s.phase === 'done').map((s) => s.name);
  const warnings: string[] = [];
  if (session.resumed && done.length > 0) warnings.push(`already done: ${done.join(', ')}`);
  const retries = session.facts.retries ?? 3;
  if (first.phase !== 'done' && retries < WANTED_RETRIES) {
    warnings.push(
      `HAProxy's configuration has retries ${retries}: requests arriving while ${first.name} restarts fail if it takes longer than about ${retries} s ` +
        `(rewrite it with retries ${WANTED_RETRIES}: knocker haproxy setup${hintFor(session.root)})`,
    );
  }
  if (journal.servers.length === 1)
    warnings.push(`${first.name} is the only server: while it restarts, requests wait for it (up to about ${retries} s) instead of being served at once`);
  return {
    title: `knocker upgrade${session.resumed ? ' --resume' : ''}: ${pending.length} server${pending.length === 1 ? '' : 's'}${target ? ` to ${target}` : ''}, ${first.phase === 'done' ? `${first.name} already upgraded` : `${first.name} first`}`,
    steps,
    warnings,
  };
}
