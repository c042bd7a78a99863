// Field schemas for IPC params (src/ipc/api.ts). A request is JSON from the
// socket's owner, but still checked before use (types, sizes, ranges), with
// BAD_ARGUMENT naming the parameter. These keep the exact rules and messages of
// the checks the handlers used to make by hand: a string may be null for
// "absent", a number may come as a numeric string (pilotctl passes flags as
// text), and a few flags are loose (`clear: true` or anything else = false).
//
// Each field is `z.custom<In>()` (any JSON passes, typed as what callers should
// send) piped into a transform that does the check, so the message is ours, not
// zod's; paramsError() turns the first issue into the PilotError.
import { z } from 'zod';
import { PilotError } from '../util/errors.ts';
import { parsePort } from '../wire/address.ts';

/** Marks an issue whose message is completed with the parameter's name (see paramsError). */
const FIELD = 'field';
const MISSING = 'missing';

type Ctx = z.core.$RefinementCtx;

/** Add a refusal and give up on the value. `message` without a field name is completed with it. */
function refuse(ctx: Ctx, input: unknown, message: string, opts: { named?: boolean; hint?: string } = {}): never {
  ctx.issues.push({ code: 'custom', message, input, params: { [FIELD]: opts.named !== false, ...(opts.hint ? { hint: opts.hint } : {}) } });
  return z.NEVER;
}

/** The first issue of a failed params parse, as the error the client sees. */
export function paramsError(error: z.ZodError): PilotError {
  const issue = error.issues[0];
  if (!issue) return new PilotError('BAD_ARGUMENT', 'invalid parameters');
  const name = String(issue.path[0] ?? '');
  const p = (issue.code === 'custom' ? issue.params : undefined) ?? {};
  const hint = typeof p.hint === 'string' ? p.hint : undefined;
  if (p[FIELD] !== true) return new PilotError('BAD_ARGUMENT', issue.message, hint);
  if (issue.message === MISSING) return new PilotError('BAD_ARGUMENT', `missing parameter "${name}"`, hint);
  return new PilotError('BAD_ARGUMENT', `parameter "${name}" ${issue.message}`, hint);
}

function checkStr(v: unknown, ctx: Ctx, required: boolean, max: number): string | undefined {
  if (v === undefined || v === null) return required ? refuse(ctx, v, MISSING) : undefined;
  if (typeof v !== 'string' || v.length > max) return refuse(ctx, v, `must be a string of at most ${max} characters`);
  return v;
}

/** A required string of at most `max` characters. */
export function str(max = 65536) {
  return z.custom<string>().transform((v, ctx): string => checkStr(v, ctx, true, max) as string);
}

/** An optional string of at most `max` characters (null = absent). */
export function optStr(max = 65536) {
  return z
    .custom<string | null>()
    .optional()
    .transform((v, ctx): string | undefined => checkStr(v, ctx, false, max));
}

/** A required, non-empty string. */
export function text(max = 256) {
  return z.custom<string>().transform((v, ctx): string => {
    const s = checkStr(v, ctx, true, max) as string;
    if (s.length === 0) return refuse(ctx, v, 'must be a non-empty string');
    return s;
  });
}

function checkNum(v: unknown, ctx: Ctx, min: number, max: number, strings: boolean): number {
  const n = strings && typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < min || n > max) return refuse(ctx, v, `must be a number in ${min}..${max}`);
  return n;
}

/** A number (or numeric string) in min..max; `dflt` when absent or null. */
export function num(dflt: number, min: number, max: number) {
  return z
    .custom<number | string | null>()
    .optional()
    .transform((v, ctx): number => (v === undefined || v === null ? dflt : checkNum(v, ctx, min, max, true)));
}

/** A number (or numeric string) in min..max, undefined when absent (the handler picks the default). */
export function optNum(min: number, max: number) {
  return z
    .custom<number | string | null>()
    .optional()
    .transform((v, ctx): number | undefined => (v === undefined || v === null ? undefined : checkNum(v, ctx, min, max, true)));
}

/** A JSON number (no numeric strings: the SDK sends numbers) in min..max; `dflt` when absent or null. */
export function strictNum(dflt: number, min: number, max: number) {
  return z
    .custom<number | null>()
    .optional()
    .transform((v, ctx): number => (v === undefined || v === null ? dflt : checkNum(v, ctx, min, max, false)));
}

/** A virtual port 0..65535 as a number or decimal text: src/wire's parsePort, its message and hint. */
export function port(dflt?: number) {
  return z
    .custom<number | string | null>()
    .optional()
    .transform((v, ctx): number => {
      const x = v ?? dflt ?? v; // null: the default if there is one, else refused as null (as parsePort does)
      try {
        return parsePort(x as number | string);
      } catch (err) {
        if (!(err instanceof PilotError)) throw err;
        return refuse(ctx, v, err.message, { named: false, ...(err.hint ? { hint: err.hint } : {}) });
      }
    });
}

/** A flag that is on only when exactly `true` (anything else, or absent, is off). */
export function flag() {
  return z
    .custom<boolean>()
    .optional()
    .transform((v): boolean => v === true);
}

/** Anything, passed through as given (the handler decides; e.g. a code that falls back to a default). */
export function loose<T>() {
  return z.custom<T>().optional();
}

/** One of `values`, given as an optional string (null = absent; any text may be sent, the daemon refuses others with `message`). */
export function oneOf<const V extends string>(values: readonly V[], message: (v: string) => string, hint?: string) {
  return z
    .custom<string | null>()
    .optional()
    .transform((v, ctx): V | undefined => {
      const s = checkStr(v, ctx, false, 65536);
      if (s === undefined) return undefined;
      if (!(values as readonly string[]).includes(s)) return refuse(ctx, v, message(s), { named: false, ...(hint ? { hint } : {}) });
      return s as V;
    });
}

/** Refuse with `message` (verbatim, optionally with a hint) unless `ok(value)`. */
export function refuseUnless<T>(ok: (v: T) => boolean, message: string, hint?: string) {
  return (v: T, ctx: Ctx): T => (ok(v) ? v : refuse(ctx, v, message, { named: false, ...(hint ? { hint } : {}) }));
}
