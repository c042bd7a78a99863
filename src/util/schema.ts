// What every layer that checks input with a valibot schema shares: the texts of
// its refusals and one way to list them.
//
// Valibot's default texts ("Invalid length: Expected <=63 but received 70")
// echo the input back and differ from what the messages said before the switch
// from zod (issue 17: zod alone cost the daemon ~17 MiB). withMessages() gives
// a top-level schema texts that name the bound and the expected type, worded as
// before ("Too big: expected string to have <=63 characters"); a schema's own
// message (a refine's "must be ip:port") always wins over these.
import * as v from 'valibot';

export type Issue = v.BaseIssue<unknown>;

/** What a value was, for "received ...": a type, never the value (it may be long, or a secret). */
function typeName(input: unknown): string {
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'array';
  if (typeof input === 'number' && Number.isNaN(input)) return 'NaN';
  return typeof input;
}

/** Valibot's `expects` ('Object', '("a" | "b")') as the texts say it ('object', '"a"|"b"'). */
function expectedText(expects: string | null): string {
  if (expects === null) return 'a value';
  const inner = expects.startsWith('(') && expects.endsWith(')') ? expects.slice(1, -1) : expects;
  return inner
    .replaceAll(' | ', '|')
    .replace(/\bObject\b/g, 'object')
    .replace(/\bArray\b/g, 'array');
}

function sized(input: unknown): { what: string; unit: string; length: number } {
  if (Array.isArray(input)) return { what: 'array', unit: 'items', length: input.length };
  return { what: 'string', unit: 'characters', length: typeof input === 'string' ? input.length : 0 };
}

/** The text of an issue that its schema or action gave no message of its own. */
function issueMessage(issue: Issue): string {
  const req = issue.requirement;
  switch (issue.type) {
    case 'min_length':
    case 'max_length':
    case 'length': {
      const s = sized(issue.input);
      if (issue.type === 'length') return `${s.length < Number(req) ? 'Too small' : 'Too big'}: expected ${s.what} to have exactly ${req} ${s.unit}`;
      if (issue.type === 'min_length') return `Too small: expected ${s.what} to have >=${req} ${s.unit}`;
      return `Too big: expected ${s.what} to have <=${req} ${s.unit}`;
    }
    case 'min_value':
      return `Too small: expected number to be >=${req}`;
    case 'max_value':
      return `Too big: expected number to be <=${req}`;
    case 'integer':
    case 'safe_integer':
      // 1.5 is not an integer; 2**60 is one, but not a safe one (JSON numbers lose its digits)
      return `Invalid input: expected ${Number.isInteger(issue.input) ? 'a safe integer' : 'an integer'}, received ${issue.received}`;
    case 'email':
      return 'Invalid email address';
    case 'regex':
      return `Invalid string: must match pattern ${req}`;
  }
  if (issue.kind !== 'schema') return issue.message;
  // An object's own issue about one of its keys: the key is missing, or not one it knows.
  // (Its path holds just that key when the text is made; parents prepend theirs later.)
  const last = issue.path?.at(-1);
  if (last?.type === 'object' && last.origin === 'key' && (issue.type === 'object' || issue.type === 'strict_object')) {
    return issue.input === undefined ? 'Required' : 'Unrecognized key';
  }
  // A variant's issue with a path is about its discriminator (without one: not an object at all).
  if (issue.type === 'picklist' || (issue.type === 'variant' && last !== undefined)) return `Invalid option: expected one of ${expectedText(issue.expected)}`;
  if (issue.type === 'literal') return `Invalid input: expected ${issue.expected}`;
  return `Invalid input: expected ${expectedText(issue.expected)}, received ${typeName(issue.input)}`;
}

const MESSAGES = { message: issueMessage };

/**
 * `schema`, with the texts above for every issue inside it that has no message
 * of its own. Wrap the schemas whose messages people read (config files, CLI
 * flags, refused requests); a nested schema needs no wrapping of its own.
 */
export function withMessages<const S extends v.GenericSchema>(schema: S): S {
  return v.config(schema, MESSAGES);
}

/** Where an issue is: "paths.direct", "lanEndpoints.1"; '' for the value itself. */
export function issuePath(issue: Issue): string {
  return issue.path?.map((p) => String(p.key)).join('.') ?? '';
}

/**
 * Every issue as "path: message", joined with "; ". `root` names an issue of the
 * value itself (no path).
 */
export function issuesText(issues: readonly Issue[], root = '(root)'): string {
  return issues.map((i) => `${issuePath(i) || root}: ${i.message}`).join('; ');
}

/**
 * First step of a pipe into an object() or record(): those take an array as an
 * object (keys "0", "1", ...), so `[]` would pass as an object of defaults.
 */
export function notArray<T = Record<string, unknown>>() {
  return v.custom<T>((x) => !Array.isArray(x), 'Invalid input: expected object, received array');
}

/** An integer (a JSON number, no text) in min..max. */
export function int(min: number, max: number) {
  return v.pipe(v.number(), v.safeInteger(), v.minValue(min), v.maxValue(max));
}
