// The one owner of an interactive app's end (Shopify cli-kit's model). An app (the installer, the
// dashboard, the upgrade screen) reports its outcome, an exit code, through `onExit` once its last
// frame is drawn, and ends nothing itself; the owner lets that frame reach the terminal, unmounts,
// and hands the code to the door (src/cli.ts), which makes it the process's exit code.
import type { ReactElement } from 'react';
import { sleep } from '../system/wait.js';

/**
 * How an app reports its outcome. `now`: work the app started cannot be left going without a
 * screen (a second Ctrl-C during an upgrade), so the process ends at once with `code`.
 */
export type OnExit = (code: number, how?: { now?: boolean }) => void;

/** Time for the last frame to reach the terminal before the app is taken down. */
const LAST_FRAME_MS = 20;

/** Renders `app` until it reports its outcome; returns the exit code (or ends the process, for `now`). */
export async function runApp(app: (onExit: OnExit) => ReactElement): Promise<number> {
  const { render } = await import('ink');
  let report: (outcome: { code: number; now: boolean }) => void = () => {};
  const reported = new Promise<{ code: number; now: boolean }>((resolve) => (report = resolve));
  let done = false;
  const onExit: OnExit = (code, how = {}) => {
    if (done) return;
    done = true;
    report({ code, now: Boolean(how.now) });
  };
  const instance = render(app(onExit), { exitOnCtrlC: false });
  // An app that fails while rendering ends without a report: its error is thrown here.
  const outcome = await Promise.race([reported, instance.waitUntilExit().then(() => undefined)]);
  if (outcome && !outcome.now) await sleep(LAST_FRAME_MS);
  instance.unmount();
  await instance.waitUntilExit();
  if (outcome?.now) process.exit(outcome.code);
  return outcome?.code ?? 0;
}
