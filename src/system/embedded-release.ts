// The release built into the single executable: scripts/package.mjs replaces this module with the
// version and the files of assets/ and migrations/ (see src/system/package.ts). From a checkout
// there is none, and the release is read from the package folder.
export interface EmbeddedRelease {
  version: string;
  /** File contents by path relative to the package folder, e.g. `migrations/001_initial.sql`. */
  files: Record<string, string>;
}

export const EMBEDDED_RELEASE: EmbeddedRelease | undefined = undefined;
