// Text cut to the terminal's width before it is drawn, so a screen knows how many lines each part
// takes and can give every part a budget (Ink would wrap it on its own, past any budget).
// Widths are counted in code points, as the screens' symbols (✔ ✗ ! ⚠ ❯ ↓) are one column each.

/** One line: the text, or its start and "…" when it is wider than `width`. */
export function fitLine(text: string, width: number): string {
  const chars = [...text];
  if (chars.length <= width) return text;
  return `${chars.slice(0, Math.max(0, width - 1)).join('')}…`;
}

/**
 * The text word-wrapped at `width` (a word longer than a line is cut), continuation lines
 * indented by `indent` spaces; at most `maxLines`, the last one ending in "…" when text is left.
 */
export function wrapLines(text: string, width: number, options: { indent?: number; maxLines?: number } = {}): string[] {
  const indent = ' '.repeat(Math.min(options.indent ?? 0, Math.max(0, width - 10)));
  const maxLines = Math.max(1, options.maxLines ?? Number.POSITIVE_INFINITY);
  const lines: string[] = [];
  let rest = [...text];
  while (rest.length > 0) {
    const room = Math.max(1, width - (lines.length > 0 ? indent.length : 0));
    let take: number;
    if (rest.length <= room) take = rest.length;
    else {
      // A space inside the line's leading indent is no place to break.
      const lead = rest.findIndex((c) => c !== ' ');
      const space = rest.lastIndexOf(' ', room);
      take = space > lead ? space : room;
    }
    const line = rest.slice(0, take).join('');
    rest = rest.slice(take);
    while (rest[0] === ' ') rest = rest.slice(1);
    if (lines.length + 1 === maxLines && rest.length > 0) {
      lines.push(fitLine(`${lines.length > 0 ? indent : ''}${line} ${rest.join('')}`, width));
      break;
    }
    lines.push(`${lines.length > 0 ? indent : ''}${line}`);
  }
  return lines.length > 0 ? lines : [''];
}
