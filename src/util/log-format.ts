// One way to print a pino record for people: `pilotctl logs`, and journald
// (with a `<N>` syslog priority prefix, which journald turns into the entry's
// PRIORITY so `journalctl -p warning` works). A dozen lines of formatting do
// not justify pino-pretty and its eleven dependencies in every install.

/** pino's numeric levels. */
export const LEVELS: Readonly<Record<number, string>> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** syslog priority (what journald reads from a `<N>` prefix) of a pino level. */
export function syslogPriority(level: number): number {
  if (level >= 60) return 2; // crit
  if (level >= 50) return 3; // err
  if (level >= 40) return 4; // warning
  if (level >= 30) return 6; // info
  return 7; // debug
}

/** Fields every record carries that the one-line form shows elsewhere or not at all. */
const SKIP = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'v']);

function value(v: unknown): string {
  if (typeof v === 'string') return /^[^\s="]+$/.test(v) ? v : JSON.stringify(v);
  if (v !== null && typeof v === 'object') {
    // pino's err serializer: the message is what a reader needs on the line; the stack follows below.
    const e = v as { type?: unknown; message?: unknown; code?: unknown };
    if (typeof e.message === 'string' && typeof e.type === 'string') return JSON.stringify(`${typeof e.code === 'string' ? `${e.code}: ` : ''}${e.message}`);
  }
  return JSON.stringify(v);
}

export interface FormatOptions {
  /** Print the record's own time (false for journald, which stamps each entry itself). */
  time?: boolean;
  /** Add the error's stack trace on the lines below (indented). */
  stack?: boolean;
}

/**
 * `12:03:04.120 WARN  no UDP answer from the rendezvous: trying TCP registry=127.0.0.1:9000`.
 * A line that is not a pino record comes back unchanged (a crash trace the
 * daemon wrote to stderr, which shares the file).
 */
export function formatLogLine(line: string, o: FormatOptions = {}): string {
  let rec: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return line;
    rec = parsed as Record<string, unknown>;
  } catch {
    return line;
  }
  const level = typeof rec.level === 'number' ? rec.level : 30;
  const parts: string[] = [];
  if (o.time !== false && typeof rec.time === 'number') {
    const d = new Date(rec.time);
    parts.push(`${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 23)}`);
  }
  parts.push((LEVELS[level] ?? String(level)).padEnd(5));
  if (typeof rec.msg === 'string') parts.push(rec.msg);
  for (const [k, v] of Object.entries(rec)) if (!SKIP.has(k) && v !== undefined) parts.push(`${k}=${value(v)}`);
  let out = parts.join(' ');
  const err = rec.err as { stack?: unknown } | undefined;
  if (o.stack !== false && typeof err?.stack === 'string') out += `\n${err.stack.replace(/^/gm, '    ')}`;
  return out;
}

/** The journald form of one NDJSON record: `<6>daemon running address=…`, one line (journald splits on newlines). */
export function journalLine(line: string): string {
  let level = 30;
  try {
    const rec = JSON.parse(line) as { level?: unknown };
    if (typeof rec.level === 'number') level = rec.level;
  } catch {
    // not a record: logged as info
  }
  return `<${syslogPriority(level)}>${formatLogLine(line, { time: false, stack: false })}`;
}
