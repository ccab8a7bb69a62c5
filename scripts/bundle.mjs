// Bundles the knocker CLI into a few files (dist/bundle/): Node then reads and compiles a handful
// of files instead of hundreds of modules, which is most of the start-up time. The heavy parts
// (the TUI, the database driver) stay in chunks loaded only when needed.
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

// Ink keeps every text it ever measured or wrapped in two module-level caches that are never
// emptied (vadimdemedes/ink#986): a dashboard whose ages and latencies change every second grows
// by about 1.2 MB a minute until it runs out of memory. Each cache is emptied when it holds
// BOUND entries; recomputing a width is cheap. The patch must apply, or the build fails.
const BOUND = 4096;
const INK_CACHE_PATCHES = {
  'measure-text.js': [['cache.set(text, dimensions);', `if (cache.size >= ${BOUND}) cache.clear();\n    cache.set(text, dimensions);`]],
  'wrap-text.js': [
    ['const cache = {};', 'let cache = {};\nlet cached = 0;'],
    ['cache[cacheKey] = wrappedText;', `if (++cached > ${BOUND}) {\n        cache = {};\n        cached = 1;\n    }\n    cache[cacheKey] = wrappedText;`],
  ],
};
const boundInkCaches = {
  name: 'bound-ink-caches',
  setup(b) {
    b.onLoad({ filter: /[\\/]ink[\\/]build[\\/](measure-text|wrap-text)\.js$/ }, async (args) => {
      let contents = await fs.promises.readFile(args.path, 'utf8');
      for (const [from, to] of INK_CACHE_PATCHES[path.basename(args.path)]) {
        if (!contents.includes(from)) throw new Error(`${args.path}: cannot bound Ink's cache, "${from}" not found (has Ink changed?)`);
        contents = contents.replace(from, to);
      }
      return { contents, loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

// Chunk names change with their content: start from an empty folder so old ones do not pile up.
fs.rmSync('dist/bundle', { recursive: true, force: true });

await build({
  // The admin helper is a process of its own (started for every admin session as root): bundled,
  // it starts sooner.
  entryPoints: { cli: 'src/cli.ts', 'admin-helper': 'src/postgres/admin-helper.ts' },
  outdir: 'dist/bundle',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // React and its reconciler ship a development build next to the production one.
  define: { 'process.env.NODE_ENV': '"production"' },
  // Optional peers that are never installed: Ink's devtools and the native pg driver.
  external: ['react-devtools-core', 'pg-native'],
  // CommonJS dependencies inside an ES module bundle still call require().
  banner: { js: "import { createRequire as __knockerRequire } from 'node:module'; const require = __knockerRequire(import.meta.url);" },
  plugins: [boundInkCaches],
  logLevel: 'warning',
});
