// "Did you mean …": the known name an unknown one was probably meant to be (answers-file keys,
// knocknoc.conf keys).

function normaliseKey(key: string): string {
  return key.toLowerCase().replace(/[-_\s]/g, '');
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i += 1) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j += 1) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

/** The known key an unknown one was probably meant to be. */
export function didYouMean(key: string, known: string[]): string | undefined {
  const wanted = normaliseKey(key);
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = normaliseKey(candidate) === wanted ? 0 : editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (!best || distance < best.distance) best = { key: candidate, distance };
  }
  return best && best.distance <= Math.max(2, Math.floor(key.length / 3)) ? best.key : undefined;
}
