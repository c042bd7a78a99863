// How pilotctl answers: human text by default, {"status":"ok","data":…} with
// --json; errors as {"status":"error","code","message","hint"} on stderr.
import { asPilotError, PilotError } from '../util/errors.ts';
import { errorText } from '../util/error-output.ts';

export interface OutputOptions {
  json: boolean;
}

export function ok(opts: OutputOptions, data: unknown, human: () => string | undefined): void {
  if (opts.json) {
    process.stdout.write(JSON.stringify({ status: 'ok', data }) + '\n');
    return;
  }
  const text = human();
  if (text !== undefined && text.length > 0) process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

/** One line of a streamed result (NDJSON with --json). */
export function line(opts: OutputOptions, data: unknown, human: string): void {
  if (opts.json) process.stdout.write(JSON.stringify({ status: 'ok', event: true, data }) + '\n');
  else process.stdout.write(human + '\n');
}

export function fail(opts: OutputOptions, err: unknown): number {
  process.stderr.write(errorText(asPilotError(err), opts.json)); // the same text as pilot-rendezvous
  return 1;
}

/** "5s", "500ms", "2m", "1h" or a bare number of seconds -> milliseconds. */
export function parseDuration(text: string | undefined, dfltMs: number): number {
  if (text === undefined) return dfltMs;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(text).trim());
  if (!m) throw new PilotError('BAD_ARGUMENT', `invalid duration ${JSON.stringify(text)}`, 'use e.g. 500ms, 5s, 2m');
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(n * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60000 : 3600000));
}

export function parseCount(text: string | undefined, dflt: number): number {
  if (text === undefined) return dflt;
  if (!/^\d{1,9}$/.test(String(text))) throw new PilotError('BAD_ARGUMENT', `invalid count ${JSON.stringify(text)}`, 'a whole number, e.g. --count 5');
  return Number(text);
}

/**
 * `pilotctl peers | head -1`: once the reader is gone, writing to stdout fails
 * with EPIPE. Like cat or ls (which SIGPIPE ends silently) that is not an error
 * of ours: stop at once, print nothing, exit 0 (the reader took what it wanted).
 * An EPIPE on stderr has nobody left to tell: ignored.
 */
export function quietOnClosedPipe(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  process.stderr.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}
