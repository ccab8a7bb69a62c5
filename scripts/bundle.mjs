// Bundles the knocker CLI into a few files (dist/bundle/): Node then reads and compiles a handful
// of files instead of hundreds of modules, which is most of the start-up time. The heavy parts
// (the TUI, the database driver) stay in chunks loaded only when needed.
import fs from 'node:fs';
import { build } from 'esbuild';

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
  logLevel: 'warning',
});
