// Bundles the knocker CLI into a few files (dist/bundle/): Node then reads and compiles a handful
// of files instead of hundreds of modules, which is most of the start-up time. The heavy parts
// (the TUI, the database driver) stay in chunks loaded only when needed. The dependencies are
// patched as in the single executable (scripts/startup-patches.mjs), so both run the same code.
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import { build } from 'esbuild';
import { startupPatches } from './startup-patches.mjs';

// An ES module's `import … from 'node:http'` makes Node build the builtin's ES module facade,
// which reads every export, lazy ones included: node:http's loads the fetch client (undici),
// node:crypto's webcrypto, node:process's and node:util's more (~30 ms of the first frame).
// Builtins are taken through require() instead, as in CommonJS (and in the single executable).
const builtins = new Set(builtinModules.flatMap((name) => [name, `node:${name}`]));
const builtinsThroughRequire = {
  name: 'builtins-through-require',
  setup(b) {
    b.onResolve({ filter: /^[a-z_:/]+$/ }, (args) =>
      (builtins.has(args.path) || args.path.startsWith('node:')) && args.kind === 'import-statement' ? { path: args.path, namespace: 'builtin' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({ contents: `module.exports = require(${JSON.stringify(args.path)});`, loader: 'js' }));
  },
};

// Chunk names change with their content: start from an empty folder so old ones do not pile up.
fs.rmSync('dist/bundle', { recursive: true, force: true });

await build({
  // The admin helper is a process of its own (started for every admin session as root): bundled,
  // it starts sooner.
  entryPoints: { entry: 'src/entry.ts', 'admin-helper': 'src/postgres/admin-helper.ts' },
  outdir: 'dist/bundle',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  // React and its reconciler ship a development build next to the production one.
  define: { 'process.env.NODE_ENV': '"production"' },
  // The native pg driver: an optional peer that is never installed.
  external: ['pg-native'],
  // CommonJS dependencies inside an ES module bundle still call require().
  banner: { js: "import { createRequire as __knockerRequire } from 'node:module'; const require = __knockerRequire(import.meta.url);" },
  plugins: [builtinsThroughRequire, ...startupPatches],
  logLevel: 'warning',
});
