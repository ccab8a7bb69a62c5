// Another release of this package, as an upgrade would install it: a copy of the package folder
// (package.json with another version, bin/, dist/, assets/ and migrations/ plus any new ones) in a
// temporary folder, sharing this checkout's node_modules. Its programs find their version and
// migrations in their own folder, so starting its bin/knocknoc-server is running that release.
import fs from 'node:fs/promises';
import path from 'node:path';
import { REPO } from './knocker.js';
import { makeTempDir } from './temp.js';

export interface TestRelease {
  dir: string;
  version: string;
  serverBin: string;
  knockerBin: string;
  destroy(): Promise<void>;
}

export async function makeRelease(options: { version: string; migrations?: Array<{ name: string; sql: string }> }): Promise<TestRelease> {
  const dir = await makeTempDir('knocker-release-');
  const pkg = JSON.parse(await fs.readFile(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
  pkg.version = options.version;
  await fs.writeFile(path.join(dir, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  for (const folder of ['bin', 'dist', 'assets', 'migrations']) {
    await fs.cp(path.join(REPO, folder), path.join(dir, folder), { recursive: true });
  }
  const existing = (await fs.readdir(path.join(dir, 'migrations'))).filter((f) => f.endsWith('.sql')).length;
  for (const [i, migration] of (options.migrations ?? []).entries()) {
    const number = String(existing + i + 1).padStart(3, '0');
    await fs.writeFile(path.join(dir, 'migrations', `${number}_${migration.name}.sql`), migration.sql);
  }
  await fs.symlink(path.join(REPO, 'node_modules'), path.join(dir, 'node_modules'));
  return {
    dir,
    version: options.version,
    serverBin: path.join(dir, 'bin', 'knocknoc-server'),
    knockerBin: path.join(dir, 'bin', 'knocker'),
    destroy: () => fs.rm(dir, { recursive: true, force: true }),
  };
}
