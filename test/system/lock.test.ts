// The host's lock: one holder at a time, a stale lock taken over, never an empty lock seen.
import { execa } from 'execa';
import fs from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { acquireLock, isAlive } from '../../src/system/lock.js';
import { REPO } from '../helpers/knocker.js';
import { waitFor } from '../helpers/server.js';
import { makeTempDir } from '../helpers/temp.js';

let dir: string;
beforeEach(async () => {
  dir = await makeTempDir('knocker-lock-');
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

test('many processes at once: exactly one gets the lock, the others are told who holds it', async () => {
  const file = path.join(dir, 'run', 'knocker.lock');
  const lockModule = path.join(REPO, 'dist', 'system', 'lock.js');
  // The taker that got the lock holds it until every other one has been refused (the release file
  // appears then): they overlap by construction, however slowly the machine starts them.
  const release = path.join(dir, 'release');
  const script = `const fs = await import('node:fs'); const { acquireLock } = await import(${JSON.stringify(lockModule)});
    try { const lock = await acquireLock(${JSON.stringify(file)}, 'knocker install'); console.log('got');
      while (!fs.existsSync(${JSON.stringify(release)})) await new Promise((r) => setTimeout(r, 20)); await lock.release(); }
    catch (e) { console.log('refused: ' + e.message); }`;
  const children = Array.from({ length: 8 }, () => execa(process.execPath, ['--input-type=module', '-e', script]));
  let ended = 0;
  await new Promise<void>((resolve) => children.forEach((c) => void c.finally(() => ++ended === 7 && resolve())));
  await fs.writeFile(release, '');
  const runs = await Promise.all(children);
  const outputs = runs.map((r) => String(r.stdout));
  expect(outputs.filter((o) => o === 'got')).toHaveLength(1);
  for (const o of outputs.filter((x) => x !== 'got')) expect(o).toMatch(/^refused: another knocker install is running \(pid \d+\)/);
  await expect(fs.access(file)).rejects.toThrow();
  expect(await fs.readdir(path.dirname(file))).toEqual([]);
});

test('a lock held by a live process stops the taker; a lock of a dead one is taken over', async () => {
  const file = path.join(dir, 'knocker.lock');
  await fs.writeFile(file, `${process.ppid} knocker exposedb\n`);
  await expect(acquireLock(file, 'knocker install')).rejects.toThrow(`another knocker exposedb is running (pid ${process.ppid})`);
  await fs.writeFile(file, '999999999 knocker install\n');
  const lock = await acquireLock(file, 'knocker install');
  expect(await fs.readFile(file, 'utf8')).toBe(`${process.pid} knocker install\n`);
  await lock.release();
});

test('a zombie (dead, not reaped: an orphan where PID 1 does not reap) is not alive', async () => {
  // The background sleep exits at once; its parent, exec'ed into a long sleep, never reaps it.
  const parent = execa('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { reject: false });
  try {
    const zombie = await new Promise<number>((resolve) => parent.stdout!.once('data', (chunk: Buffer) => resolve(Number(String(chunk).trim()))));
    await waitFor('the child to exit', () => (readFileSync(`/proc/${zombie}/stat`, 'utf8').includes(') Z ') ? true : undefined), 5_000);
    expect(isAlive(zombie)).toBe(false);
    expect(isAlive(parent.pid!)).toBe(true);
    expect(isAlive(process.pid)).toBe(true);
  } finally {
    parent.kill('SIGKILL');
    await parent;
  }
});
