// Validation of IPC request parameters, shared by every handler file: a request
// is JSON from the socket's owner, but still checked before use (types, sizes,
// ranges), with BAD_ARGUMENT naming the parameter.
import { PilotError } from '../util/errors.ts';

export type Params = Record<string, unknown>;

/** A string parameter of at most `max` characters; undefined when absent and not required. */
export function str(p: Params, name: string, required = true, max = 65536): string | undefined {
  const v = p[name];
  if (v === undefined || v === null) {
    if (required) throw new PilotError('BAD_ARGUMENT', `missing parameter "${name}"`);
    return undefined;
  }
  if (typeof v !== 'string' || v.length > max) throw new PilotError('BAD_ARGUMENT', `parameter "${name}" must be a string of at most ${max} characters`);
  return v;
}

/** A required, non-empty string parameter. */
export function text(p: Params, name: string, max = 256): string {
  const v = str(p, name, true, max)!;
  if (v.length === 0) throw new PilotError('BAD_ARGUMENT', `parameter "${name}" must be a non-empty string`);
  return v;
}

/** A number (or numeric string) in min..max; `dflt` when absent. */
export function num(p: Params, name: string, dflt: number, min: number, max: number): number {
  const v = p[name];
  if (v === undefined || v === null) return dflt;
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < min || n > max)
    throw new PilotError('BAD_ARGUMENT', `parameter "${name}" must be a number in ${min}..${max}`);
  return n;
}
