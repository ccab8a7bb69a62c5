// bench/RESULTS.md: each benchmark owns one "## heading" section and replaces it with its latest
// figures, leaving the other sections as they are.
import fs from 'node:fs/promises';
import path from 'node:path';
import { packageRoot } from '../src/system/package.js';

/** Replaces (or appends) the section that starts with `section`'s first line. */
export async function writeSection(section: string): Promise<void> {
  const file = path.join(packageRoot(), 'bench', 'RESULTS.md');
  const heading = section.split('\n')[0]!;
  const current = await fs.readFile(file, 'utf8').catch(() => '# Benchmarks\n\nMeasured figures; the scripts that make them are beside this file.\n\n');
  const start = current.indexOf(heading);
  let next: string;
  if (start < 0) {
    next = `${current.trimEnd()}\n\n${section}`;
  } else {
    const end = current.indexOf('\n## ', start + 1);
    next = current.slice(0, start) + section + (end < 0 ? '' : `\n${current.slice(end + 1)}`);
  }
  await fs.writeFile(file, next);
  console.log(`\n${section}\nwritten to ${file}`);
}
