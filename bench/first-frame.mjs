// Time to the first frame of the interactive installer (the first question on screen), in a real
// pseudo-terminal, against the time `node -e 0` takes to start and exit the same way.
// Usage: node bench/first-frame.mjs [runs]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { summary, timeInTerminal } from './lib.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const runs = Number(process.argv[2] ?? 15);
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'knocker-bench-'));
fs.chmodSync(root, 0o755);

const baseline = [];
const firstFrame = [];
for (let i = 0; i < runs; i += 1) {
  baseline.push(await timeInTerminal([process.execPath, '-e', '0']));
  firstFrame.push(await timeInTerminal([process.execPath, path.join(repo, 'bin', 'knocker'), 'install', '--root', root], 'Enter IP and port to listen on'));
}
fs.rmSync(root, { recursive: true, force: true });
const result = { baseline: summary(baseline), firstFrame: summary(firstFrame) };
result.overBaselineMedian = result.firstFrame.median - result.baseline.median;
console.log(JSON.stringify(result, null, 2));
