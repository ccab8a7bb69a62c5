// `knocker haproxy setup|add|remove|list|drain|maint|ready|status`: a local HAProxy in front of
// the Knocknoc web nodes, health-checked on /_status (seed, "Setting up multiple web nodes", step
// 4). One action per file: setup.ts, add.ts and remove.ts rewrite the configuration as a plan
// (change.ts: checked with `haproxy -c`, replaced atomically with a backup, then a reload that keeps
// DRAIN/MAINT and drops no connection); rotate-node.ts drains, puts in maintenance or readies a node
// through the runtime API; list.ts reads the configuration and status.ts HAProxy's read-only socket.
// Beneath them: config.ts (the file), plan.ts (its steps), runtime.ts (the sockets), service.ts.
export { haproxySetup, type SetupOptions } from './setup.js';
export { haproxyAdd } from './add.js';
export { haproxyRemove, removeNodes } from './remove.js';
export { planHaproxyChange, type Change, type ChangeOptions } from './change.js';
export { haproxyList } from './list.js';
export { haproxyStatus } from './status.js';
export { haproxyRotation, rotateNode, type RotationAction, type RotationOptions, type RotationResult } from './rotate-node.js';
