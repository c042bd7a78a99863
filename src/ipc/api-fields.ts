// Field schemas for IPC params (src/ipc/api.ts). A request is JSON from the
// socket's owner, but still checked before use (types, sizes, ranges), with
// BAD_ARGUMENT naming the parameter. These keep the exact rules and messages of
// the checks the handlers used to make by hand: a string may be null for
// "absent", a number may come as a numeric string (pilotctl passes flags as
// text), and a few flags are loose (`clear: true` or anything else = false).
//
// Each field is `v.custom<In>()` (any JSON passes, typed as what callers should
// send) piped into a transform that does the check, so the message is ours, not
// valibot's; paramsError() turns the first issue into the PilotError.
import * as v from 'valibot';
import { PilotError } from '../util/errors.ts';
import type { Issue } from '../util/schema.ts';
import { parsePort } from '../wire/address.ts';

const MISSING = 'missing';

/** How paramsError words a refusal: `named` completes the message with the parameter's name. */
interface Refusal {
  named: boolean;
  hint?: string;
}
/** The refusals our checks made (valibot issues carry no extra fields of their own). */
const REFUSALS = new WeakMap<Issue, Refusal>();

/** What a check gets to refuse the value with: it does not return (the check stops there). */
type Refuse = (message: string, opts?: { named?: boolean; hint?: string }) => never;

/** Thrown by refuse(), caught by checked(): a check that refused must not go on with the value. */
class Refused {
  readonly message: string;
  readonly refusal: Refusal;
  constructor(message: string, refusal: Refusal) {
    this.message = message;
    this.refusal = refusal;
  }
}

const refuse: Refuse = (message, opts = {}) => {
  throw new Refused(message, { named: opts.named !== false, ...(opts.hint ? { hint: opts.hint } : {}) });
};

/** Runs `check` on the value; a refusal becomes an issue that paramsError() reads. */
function checked<In, Out>(check: (value: In, refuse: Refuse) => Out) {
  return v.rawTransform<In, Out>(({ dataset, addIssue, NEVER }) => {
    try {
      return check(dataset.value, refuse);
    } catch (err) {
      if (!(err instanceof Refused)) throw err;
      addIssue({ message: err.message });
      // addIssue just appended the issue (typed as if the dataset still had none): remember how it is to be worded
      const issues = (dataset as unknown as { issues: Issue[] }).issues;
      REFUSALS.set(issues[issues.length - 1]!, err.refusal);
      return NEVER;
    }
  });
}

const anything = <T>() => v.custom<T>(() => true);
/**
 * Valibot skips an absent key whose schema is optional without a default, and
 * refuses one whose schema is required before that schema runs. A default that
 * is a function returning undefined makes the object run the field's check on
 * undefined instead, so an absent parameter gets the check's own answer (a
 * default, or "missing parameter"): as the handlers had it.
 */
const absent = (): undefined => undefined;

/** An optional parameter: the input may leave it out; `check` runs on undefined then. */
function optionalField<In, Out>(check: (value: In | undefined, refuse: Refuse) => Out) {
  return v.pipe(v.optional(anything<In>(), absent), checked(check));
}

/**
 * A required parameter: typed as one the input must give, yet checked like an
 * optional one (so an absent one is refused by the check, with its message).
 */
function requiredField<In, Out>(check: (value: In | undefined, refuse: Refuse) => Out): v.GenericSchema<In, Out> {
  return optionalField<In, Out>(check) as unknown as v.GenericSchema<In, Out>;
}

/** The first issue of a failed params parse, as the error the client sees. */
export function paramsError(issues: readonly Issue[]): PilotError {
  const issue = issues[0];
  if (!issue) return new PilotError('BAD_ARGUMENT', 'invalid parameters');
  const name = String(issue.path?.[0].key ?? '');
  const r = REFUSALS.get(issue);
  // Not one of ours: an absent key of a required schema, or params that are no object.
  if (r === undefined) {
    if (name && issue.input === undefined) return new PilotError('BAD_ARGUMENT', `missing parameter "${name}"`);
    return new PilotError('BAD_ARGUMENT', name ? `parameter "${name}" is invalid` : 'params must be an object');
  }
  if (!r.named) return new PilotError('BAD_ARGUMENT', issue.message, r.hint);
  if (issue.message === MISSING) return new PilotError('BAD_ARGUMENT', `missing parameter "${name}"`, r.hint);
  return new PilotError('BAD_ARGUMENT', `parameter "${name}" ${issue.message}`, r.hint);
}

function checkStr(x: unknown, refuse: Refuse, required: boolean, max: number): string | undefined {
  if (x === undefined || x === null) return required ? refuse(MISSING) : undefined;
  if (typeof x !== 'string' || x.length > max) return refuse(`must be a string of at most ${max} characters`);
  return x;
}

/** A required string of at most `max` characters. */
export function str(max = 65536) {
  return requiredField<string, string>((x, refuse) => checkStr(x, refuse, true, max) as string);
}

/** An optional string of at most `max` characters (null = absent). */
export function optStr(max = 65536) {
  return optionalField<string | null, string | undefined>((x, refuse) => checkStr(x, refuse, false, max));
}

/** A required, non-empty string. */
export function text(max = 256) {
  return requiredField<string, string>((x, refuse) => {
    const s = checkStr(x, refuse, true, max) as string;
    if (s.length === 0) return refuse('must be a non-empty string');
    return s;
  });
}

function checkNum(x: unknown, refuse: Refuse, min: number, max: number, strings: boolean): number {
  const n = strings && typeof x === 'string' ? Number(x) : x;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < min || n > max) return refuse(`must be a number in ${min}..${max}`);
  return n;
}

/** A number (or numeric string) in min..max; `dflt` when absent or null. */
export function num(dflt: number, min: number, max: number) {
  return optionalField<number | string | null, number>((x, refuse) => (x === undefined || x === null ? dflt : checkNum(x, refuse, min, max, true)));
}

/** A required whole number (or decimal text) in min..max. */
export function int(min: number, max: number) {
  return requiredField<number | string, number>((x, refuse) => {
    if (x === undefined || x === null) return refuse(MISSING);
    const n = checkNum(x, refuse, min, max, true);
    return Number.isInteger(n) ? n : refuse(`must be a whole number in ${min}..${max}`);
  });
}

/** A number (or numeric string) in min..max, undefined when absent (the handler picks the default). */
export function optNum(min: number, max: number) {
  return optionalField<number | string | null, number | undefined>((x, refuse) =>
    x === undefined || x === null ? undefined : checkNum(x, refuse, min, max, true),
  );
}

/** A JSON number (no numeric strings: the SDK sends numbers) in min..max; `dflt` when absent or null. */
export function strictNum(dflt: number, min: number, max: number) {
  return optionalField<number | null, number>((x, refuse) => (x === undefined || x === null ? dflt : checkNum(x, refuse, min, max, false)));
}

/** A virtual port 0..65535 as a number or decimal text: src/wire's parsePort, its message and hint. */
export function port(dflt?: number) {
  return optionalField<number | string | null, number>((x, refuse) => {
    const p = x ?? dflt ?? x; // null: the default if there is one, else refused as null (as parsePort does)
    try {
      return parsePort(p as number | string);
    } catch (err) {
      if (!(err instanceof PilotError)) throw err;
      return refuse(err.message, { named: false, ...(err.hint ? { hint: err.hint } : {}) });
    }
  });
}

/** A flag that is on only when exactly `true` (anything else, or absent, is off). */
export function flag() {
  return optionalField<boolean, boolean>((x) => x === true);
}

/** Anything, passed through as given (the handler decides; e.g. a code that falls back to a default). */
export function loose<T>() {
  return optionalField<T, T | undefined>((x) => x);
}

/** A required value of any shape, typed as T, that `check` refuses with `message` (and `hint`) unless it holds. */
export function required<T>(ok: (x: unknown) => boolean, message: string, hint?: string) {
  return requiredField<T, T>((x, refuse) => (ok(x) ? (x as T) : refuse(message, { named: false, ...(hint ? { hint } : {}) })));
}

/** One of `values`, given as an optional string (null = absent; any text may be sent, the daemon refuses others with `message`). */
export function oneOf<const V extends string>(values: readonly V[], message: (x: string) => string, hint?: string) {
  return optionalField<string | null, V | undefined>((x, refuse) => {
    const s = checkStr(x, refuse, false, 65536);
    if (s === undefined) return undefined;
    if (!(values as readonly string[]).includes(s)) return refuse(message(s), { named: false, ...(hint ? { hint } : {}) });
    return s as V;
  });
}

/** A further step of a field: refuse with `message` (verbatim, optionally with a hint) unless `ok(value)`. */
export function refuseUnless<T>(ok: (x: T) => boolean, message: string, hint?: string) {
  return checked<T, T>((x, refuse) => (ok(x) ? x : refuse(message, { named: false, ...(hint ? { hint } : {}) })));
}
