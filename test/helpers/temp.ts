// Temporary folders for tests. mkdtemp makes them 0700; they are opened to 0755 so that the
// postgres user (which runs the clusters) can enter them, as it could a real root.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  await fs.chmod(dir, 0o755);
  return dir;
}
