// This package's own release: its version, its migrations, its assets and the programs it starts.
// From a checkout (or a copy of the package folder, as tests make for release N+1) they are found
// relative to the folder holding package.json, so another folder is another release. The packaged
// single executable (scripts/package.mjs) carries them built in (./embedded-release.ts is replaced
// at build time), and its folder is the one holding the executable: a newer executable installed
// in place is a new release.
import fs from 'node:fs';
import path from 'node:path';
import { isSea } from 'node:sea';
import { fileURLToPath } from 'node:url';
import { EMBEDDED_RELEASE } from './embedded-release.js';

let cachedRoot: string | undefined;

/** The release's folder: the checkout's (found by package.json) or the executable's. */
export function packageRoot(): string {
  if (cachedRoot) return cachedRoot;
  if (EMBEDDED_RELEASE) {
    cachedRoot = path.dirname(process.execPath);
    return cachedRoot;
  }
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) {
      cachedRoot = dir;
      return cachedRoot;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find the knocker package folder');
    dir = parent;
  }
}

/** The release built into the executable, when `root` is its own folder. */
function builtIn(root: string) {
  return EMBEDDED_RELEASE && root === packageRoot() ? EMBEDDED_RELEASE : undefined;
}

export function packageVersion(root = packageRoot()): string {
  const embedded = builtIn(root);
  if (embedded) return embedded.version;
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}

/** A file the release ships (`assets/banner.txt`, `migrations/001_initial.sql`). */
export function readPackageFile(relative: string, root = packageRoot()): string {
  const embedded = builtIn(root);
  if (!embedded) return fs.readFileSync(path.join(root, relative), 'utf8');
  const text = embedded.files[relative];
  if (text === undefined) throw Object.assign(new Error(`ENOENT: ${relative} is not built into ${process.execPath}`), { code: 'ENOENT' });
  return text;
}

/** The names of the files in one of the release's folders (`migrations`). */
export function listPackageFolder(folder: string, root = packageRoot()): string[] {
  const embedded = builtIn(root);
  if (!embedded) return fs.readdirSync(path.join(root, folder));
  const prefix = `${folder}/`;
  return Object.keys(embedded.files)
    .filter((name) => name.startsWith(prefix))
    .map((name) => name.slice(prefix.length));
}

/** A file built into dist/ (helpers run as separate processes). */
export function builtFile(relative: string, root = packageRoot()): string {
  return path.join(root, 'dist', relative);
}

/**
 * The command that starts knocknoc-server of the release in `root`. From a checkout, Node runs its
 * bin/knocknoc-server. The single executable is the server too: through its `knocknoc-server` link
 * beside it (the .deb's), so the process is named after the server, or as `knocker __server`.
 */
export function serverProgram(root: string): string[] {
  if (!isSea()) return [process.execPath, path.join(root, 'bin', 'knocknoc-server')];
  const link = path.join(root, 'knocknoc-server');
  return fs.existsSync(link) ? [link] : [process.execPath, '__server'];
}

/** The command that runs this knocker again (a unit's ExecStartPre): the single executable, or Node and the checkout's bin/knocker. */
export function knockerProgram(root = packageRoot()): string[] {
  return isSea() ? [process.execPath] : [process.execPath, path.join(root, 'bin', 'knocker')];
}

/** The command that starts the administrator helper (src/postgres/admin-helper.ts). */
export function adminHelperProgram(): string[] {
  // A single executable takes no script and no Node flags: its hidden subcommand runs the helper.
  return isSea() ? [process.execPath, '__admin-helper'] : [process.execPath, builtFile('bundle/admin-helper.js')];
}
