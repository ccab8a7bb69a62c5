// This package's own install folder: its version, its migrations and its built helpers are all
// found relative to it, so a copy of the package in another folder is another release.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let cachedRoot: string | undefined;

/** The folder holding this package's package.json (works from src/ under tests and from dist/). */
export function packageRoot(): string {
  if (cachedRoot) return cachedRoot;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return (cachedRoot = dir);
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find the knocker package folder');
    dir = parent;
  }
}

export function packageVersion(root = packageRoot()): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}

/** A file built into dist/ (helpers run as separate processes). */
export function builtFile(relative: string, root = packageRoot()): string {
  return path.join(root, 'dist', relative);
}
