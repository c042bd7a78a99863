// The lan_endpoints column holds a JSON array of "host:port" strings, in both
// the SQLite and the PostgreSQL store.

/** The column's strings; a corrupt column reads as none (it must not take the registry down). */
export function parseLanEndpoints(column: string): string[] {
  try {
    const v: unknown = JSON.parse(column);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}
