// Loaded into a process under measure (`node --expose-gc --import bench/memory-probe.mjs …`): on
// SIGUSR2 it collects garbage (a full collection, so what is left is memory the process keeps) and
// appends process.memoryUsage() and the size of each of V8's heap spaces as one JSON line to the file named by KNOCKER_MEMORY_PROBE.
// bench/history-memory.ts reads it at the end of every minute: heap used after a collection is
// what separates memory kept from a heap the collector has not shrunk yet.
import fs from 'node:fs';
import v8 from 'node:v8';

const file = process.env.KNOCKER_MEMORY_PROBE;
if (file) {
  process.on('SIGUSR2', () => {
    globalThis.gc?.();
    const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]));
    fs.appendFileSync(file, `${JSON.stringify({ at: Date.now(), ...process.memoryUsage(), spaces })}\n`);
  });
}
