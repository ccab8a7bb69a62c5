import type { InstallSession } from './installer/index.js';

export async function runInteractiveInstall(_session: InstallSession, _options: { yes: boolean }): Promise<number> {
  throw new Error('not yet');
}
