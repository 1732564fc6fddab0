// Shared by the CI test and the CLI so a seed means the same run in both.

/** Initial cluster size for a seed when none is given: mostly 3 and 5, sometimes 1, 2, 4, 6 or 7. */
export function seedNodes(seed: number): number {
  const sizes = [3, 5, 3, 5, 1, 2, 4, 6, 7, 3, 5];
  return sizes[seed % sizes.length]!;
}
