// Summarises a V8 CPU profile (`--cpu-prof`; for the packaged binary NODE_OPTIONS=--cpu-prof,
// which a single executable honours): the functions with the most self time, and the most total
// time, until `--until-ms` (default: the whole profile) on the profile's own clock.
// Usage: node bench/prof.mjs FILE.cpuprofile [top] [--until-ms N]
import fs from 'node:fs';

const [file, topArg] = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && all[i - 1] !== '--until-ms');
const untilAt = process.argv.indexOf('--until-ms');
const untilMs = untilAt > 0 ? Number(process.argv[untilAt + 1]) : Infinity;
const top = Number(topArg ?? 25);
const profile = JSON.parse(fs.readFileSync(file, 'utf8'));

const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const name = (n) => {
  const f = n.callFrame;
  const where = f.url ? `${f.url.split('/').pop()}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'} ${where}`.trim();
};

const self = new Map();
const total = new Map();
let elapsed = 0;
let busy = 0;
for (let i = 0; i < profile.samples.length; i += 1) {
  const dt = (profile.timeDeltas[i] ?? 0) / 1000;
  elapsed += dt;
  if (elapsed > untilMs) break;
  const leaf = nodes.get(profile.samples[i]);
  const leafName = name(leaf);
  if (leafName === '(idle)') continue;
  busy += dt;
  self.set(leafName, (self.get(leafName) ?? 0) + dt);
  const seen = new Set();
  for (let id = leaf.id; id !== undefined; id = parent.get(id)) {
    const n = name(nodes.get(id));
    if (seen.has(n)) continue;
    seen.add(n);
    total.set(n, (total.get(n) ?? 0) + dt);
  }
}

const show = (title, map) => {
  console.log(`\n${title}`);
  for (const [n, ms] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms.toFixed(1).padStart(8)} ms  ${n}`);
};
console.log(`${file}: ${Math.min(elapsed, untilMs).toFixed(0)} ms profiled, ${busy.toFixed(0)} ms not idle`);
show('self time', self);
show('total time', total);
