// This host's node's log for the dashboard's log view: `knocker service logs server -f` (the same
// reading, src/service/logs.ts), its lines handed over in batches until stopped.
import { serviceLogs } from '../service/logs.js';
import type { Root } from '../system/root.js';

/** Follows the node's log: its last `lines` lines, then each new one; `onLines` gets them in batches. Ends when `stop` aborts. */
export async function followNodeLog(root: Root, lines: number, onLines: (lines: string[]) => void, stop: AbortSignal): Promise<void> {
  let batch: string[] = [];
  let queued = false;
  const flush = () => {
    queued = false;
    const lines = batch;
    batch = [];
    if (lines.length > 0 && !stop.aborted) onLines(lines);
  };
  await serviceLogs(
    root,
    'server',
    { follow: true, lines, stop },
    {
      out: (line) => {
        batch.push(line);
        if (!queued) {
          queued = true;
          setImmediate(flush);
        }
      },
      err: () => {},
    },
  );
  flush();
}
