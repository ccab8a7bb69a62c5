// OS users: looked up through NSS (getent), as the rest of the system sees them.
import { run } from './run.js';

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export async function lookupUser(name: string): Promise<OsUser | undefined> {
  const result = await run('getent', ['passwd', name], { allowFailure: true });
  if (result.exitCode !== 0) return undefined;
  const fields = result.stdout.split('\n')[0]!.split(':');
  if (fields.length < 6) return undefined;
  return { name: fields[0]!, uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5]! };
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}
