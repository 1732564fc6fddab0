// Checks on raw parsed JSON that must run before zod: zod (and any recursive check) would overflow
// the stack on a hostile 100k-deep value, and a "__proto__" key would be dropped silently when zod
// copies an object (the prototype is set instead), losing data without telling the client.
// Used for public entries (src/api/routes/timeseries.ts) and forwarded commands alike.

/** The first value nested deeper than maxDepth (the root is depth 1) or under a "__proto__" key, or null. Iterative. */
export function structuralHazard(
  root: unknown,
  maxDepth: number,
): { path: PropertyKey[]; reason: 'depth' | 'proto' } | null {
  const stack: Array<{ v: unknown; path: PropertyKey[] }> = [{ v: root, path: [] }];
  while (stack.length > 0) {
    const { v, path } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (path.length >= maxDepth) return { path, reason: 'depth' };
    if (Array.isArray(v)) v.forEach((x, i) => stack.push({ v: x, path: [...path, i] }));
    else
      for (const [k, x] of Object.entries(v)) {
        if (k === '__proto__') return { path: [...path, k], reason: 'proto' };
        stack.push({ v: x, path: [...path, k] });
      }
  }
  return null;
}
