// The start-up patches of scripts/startup-patches.mjs change how text is measured and split on
// every frame: the patched string-width copies and ansi-tokenize must answer exactly as the
// packages themselves do (checked for every character of their fast paths and for random text
// mixing in what takes the slow path), and yoga must still lay out. The bundles are built with
// the real plugins, as scripts/bundle.mjs and scripts/package.mjs build them.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';
import { beforeAll, describe, expect, test } from 'vitest';
import { SIMPLE_TEXT, SINGLE_GRAPHEMES, startupPatches } from '../../scripts/startup-patches.mjs';
import { REPO } from '../helpers/knocker.js';

type Width = (text: string, options?: { ambiguousIsNarrow?: boolean; countAnsiEscapeCodes?: boolean }) => number;
type Tokens = (text: string) => unknown[];
interface Modules {
  width8: Width;
  width7: Width;
  tokenize: Tokens;
  yoga: { Node: { create(): { setWidth(w: number): void; calculateLayout(): void; getComputedWidth(): number; free(): void } } };
}

const SOURCES = `
export { default as width8 } from 'string-width';
export { default as width7 } from './node_modules/wrap-ansi/node_modules/string-width/index.js';
export { tokenize } from '@alcalzone/ansi-tokenize';
export { default as yoga } from 'yoga-layout';
`;

async function bundle(patched: boolean): Promise<Modules> {
  const result = await build({
    stdin: { contents: SOURCES, resolveDir: REPO, loader: 'js' },
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'node',
    plugins: patched ? startupPatches : [],
    logLevel: 'silent',
  });
  const code = result.outputFiles[0]!.text;
  return (await import(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`)) as Modules;
}

/** Every character of a regex character class body such as `\u0020-\u007E\u00A1`. */
function charactersOf(classBody: string): string[] {
  const units = [...classBody.matchAll(/\\u([0-9A-F]{4})(?:-\\u([0-9A-F]{4}))?/g)];
  return units.flatMap(([, from, to]) => {
    const start = parseInt(from!, 16);
    const end = parseInt(to ?? from!, 16);
    return Array.from({ length: end - start + 1 }, (_, i) => String.fromCharCode(start + i));
  });
}

// What must take the slow path: combining marks, joiners, variation selectors, emoji and their
// modifiers, flags, Hangul jamo, wide CJK, CR LF, ANSI colours, a soft hyphen.
const AWKWARD = [
  '\u0301',
  '\u200D',
  '\uFE0F',
  '\u20E3',
  '👍',
  '🏽',
  '🇩🇪',
  '👩‍💻',
  '\u1100',
  '\u1161',
  '\u11A8',
  '한',
  '漢',
  'ｱ',
  'ﾞ',
  '\r\n',
  '\r',
  '\u001B[31m',
  '\u001B[39m',
  '\u00AD',
  '\u0000',
  '\t',
  '❤',
  '✔\uFE0F',
  '1\uFE0F\u20E3',
];

function randomText(random: () => number, pool: string[]): string {
  const length = 1 + Math.floor(random() * 8);
  return Array.from({ length }, () => pool[Math.floor(random() * pool.length)]!).join('');
}

/** A seeded generator, so a failure names text that can be tried again. */
function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

let original: Modules;
let patched: Modules;
beforeAll(async () => {
  [original, patched] = await Promise.all([bundle(false), bundle(true)]);
});

describe.each([
  ['string-width 8 (Ink)', 'width8', SIMPLE_TEXT[8]],
  ['string-width 7 (wrap-ansi)', 'width7', SIMPLE_TEXT[7]],
] as const)('%s', (_name, key, classBody) => {
  const simple = charactersOf(classBody);

  test('every character of the fast path measures as the package measures it', () => {
    const wrong = simple.flatMap((c) =>
      [true, false].flatMap((narrow) => {
        const want = original[key](c, { ambiguousIsNarrow: narrow });
        const got = patched[key](c, { ambiguousIsNarrow: narrow });
        return want === got ? [] : [`U+${c.charCodeAt(0).toString(16)} (ambiguous narrow ${narrow}): ${got}, not ${want}`];
      }),
    );
    expect(wrong).toEqual([]);
    expect(simple.length).toBeGreaterThan(1000);
  });

  test('random text, simple and awkward mixed, measures as the package measures it', () => {
    const random = seeded(7);
    const pools = [simple, [...simple.slice(0, 200), ...AWKWARD], AWKWARD];
    const wrong: string[] = [];
    for (let i = 0; i < 6000; i += 1) {
      const text = randomText(random, pools[i % pools.length]!);
      const options = { ambiguousIsNarrow: i % 2 === 0, countAnsiEscapeCodes: i % 7 === 0 };
      if (patched[key](text, options) !== original[key](text, options)) wrong.push(JSON.stringify(text));
    }
    expect(wrong.slice(0, 10)).toEqual([]);
  });
});

test('ansi-tokenize splits text into the same tokens as the package', () => {
  const singles = charactersOf(SINGLE_GRAPHEMES);
  const random = seeded(11);
  const pools = [singles, [...singles.slice(0, 300), ...AWKWARD], ['\u001B[1m', '\u001B[22m', '\u001B]8;;http://x\u0007', 'a', '❯', ' ', ...AWKWARD]];
  const wrong: string[] = [];
  for (const c of singles) if (JSON.stringify(patched.tokenize(c)) !== JSON.stringify(original.tokenize(c))) wrong.push(JSON.stringify(c));
  for (let i = 0; i < 6000; i += 1) {
    const text = randomText(random, pools[i % pools.length]!);
    if (JSON.stringify(patched.tokenize(text)) !== JSON.stringify(original.tokenize(text))) wrong.push(JSON.stringify(text));
  }
  expect(wrong.slice(0, 10)).toEqual([]);
});

test('every character of the single-grapheme fast path is its own grapheme for Intl.Segmenter', () => {
  const singles = charactersOf(SINGLE_GRAPHEMES);
  const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });
  const random = seeded(3);
  const joined: string[] = [];
  for (let i = 0; i < 20_000; i += 1) {
    const text = randomText(random, singles);
    if ([...segmenter.segment(text)].length !== text.length) joined.push(JSON.stringify(text));
  }
  expect(joined.slice(0, 10)).toEqual([]);
});

test('yoga, started synchronously, lays out', () => {
  const node = patched.yoga.Node.create();
  node.setWidth(42);
  node.calculateLayout();
  expect(node.getComputedWidth()).toBe(42);
  node.free();
});

test('a CommonJS bundle (the single executable on Node 24) builds only with the patches: no top-level await is left', async () => {
  const cjs = (plugins: typeof startupPatches) =>
    build({
      stdin: { contents: SOURCES, resolveDir: REPO, loader: 'js' },
      bundle: true,
      write: false,
      format: 'cjs',
      platform: 'node',
      plugins,
      logLevel: 'silent',
    });
  await expect(cjs([])).rejects.toThrow(/Top-level await is currently not supported with the "cjs" output format/);
  const result = await cjs(startupPatches);
  expect(result.outputFiles[0]!.text).toContain('yoga-layout did not start synchronously');
});

test('commander, patched, loads node:child_process only when an executable sub-command is spawned, and still spawns it', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'knocker-commander-'));
  try {
    const result = await build({
      stdin: {
        contents: `
          import { Command } from 'commander';
          const before = process.moduleLoadList.includes('NativeModule child_process');
          const program = new Command('x');
          program.command('sub', 'an executable sub-command', { executableFile: process.argv[2] });
          process.stdout.write('child_process loaded before: ' + before + '\\n');
          program.parse(['node', 'x', 'sub', 'word']);
        `,
        resolveDir: REPO,
        loader: 'js',
      },
      bundle: true,
      write: false,
      format: 'cjs',
      platform: 'node',
      plugins: startupPatches,
      logLevel: 'silent',
    });
    const script = path.join(dir, 'main.cjs');
    const sub = path.join(dir, 'sub.cjs');
    await fs.writeFile(script, result.outputFiles[0]!.text);
    await fs.writeFile(sub, `process.stdout.write('sub ran with ' + process.argv[2] + '\\n'); process.exit(7);`);
    const run = spawnSync(process.execPath, [script, sub], { encoding: 'utf8', timeout: 30_000 });
    expect(run.stdout).toBe('child_process loaded before: false\nsub ran with word\n');
    expect(run.status).toBe(7);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
