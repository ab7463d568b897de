/**
 * Canonical JSON: the same text for equal values, whatever order their object keys came in.
 * @module
 */

/**
 * `value` as JSON with object keys sorted at every level and `undefined` members left out (in
 * arrays, `null`, as JSON.stringify does), so equal values hash equally. Array order counts.
 * @example
 * canonicalJson({ b: 1, a: [2, undefined] }); // '{"a":[2,null],"b":1}'
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, child]) => child !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, child]) => `${JSON.stringify(key)}:${canonicalJson(child)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
