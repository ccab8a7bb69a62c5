// esbuild plugins that patch dependencies at bundle time, shared by the development bundle
// (scripts/bundle.mjs) and the single executable (scripts/package.mjs). Each patch must apply, or
// the build fails: a dependency that changed is noticed, never silently left unpatched.
// The start-up figures behind them are in bench/RESULTS.md and ../shared/research/packaging.md.
import fs from 'node:fs';
import path from 'node:path';

function replaceOnce(file, contents, from, to) {
  const at = contents.indexOf(from);
  if (at < 0 || contents.indexOf(from, at + from.length) >= 0) {
    throw new Error(`${file}: cannot patch, "${from.slice(0, 80)}" is not found exactly once (has the package changed?)`);
  }
  return contents.slice(0, at) + to + contents.slice(at + from.length);
}

function patchPlugin(name, filter, patch) {
  return {
    name,
    setup(b) {
      b.onLoad({ filter }, async (args) => {
        const contents = patch(args.path, await fs.promises.readFile(args.path, 'utf8'));
        return { contents, loader: 'js', resolveDir: path.dirname(args.path) };
      });
    },
  };
}

// Ink keeps every text it ever measured or wrapped in two module-level caches that are never
// emptied (vadimdemedes/ink#986): a dashboard whose ages and latencies change every second grows
// by about 1.2 MB a minute until it runs out of memory. Each cache is emptied when it holds
// BOUND entries; recomputing a width is cheap.
const BOUND = 4096;
const INK_CACHE_PATCHES = {
  'measure-text.js': [['cache.set(text, dimensions);', `if (cache.size >= ${BOUND}) cache.clear();\n    cache.set(text, dimensions);`]],
  'wrap-text.js': [
    ['const cache = {};', 'let cache = {};\nlet cached = 0;'],
    ['cache[cacheKey] = wrappedText;', `if (++cached > ${BOUND}) {\n        cache = {};\n        cached = 1;\n    }\n    cache[cacheKey] = wrappedText;`],
  ],
};
export const boundInkCaches = patchPlugin('bound-ink-caches', /[\\/]ink[\\/]build[\\/](measure-text|wrap-text)\.js$/, (file, contents) =>
  INK_CACHE_PATCHES[path.basename(file)].reduce((text, [from, to]) => replaceOnce(file, text, from, to), contents),
);

// Ink's reconciler has two top-level awaits, both only for React Devtools under DEV=true (an
// optional peer we never install). A top-level await cannot be in a CommonJS bundle (the single
// executable's on Node 24); without them DEV=true gets Ink's own "react-devtools-core is not
// installed" warning.
export const inkWithoutDevtools = patchPlugin('ink-without-devtools', /[\\/]ink[\\/]build[\\/]reconciler\.js$/, (file, contents) => {
  let text = replaceOnce(
    file,
    contents,
    "await import('./devtools.js');",
    "throw Object.assign(new Error('react-devtools-core is not bundled'), { code: 'ERR_MODULE_NOT_FOUND' });",
  );
  text = replaceOnce(file, text, '? await loadPackageJson()', '? { name: undefined, version: undefined }');
  return text;
});

// yoga-layout (Ink's layout engine) starts its WebAssembly with a top-level await, through
// emscripten's loader, which fetch()es the module's 96 KB data: URL: that loads Node's HTTP client
// (undici), 20-30 ms of the first frame. The module is compiled and instantiated synchronously
// from the same bytes instead (emscripten's instantiateWasm hook), so the top-level await goes too.
const YOGA_DATA_URL = 'H="data:application/octet-stream;base64,';
export const yogaSync = [
  patchPlugin('yoga-wasm-bytes', /[\\/]yoga-layout[\\/]dist[\\/]binaries[\\/]yoga-wasm-base64-esm\.js$/, (file, contents) => {
    const start = contents.indexOf(YOGA_DATA_URL);
    const end = contents.indexOf('"', start + YOGA_DATA_URL.length);
    if (start < 0 || end < 0) throw new Error(`${file}: cannot patch, the wasm data: URL is not found (has yoga-layout changed?)`);
    const base64 = contents.slice(start + YOGA_DATA_URL.length, end);
    return `${contents.slice(0, start + YOGA_DATA_URL.length)}${contents.slice(end)}\nexport const wasmBase64 = ${JSON.stringify(base64)};\n`;
  }),
  patchPlugin('yoga-sync', /[\\/]yoga-layout[\\/]dist[\\/]src[\\/]index\.js$/, (file, contents) => {
    let text = replaceOnce(
      file,
      contents,
      "import loadYoga from '../binaries/yoga-wasm-base64-esm.js';",
      "import loadYoga, { wasmBase64 } from '../binaries/yoga-wasm-base64-esm.js';",
    );
    text = replaceOnce(
      file,
      text,
      'const Yoga = wrapAssembly(await loadYoga());',
      `const yogaWasm = new WebAssembly.Module(Buffer.from(wasmBase64, 'base64'));
const yogaModule = {
  instantiateWasm(imports, ready) {
    ready(new WebAssembly.Instance(yogaWasm, imports));
    return {};
  },
};
loadYoga(yogaModule);
if (!yogaModule.calledRun) throw new Error('yoga-layout did not start synchronously');
const Yoga = wrapAssembly(yogaModule);`,
    );
    return text;
  }),
];

// string-width (two copies: Ink's 8.x and wrap-ansi's 7.x) builds an Intl.Segmenter and compiles
// Unicode property regexes (\p{RGI_Emoji}, with the v flag) when it loads, and sends any non-ASCII
// text (the screens' "❯", "·", "→") through them: ~60 ms of the first frame. Here they are built on
// first use, and text made only of characters that are each their own grapheme cluster, visible and
// never emoji-wide for that copy takes a fast path: the sum of their East Asian widths.
// test/string-width-fast-path.test.ts checks every such character, and random text, against the
// unpatched packages.
export const SIMPLE_TEXT = {
  // Every code point of these ranges is one cluster whose width string-width 8 takes from its East
  // Asian width (emoji-presentation ones there are East Asian wide too).
  8: String.raw`\u0020-\u007E\u00A1-\u00AC\u00AE-\u02FF\u2010-\u2027\u2030-\u205E\u2190-\u21FF\u2500-\u25FF\u2700-\u27BF`,
  // string-width 7 counts any emoji-regex match (text-presentation pictographs too) as 2 wide:
  // the same ranges less \p{Extended_Pictographic}.
  7: String.raw`\u0020-\u007E\u00A1-\u00A8\u00AA-\u00AC\u00AF-\u02FF\u2010-\u2027\u2030-\u203B\u203D-\u2048\u204A-\u205E\u2190-\u2193\u219A-\u21A8\u21AB-\u21FF\u2500-\u25A9\u25AC-\u25B5\u25B7-\u25BF\u25C1-\u25FA\u25FF\u2700-\u2701\u2703-\u2704\u2706-\u2707\u270E\u2710-\u2711\u2713\u2715\u2717-\u271C\u271E-\u2720\u2722-\u2727\u2729-\u2732\u2735-\u2743\u2745-\u2746\u2748-\u274B\u274D\u274F-\u2752\u2756\u2758-\u2762\u2765-\u2794\u2798-\u27A0\u27A2-\u27AF\u27B1-\u27BE`,
};

function fastPath(major) {
  return `
	if (/^[${SIMPLE_TEXT[major]}]*$/.test(string)) {
		const simpleWidthOptions = {ambiguousAsWide: !ambiguousIsNarrow};
		let simpleWidth = 0;
		for (let index = 0; index < string.length; index++) {
			simpleWidth += eastAsianWidth(string.charCodeAt(index), simpleWidthOptions);
		}

		return simpleWidth;
	}
`;
}

/** Top-level `const nameRegex = /…/flags;` become RegExps made on first use (a literal is validated when the file is parsed). */
function lazyRegexes(file, contents) {
  const declarations = [...contents.matchAll(/^const (\w+Regex) = \/(.+)\/([a-z]*);$/gm)];
  if (declarations.length === 0) throw new Error(`${file}: cannot patch, no regex declarations found (has string-width changed?)`);
  let text = contents;
  for (const [line, name, pattern, flags] of declarations) {
    text = replaceOnce(
      file,
      text,
      line,
      `let ${name}Made;\nconst ${name}Lazy = () => (${name}Made ??= new RegExp(${JSON.stringify(pattern)}, ${JSON.stringify(flags)}));`,
    );
    const declaredAt = text.indexOf(`const ${name}Lazy`);
    const head = text.slice(0, declaredAt);
    const rest = text.slice(declaredAt).replace(new RegExp(`(?<![\\w.])${name}(?!\\w|Made|Lazy)`, 'g'), `${name}Lazy()`);
    text = head + rest;
  }
  return text;
}

export const stringWidthFastPath = patchPlugin('string-width-fast-path', /[\\/]string-width[\\/]index\.js$/, (file, contents) => {
  const pkg = JSON.parse(fs.readFileSync(path.join(path.dirname(file), 'package.json'), 'utf8'));
  const major = pkg.version.split('.')[0];
  if (!SIMPLE_TEXT[major]) throw new Error(`${file}: string-width ${pkg.version} has no fast path here (check its width rules, then add them)`);
  let text = replaceOnce(file, contents, 'const segmenter = new Intl.Segmenter();', 'let segmenter;');
  text = replaceOnce(file, text, 'segmenter.segment(string)', '(segmenter ??= new Intl.Segmenter()).segment(string)');
  text = lazyRegexes(file, text);
  if (major === '8') {
    const asciiPath = '\tif (/^[\\u0020-\\u007E]*$/.test(string)) {\n\t\treturn string.length;\n\t}\n';
    text = replaceOnce(file, text, asciiPath, asciiPath + fastPath(major));
  } else {
    const emptyAfterStrip = '\tif (string.length === 0) {\n\t\treturn 0;\n\t}\n\n\tlet width = 0;';
    text = replaceOnce(file, text, emptyAfterStrip, `\tif (string.length === 0) {\n\t\treturn 0;\n\t}\n${fastPath(major)}\n\tlet width = 0;`);
  }
  return text;
});

// Building the first Intl.Segmenter of a process loads ICU's break rules (~20 ms), and two more
// packages build one when they load: slice-ansi (used by Ink only to clip overflowing text) and
// @alcalzone/ansi-tokenize, which Ink runs on every line it writes. Here they are built on first
// use, and ansi-tokenize splits text whose characters are each their own grapheme cluster (ASCII,
// the terminal's control characters other than CR, and the ranges of SIMPLE_TEXT) by UTF-16 unit,
// as the segmenter would. test/string-width-fast-path.test.ts checks that against Intl.Segmenter.
export const SINGLE_GRAPHEMES = String.raw`\u0000-\u000C\u000E-\u02FF\u2010-\u2027\u2030-\u205E\u2190-\u21FF\u2500-\u25FF\u2700-\u27BF`;

export const lazySegmenters = [
  patchPlugin('slice-ansi-lazy-segmenter', /[\\/]slice-ansi[\\/]tokenize-ansi\.js$/, (file, contents) => {
    let text = replaceOnce(file, contents, "const GRAPHEME_SEGMENTER = new Intl.Segmenter(undefined, {granularity: 'grapheme'});", 'let graphemeSegmenter;');
    const uses = text.split('GRAPHEME_SEGMENTER.segment(').length - 1;
    if (uses === 0) throw new Error(`${file}: cannot patch, GRAPHEME_SEGMENTER is not used (has slice-ansi changed?)`);
    text = text.replaceAll('GRAPHEME_SEGMENTER.segment(', "(graphemeSegmenter ??= new Intl.Segmenter(undefined, {granularity: 'grapheme'})).segment(");
    return text;
  }),
  patchPlugin('ansi-tokenize-fast-path', /[\\/]@alcalzone[\\/]ansi-tokenize[\\/]build[\\/]tokenize\.js$/, (file, contents) => {
    let text = replaceOnce(
      file,
      contents,
      'const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });',
      `let segmenter;
function graphemesOf(str) {
    if (!/^[${SINGLE_GRAPHEMES}]*$/.test(str))
        return (segmenter ??= new Intl.Segmenter(undefined, { granularity: "grapheme" })).segment(str);
    const graphemes = [];
    for (let index = 0; index < str.length; index++)
        graphemes.push({ segment: str[index], index });
    return graphemes;
}`,
    );
    text = replaceOnce(file, text, 'segmenter.segment(str)', 'graphemesOf(str)');
    return text;
  }),
];

// signal-exit 3 (Ink's and restore-cursor's copies) loads node:assert (5-10 ms, with its diff
// machinery) for one check that its callback is a function.
export const signalExitWithoutAssert = patchPlugin('signal-exit-without-assert', /[\\/]signal-exit[\\/]index\.js$/, (file, contents) => {
  const pkg = JSON.parse(fs.readFileSync(path.join(path.dirname(file), 'package.json'), 'utf8'));
  if (!pkg.version.startsWith('3.')) return contents;
  return replaceOnce(
    file,
    contents,
    "var assert = require('assert')",
    'var assert = { equal: function (actual, expected, message) { if (actual != expected) throw new TypeError(message) } }',
  );
});

// commander loads node:child_process (and with it dgram and the socket list) when it is loaded,
// for its executable sub-commands, which knocker has none of: it is loaded when first spawned.
export const commanderLazyChildProcess = patchPlugin('commander-lazy-child-process', /[\\/]commander[\\/]lib[\\/]command\.js$/, (file, contents) =>
  replaceOnce(
    file,
    contents,
    "const childProcess = require('node:child_process');",
    "let loadedChildProcess;\nconst childProcess = { spawn: (...args) => (loadedChildProcess ??= require('node:child_process')).spawn(...args) };",
  ),
);

// terminal-size (Ink's) imports node:child_process for its fallbacks (tput, stty, resize), which
// run only when the terminal does not say its size: taken when first needed.
export const terminalSizeLazyChildProcess = patchPlugin('terminal-size-lazy-child-process', /[\\/]terminal-size[\\/]index\.js$/, (file, contents) =>
  replaceOnce(
    file,
    contents,
    "import {execFileSync} from 'node:child_process';",
    "const execFileSync = (...args) => process.getBuiltinModule('node:child_process').execFileSync(...args);",
  ),
);

/** Every patch, in the order esbuild is given them. */
export const startupPatches = [
  boundInkCaches,
  inkWithoutDevtools,
  ...yogaSync,
  stringWidthFastPath,
  ...lazySegmenters,
  signalExitWithoutAssert,
  commanderLazyChildProcess,
  terminalSizeLazyChildProcess,
];
