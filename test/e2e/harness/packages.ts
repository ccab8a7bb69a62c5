// The packages the scenario installs: this checkout's `npm run package` (.deb of the single
// executable), and "the next release" for `knocker upgrade`: the same package built with a higher
// version and one more migration (scripts/package.mjs --version --migrations --out), so that the
// upgrade migrates the shared database as a real release would.
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { REPO } from '../../helpers/knocker.js';
import type { LabConfig } from './ledger.mjs';

export interface Packages {
  deb: string;
  version: string;
  nextDeb: string;
  nextVersion: string;
}

/** What the next release adds: a table it creates and fills, so the test can see that it migrated. */
export const NEXT_MIGRATION = {
  name: 'e2e_next_release',
  sql: 'CREATE TABLE e2e_next_release (migrated_at timestamptz NOT NULL DEFAULT now());\nINSERT INTO e2e_next_release DEFAULT VALUES;\n',
};

function nextVersion(version: string): string {
  const [major, minor] = version.split('.').map(Number);
  return `${major}.${minor! + 1}.0`;
}

async function run(argv: string[], log: string): Promise<void> {
  const result = await execa(argv[0]!, argv.slice(1), { cwd: REPO, all: true, reject: false });
  fs.appendFileSync(log, `$ ${argv.join(' ')}\n${result.all}\n`);
  if (result.exitCode !== 0) throw new Error(`${argv.join(' ')} failed (exit ${result.exitCode}):\n${String(result.all).split('\n').slice(-15).join('\n')}`);
}

export async function buildPackages(config: LabConfig, say: (line: string) => void): Promise<Packages> {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
  const log = path.join(config.runDir, 'package.log');
  const started = Date.now();
  // The hosts are amd64: the arm64 package has its own test (test/package/package-arm64.test.ts).
  await run(['npm', 'run', 'package', '--', '--arch', 'amd64'], log);
  const deb = path.join(REPO, 'release', `knocker_${pkg.version}_amd64.deb`);

  const next = nextVersion(pkg.version);
  const migrations = path.join(config.runDir, 'next-release', 'migrations');
  fs.mkdirSync(migrations, { recursive: true });
  const existing = fs.readdirSync(path.join(REPO, 'migrations')).filter((f) => f.endsWith('.sql'));
  for (const file of existing) fs.copyFileSync(path.join(REPO, 'migrations', file), path.join(migrations, file));
  fs.writeFileSync(path.join(migrations, `${String(existing.length + 1).padStart(3, '0')}_${NEXT_MIGRATION.name}.sql`), NEXT_MIGRATION.sql);
  const out = path.join(config.runDir, 'next-release');
  // The build is the one `npm run package` just made; only the release differs.
  await run(['node', 'scripts/package.mjs', '--version', next, '--migrations', migrations, '--out', out, '--arch', 'amd64'], log);
  const nextDeb = path.join(out, `knocker_${next}_amd64.deb`);
  for (const file of [deb, nextDeb]) if (!fs.existsSync(file)) throw new Error(`the package build made no ${file} (log ${log})`);
  say(`packages: ${path.relative(REPO, deb)} and ${path.basename(nextDeb)} (the next release) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return { deb, version: pkg.version, nextDeb, nextVersion: next };
}
