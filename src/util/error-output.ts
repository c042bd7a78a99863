// How a command-line program of this package reports a failure on stderr, so
// pilotctl and pilot-rendezvous read the same: `error [CODE]: message` and
// `hint: …`, or with --json one {"status":"error","code","message","hint"} line.
// USAGE (a wrong command line, caught by commander) is not a PilotError code:
// nothing past the argument parser can fail that way.
import { asPilotError } from './errors.ts';

export interface ErrorFields {
  code: string;
  message: string;
  hint?: string | undefined;
}

export function errorText(e: ErrorFields, json: boolean): string {
  if (json) return `${JSON.stringify({ status: 'error', code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) })}\n`;
  return `error [${e.code}]: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ''}`;
}

/** Anything thrown, as error text (unknown errors become INTERNAL). */
export function failureText(err: unknown, json: boolean): string {
  return errorText(asPilotError(err), json);
}

/** Exit status of a failed command: 2 when the command line was wrong (usage or a value), 1 otherwise. */
export function exitStatus(code: string): number {
  return code === 'BAD_ARGUMENT' || code === 'USAGE' ? 2 : 1;
}
