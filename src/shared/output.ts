// Where a command's plain output goes: one line at a time, results to `out`, problems to `err`.
// The door (src/cli.ts) gives every command the process's stdout and stderr; tests give arrays.
export interface Output {
  out: (line: string) => void;
  err: (line: string) => void;
}

/** Where a command's lines go when nobody reads them (a screen shows the outcome itself). */
export const QUIET: Output = { out: () => {}, err: () => {} };
