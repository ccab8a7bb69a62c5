// The terminal's size, redrawn on every resize. Ink lays out again on a resize, but erases only as
// many lines as it last wrote, and the terminal has re-wrapped those lines to the new width: the
// screen is cleared first, so no line of an earlier frame is left behind.
import { useStdout } from 'ink';
import { useEffect, useState } from 'react';

const CLEAR_SCREEN = '\u001B[2J\u001B[H';

export function useTerminalSize(fallback: { columns: number; rows: number }): { columns: number; rows: number } {
  const { stdout, write } = useStdout();
  const read = () => ({ columns: stdout.columns || fallback.columns, rows: stdout.rows || fallback.rows });
  const [size, setSize] = useState(read);
  useEffect(() => {
    const resized = () => {
      // Through Ink: it takes its frame away, writes this, and draws its frame again below.
      write(CLEAR_SCREEN);
      setSize(read());
    };
    stdout.on('resize', resized);
    return () => {
      stdout.off('resize', resized);
    };
  });
  return size;
}
