// `knocker upgrade`: the seed's "Upgrading servers in an HA deployment", automated. Check the
// cluster (every server listed, online, healthy, in HAProxy's rotation); take all but one server out
// of rotation (drain, sessions end, maintenance, confirmed from HAProxy's counters); upgrade the one
// left with the organisation's command while HAProxy holds its requests; wait until it answers on
// the new version in step with the migrated database; then upgrade each other server and bring it
// back only after a passing check. Progress is journalled: a stopped or cut-off run resumes, or is
// rolled back (rotation restored). The screen (src/upgrade-app.tsx) and the plain run share this.
// One action per file: prepare.ts (the check; resume.ts for an open run), plan.ts, apply.ts,
// plain.ts (the run without the screen, and --dry-run), rollback.ts; beneath them cluster.ts (what
// is true now), steps.ts (each step), command.ts (the organisation's command), journal.ts.
export { prepareUpgrade, type UpgradeOptions, type UpgradeSession } from './prepare.js';
export { applyUpgrade, type UpgradeEvent, type UpgradeHooks, type UpgradeOutcome } from './apply.js';
export { runUpgradePlain, type PlainOptions } from './plain.js';
export { rollbackUpgrade } from './rollback.js';
