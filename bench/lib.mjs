// Shared bits of the benchmarks: whole-process timings, medians, a pseudo-terminal via script(1).
import { spawn } from 'node:child_process';

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function summary(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return { runs: values.length, median: median(values), min: sorted[0], max: sorted[sorted.length - 1] };
}

/**
 * Runs argv in a pseudo-terminal (script -q) and resolves with the milliseconds until its output
 * contains `marker` (or until it exits, when marker is undefined). The process is then killed.
 */
export function timeInTerminal(argv, marker, env = process.env) {
  const command = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('script', ['-qfec', command, '/dev/null'], {
      env: { ...env, TERM: 'xterm-256color', COLUMNS: '100', LINES: '40' },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let output = '';
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      resolve(Number(process.hrtime.bigint() - started) / 1e6);
      child.kill('SIGKILL');
    };
    child.stdout.on('data', (chunk) => {
      output += chunk.toString();
      if (marker && output.includes(marker)) finish();
    });
    child.on('exit', () => (marker && !done ? reject(new Error(`exited before "${marker}":\n${output}`)) : finish()));
    setTimeout(() => !done && reject(new Error('timeout')), 30_000);
  });
}

export async function timeProcess(argv, env = process.env) {
  const started = process.hrtime.bigint();
  const code = await new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    child.on('exit', (c) => {
      if (c !== 0) process.stderr.write(err);
      resolve(c === 0 ? 0 : c);
    });
  });
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, code };
}
