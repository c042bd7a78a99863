// File names that come from the network: only the last path component, only
// a small whitelist of characters, bounded length, never hidden, never empty.
// Whatever a peer sends, the result is a plain name inside the target directory.
import path from 'node:path';

export const MAX_NAME = 100;

export function sanitizeFileName(raw: unknown): string {
  let s = typeof raw === 'string' ? raw : '';
  // both separators count (a Windows peer), and a NUL never reaches the file system
  s = s.replace(/\\/g, '/').replace(/\0/g, '_');
  s = path.posix.basename(s);
  s = s.replace(/[^A-Za-z0-9._-]/g, '_');
  // no hidden files, no "." or ".."
  s = s.replace(/^[.]+/, '');
  if (s.length > MAX_NAME) {
    const ext = path.posix.extname(s).slice(0, 16);
    s = s.slice(0, MAX_NAME - ext.length) + ext;
  }
  return s.length === 0 ? 'file' : s;
}

/** The n-th alternative when a name is taken: report.pdf -> report-1.pdf. */
export function numberedName(name: string, n: number): string {
  if (n === 0) return name;
  const ext = path.posix.extname(name);
  const stem = ext.length > 0 && ext.length < name.length ? name.slice(0, -ext.length) : name;
  return `${stem}-${n}${stem === name ? '' : ext}`;
}
