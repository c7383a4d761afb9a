/** Small statistics shared by the benchmarks. */

/** Median of the values, nulls left out; null when none is left. */
export function median<T extends number | null>(values: T[]): T {
  const sorted = values.filter((v): v is NonNullable<T> => v !== null).sort((a, b) => a - b);
  if (sorted.length === 0) return null as T;
  const mid = Math.floor(sorted.length / 2);
  return (sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2) as T;
}
