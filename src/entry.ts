// The program's first code: bin/knocker and the packaged single executable start here. The single
// executable is three programs, chosen by the name it was started as or a hidden subcommand:
//   knocker …                          the installer and operations console (src/cli.ts)
//   knocknoc-server … (a link to it),  the web node (src/server/main.ts)
//   or knocker __server …
//   knocker __admin-helper             the administrator session helper (src/postgres/admin-helper.ts)
// The last two are how knocker starts its own processes: a single executable takes no script path
// and no Node flags (src/system/package.ts serverProgram, adminHelperProgram).
import path from 'node:path';
import { main } from './cli.js';

const SERVER = '__server';
const ADMIN_HELPER = '__admin-helper';

export async function start(argv: string[]): Promise<void> {
  const name = path.basename(argv[1] ?? '');
  if (name === 'knocknoc-server' || argv[2] === SERVER) {
    const server = await import('./server/main.js');
    const serverArgv = argv[2] === SERVER ? [argv[0]!, argv[1]!, ...argv.slice(3)] : argv;
    process.exit(await server.main(serverArgv, process.env));
  }
  if (argv[2] === ADMIN_HELPER) {
    // The helper runs on its own once loaded, and exits when its parent closes stdin.
    await import('./postgres/admin-helper.js');
    return;
  }
  process.exitCode = await main(argv);
}
