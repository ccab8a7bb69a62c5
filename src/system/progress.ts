// Plain-text progress of a plan being applied: one line as each step starts, ends, fails or is
// rolled back, numbered among the steps that change something. Used by every non-interactive run.
import { pendingSteps, type ApplyEvent, type Plan } from './plan.js';
import { seconds } from './units.js';

/** An `onEvent` for applyPlan that writes each event of `plan` as a line to `out`. */
export function progressPrinter(plan: Plan, out: (line: string) => void): (event: ApplyEvent) => void {
  const pending = pendingSteps(plan);
  const order = new Map(pending.map((s, i) => [s, i + 1]));
  return (event) => {
    const n = `[${order.get(event.step)}/${pending.length}]`;
    switch (event.type) {
      case 'step-start':
        out(`  ${n} ${event.step.title} …`);
        break;
      case 'step-done':
        out(`  ${n} ✔ done in ${seconds(event.ms)}${event.note ? ` (${event.note})` : ''}`);
        break;
      case 'step-failed':
        out(`  ${n} ✗ failed after ${seconds(event.ms)}: ${event.error}`);
        break;
      case 'undo-done':
        out(`  ${n} ↺ rolled back: ${event.step.title}`);
        break;
      case 'undo-failed':
        out(`  ${n} ✗ rollback failed: ${event.step.title}: ${event.error}`);
        break;
      default:
        break;
    }
  };
}
