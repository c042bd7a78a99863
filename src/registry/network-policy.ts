// A network's policy (issue 18, fleets): which members may reach which members on which
// virtual ports. The admin writes it as JSON, the CLI validates it before sending, the
// rendezvous stores the admin-signed text verbatim and serves it, and the RECEIVING
// daemon enforces it (AccessPolicy). All three parse with this one module, so they can
// never disagree about what a policy means.
//
//   { "rules": [ { "from": ["tag:planner"], "to": ["tag:worker"], "ports": ["1000-1003", 80] } ] }
//
// Semantics follow Tailscale's ACLs:
// - No policy (or no "rules" key) = every member reaches every member on every port, as in
//   a new tailnet: a fresh network just works, and the admin narrows it when needed.
// - Rules only ever ALLOW; there is no deny rule. So rule order does not matter and there
//   is no "first match": a connection is allowed iff at least one rule allows it, and an
//   empty "rules" array allows nothing (deny all). Nothing a later rule says can take back
//   what an earlier one allowed, which keeps a policy readable line by line.
// - The port is the RECEIVER's local port (the destination port of a stream or datagram),
//   never the sender's source port: the sender picks its source port freely, so it is no
//   evidence of anything (as with Tailscale's dst ports).
// - Who a sender is comes from its admin-signed membership credential (its tags) and its
//   authenticated session key (its address). Self-declared tags (set_tags, for discovery)
//   must never be passed here: anyone can claim any of them.
//
// The text is the source of truth: the admin signs its exact bytes and the rendezvous
// stores and serves them unchanged (no canonicalisation to get wrong, as with the registry
// envelope). `parsePolicy` turns it into an immutable normalised form indexed for
// `policyAllows`, which runs for every incoming stream and datagram. `formatPolicy` writes
// that normalised form back as canonical JSON, for showing what a policy means (and for
// the default policy, which has no text).
//
// Positions in errors come from jsonc-parser (Microsoft's parser behind VS Code's JSON
// support): its tree has offsets for every key and value. It is configured to reject
// comments, trailing commas and empty input, so it accepts exactly JSON (the unit tests
// compare it with JSON.parse on the usual leniencies).
// Loaded on the first parse, not at import: every daemon imports this module (tags, the
// evaluator), but only one that is handed a policy text needs the parser (~4 MiB of RSS).
import { createRequire } from 'node:module';
import type * as JsoncParser from 'jsonc-parser';
import type { JSONPath, Node, ParseError } from 'jsonc-parser';
import { PilotError } from '../util/errors.ts';
import { formatAddress, makeAddress, parseAddress, type Address } from '../wire/address.ts';

let parser: typeof JsoncParser | undefined;
const jsonc = (): typeof JsoncParser => (parser ??= createRequire(import.meta.url)('jsonc-parser') as typeof JsoncParser);

/** Longest policy text, in UTF-8 bytes (it travels in 1200-byte registry chunks). */
export const POLICY_MAX_BYTES = 16 * 1024;
/** Most rules in one policy (also bounds the evaluator's work: 8 words of 32 rules). */
export const POLICY_MAX_RULES = 256;
/** Most entries in one from/to/ports list. */
export const POLICY_MAX_LIST = 64;
/** Most tags on one credential, and most self-declared tags. */
export const MAX_TAGS = 8;
/** Longest tag. */
export const TAG_MAX_LENGTH = 32;

const TAG_RE = /^[a-z0-9-]{1,32}$/;
const TAG_HINT = 'a tag is 1-32 characters from a-z, 0-9 and "-" (lower case), e.g. worker or gpu-a100';
const POLICY_HINT =
  'a policy is {"rules": [{"from": [...], "to": [...], "ports": [...]}]}; from/to entries are "tag:<name>", "*" or a node address N:XXXX.YYYY.YYYY; ports are numbers, "a-b" ranges or "*"';

/** An inclusive range of virtual ports. */
export type PortRange = readonly [lo: number, hi: number];

/** One side of a rule, normalised: `any` swallows everything else (tags and nodes are then empty). */
export interface PolicySelector {
  /** "*": every member of the network. */
  readonly any: boolean;
  /** Credential tags, sorted, without duplicates, without the "tag:" prefix. */
  readonly tags: readonly string[];
  /** Node ids (the 32-bit node part of an address), sorted, without duplicates. */
  readonly nodes: readonly number[];
}

export interface PolicyRule {
  readonly from: PolicySelector;
  readonly to: PolicySelector;
  /** Sorted, disjoint, non-adjacent ranges; "*" is [[0, 65535]]. */
  readonly ports: readonly PortRange[];
}

/** What the receiving daemon knows about one incoming stream or datagram. */
export interface PolicyQuery {
  /** The sender's tags from its verified membership credential (never self-declared tags). */
  readonly fromTags: Iterable<string>;
  /** The sender's address (authenticated by its session key). */
  readonly fromAddress: Address;
  /** Our own credential tags in this network. */
  readonly toTags: Iterable<string>;
  /** Our own address. */
  readonly toAddress: Address;
  /** Our local (destination) port. */
  readonly port: number;
}

/** Rule sets of one side: bit r of word r>>5 set = rule r matches. */
interface SideIndex {
  readonly any: Uint32Array;
  readonly tags: Map<string, Uint32Array>;
  readonly nodes: Map<number, Uint32Array>;
}

// Scratch masks for policyAllows: evaluation is synchronous, so one pair serves every call.
const WORDS_MAX = Math.ceil(POLICY_MAX_RULES / 32);
const fromMask = new Uint32Array(WORDS_MAX);
const toMask = new Uint32Array(WORDS_MAX);

/**
 * A parsed policy: immutable, normalised, and indexed so that a decision costs a few map
 * lookups per tag instead of a walk over every rule (see policyAllows).
 */
export class NetworkPolicy {
  readonly #rules: readonly PolicyRule[] | undefined;
  readonly #words: number;
  readonly #from: SideIndex;
  readonly #to: SideIndex;
  /** Per rule: its ranges flattened [lo0, hi0, lo1, hi1, ...]. */
  readonly #ports: readonly Int32Array[];

  /**
   * Policies come from parsePolicy (or DEFAULT_POLICY); building one from rules directly is
   * for tests and tools. Port ranges are checked and merged here; tags and nodes are taken
   * as given (a tag no credential can carry just never matches).
   */
  constructor(rules: readonly PolicyRule[] | undefined) {
    if (rules !== undefined && rules.length > POLICY_MAX_RULES) {
      throw new PilotError('BAD_ARGUMENT', `a policy has at most ${POLICY_MAX_RULES} rules (got ${rules.length})`, POLICY_HINT);
    }
    this.#rules = rules === undefined ? undefined : Object.freeze(rules.map(freezeRule));
    const list = this.#rules ?? [];
    this.#words = Math.ceil(list.length / 32);
    this.#from = indexSide(list, this.#words, (r) => r.from);
    this.#to = indexSide(list, this.#words, (r) => r.to);
    this.#ports = list.map((r) => Int32Array.from(r.ports.flat()));
    // Immutable without Object.freeze(this): the state is in private fields and `rules` is
    // a getter over frozen arrays (private field reads on a frozen object cost V8 ~200 ns).
  }

  /** undefined = the default policy (members reach members on every port); [] = deny all. */
  get rules(): readonly PolicyRule[] | undefined {
    return this.#rules;
  }

  /** See policyAllows. */
  allows(q: PolicyQuery): boolean {
    const port = q.port;
    // Not a virtual port (65536, -1, 1.5, NaN): nothing can be listening there; refuse
    // rather than throw, this runs on the packet path.
    if ((port & 0xffff) !== port) return false;
    if (this.#rules === undefined) return true;
    const words = this.#words;
    if (words === 0) return false;
    collect(this.#from, q.fromTags, q.fromAddress, fromMask, words);
    collect(this.#to, q.toTags, q.toAddress, toMask, words);
    for (let w = 0; w < words; w++) {
      let m = fromMask[w]! & toMask[w]!;
      while (m !== 0) {
        const low = m & -m;
        if (inRanges(this.#ports[(w << 5) | (31 - Math.clz32(low))]!, port)) return true;
        m ^= low;
      }
    }
    return false;
  }
}

/** Binary search in sorted disjoint ranges [lo0, hi0, lo1, hi1, ...] (at most 64: 6 steps). */
function inRanges(ranges: Int32Array, port: number): boolean {
  let lo = 0;
  let hi = (ranges.length >> 1) - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (port < ranges[mid << 1]!) hi = mid - 1;
    else if (port > ranges[(mid << 1) + 1]!) lo = mid + 1;
    else return true;
  }
  return false;
}

/** A frozen copy; port ranges sorted and merged again, since the evaluator's binary search depends on it. */
function freezeRule(r: PolicyRule): PolicyRule {
  const sel = (s: PolicySelector): PolicySelector => Object.freeze({ any: s.any, tags: Object.freeze([...s.tags]), nodes: Object.freeze([...s.nodes]) });
  for (const [lo, hi] of r.ports) {
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 0 || hi > 0xffff || lo > hi) {
      throw new PilotError('BAD_ARGUMENT', `invalid port range ${lo}-${hi}`, 'ranges are [lo, hi] with 0 <= lo <= hi <= 65535');
    }
  }
  return Object.freeze({ from: sel(r.from), to: sel(r.to), ports: Object.freeze(mergeRanges(r.ports).map((p) => Object.freeze(p))) });
}

/** Sorted, with overlapping or adjacent ranges joined: [[5,9],[1,3],[4,4]] -> [[1,9]]. */
function mergeRanges(ranges: readonly PortRange[]): [number, number][] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const r of sorted) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
    else merged.push([r[0], r[1]]);
  }
  return merged;
}

function indexSide(rules: readonly PolicyRule[], words: number, side: (r: PolicyRule) => PolicySelector): SideIndex {
  const idx: SideIndex = { any: new Uint32Array(words), tags: new Map(), nodes: new Map() };
  const set = <K>(map: Map<K, Uint32Array>, key: K, r: number): void => {
    let bits = map.get(key);
    if (!bits) map.set(key, (bits = new Uint32Array(words)));
    bits[r >> 5]! |= 1 << (r & 31);
  };
  rules.forEach((rule, r) => {
    const s = side(rule);
    if (s.any) idx.any[r >> 5]! |= 1 << (r & 31);
    for (const t of s.tags) set(idx.tags, t, r);
    for (const n of s.nodes) set(idx.nodes, n, r);
  });
  return idx;
}

/** out = the rules whose side matches this node (by any, by its node id, by one of its tags). */
function collect(idx: SideIndex, tags: Iterable<string>, addr: Address, out: Uint32Array, words: number): void {
  for (let w = 0; w < words; w++) out[w] = idx.any[w]!;
  // Address entries match the node whatever the network field of either address: a member
  // of N is the same key as N:id and as 0:id (the node id is global, the network field only
  // says which network a route is in), so a rule naming 0:id, N:id or even M:id names that
  // one node. Matching on the whole address would make "N:id" and "0:id" differ for no
  // gain and silently miss traffic that arrives on the other form.
  const byNode = idx.nodes.get(addr.node);
  if (byNode) for (let w = 0; w < words; w++) out[w]! |= byNode[w]!;
  for (const t of tags) {
    const byTag = idx.tags.get(t);
    if (byTag) for (let w = 0; w < words; w++) out[w]! |= byTag[w]!;
  }
}

/** No policy: members reach members on every port (a new network just works). */
export const DEFAULT_POLICY: NetworkPolicy = new NetworkPolicy(undefined);

/**
 * May a member with `fromTags`/`fromAddress` reach our `port`, we being `toTags`/`toAddress`?
 * True iff some rule has a `from` entry matching the sender (by "*", one of its credential
 * tags, or its node), a `to` entry matching us, and the port in its ports. Both ends must
 * already be verified members of the network: the policy does not check membership.
 * A port outside 0..65535 is refused.
 *
 * It runs for every incoming stream and datagram, so it does not walk the rules: each side
 * ORs the precomputed rule bitsets of "*", of the node and of each tag (one map lookup
 * each), and only rules matching both sides get a binary search of their ports. Measured on
 * the 2-core test box with 256 rules (the unit test prints it each run): ~90 ns with one tag
 * a side, ~250 ns with 8 tags a side, ~1.8 µs when all 256 rules match both sides and none
 * has the port (about the worst a 16 KiB policy can make it do); the default policy ~10 ns.
 */
export function policyAllows(policy: NetworkPolicy, q: PolicyQuery): boolean {
  return policy.allows(q);
}

/**
 * Checks and normalises a tag list (credential tags at invite time, self-declared tags):
 * returns the distinct tags, sorted (so a signed certificate has one canonical form).
 * Upper case is REFUSED, not lower-cased: tags are compared byte for byte by every peer
 * and appear inside admin-signed certificates, so there must be only one spelling of each
 * (a signed "Worker" that a verifier lower-cases is a second, silent rule about bytes
 * nobody signed). The error names the bad tag and suggests the lower-case form.
 */
export function validateTags(tags: readonly string[]): string[] {
  if (!Array.isArray(tags)) throw new PilotError('BAD_ARGUMENT', 'tags must be a list of strings', TAG_HINT);
  const out = new Set<string>();
  for (const t of tags) out.add(validateTag(t));
  if (out.size > MAX_TAGS) throw new PilotError('BAD_ARGUMENT', `${out.size} distinct tags, at most ${MAX_TAGS}`, TAG_HINT);
  return [...out].sort();
}

/** One tag (e.g. a `find --tag` argument): returned unchanged if valid. */
export function validateTag(tag: string): string {
  if (typeof tag !== 'string') throw new PilotError('BAD_ARGUMENT', `a tag must be a string (got ${typeof tag})`, TAG_HINT);
  if (TAG_RE.test(tag)) return tag;
  if (tag.length === 0 || tag.length > TAG_MAX_LENGTH) {
    throw new PilotError('BAD_ARGUMENT', `invalid tag ${quote(tag)}: ${tag.length} characters, a tag has 1-${TAG_MAX_LENGTH}`, TAG_HINT);
  }
  const lower = tag.toLowerCase();
  const hint = TAG_RE.test(lower) ? `tags are lower case: ${lower}` : TAG_HINT;
  throw new PilotError('BAD_ARGUMENT', `invalid tag ${quote(tag)}: only a-z, 0-9 and "-" are allowed`, hint);
}

/**
 * Canonical JSON of the normalised policy, one rule a line: for showing what a policy means
 * (and the default policy, which has no text). It is not what gets signed or stored: that is
 * the admin's text, verbatim. parsePolicy(formatPolicy(p)) has the same rules as p. Nodes are
 * written on network 0 (an address entry names the node whatever its network field).
 */
export function formatPolicy(policy: NetworkPolicy): string {
  if (policy.rules === undefined) return '{}\n';
  if (policy.rules.length === 0) return '{ "rules": [] }\n';
  const list = (items: readonly (string | number)[]): string => `[${items.map((x) => JSON.stringify(x)).join(', ')}]`;
  const sel = (s: PolicySelector): string[] => (s.any ? ['*'] : [...s.tags.map((t) => `tag:${t}`), ...s.nodes.map((n) => formatAddress(makeAddress(0, n)))]);
  const ports = (p: readonly PortRange[]): (string | number)[] =>
    p.length === 1 && p[0]![0] === 0 && p[0]![1] === 0xffff ? ['*'] : p.map(([lo, hi]) => (lo === hi ? lo : `${lo}-${hi}`));
  const lines = policy.rules.map((r) => `    { "from": ${list(sel(r.from))}, "to": ${list(sel(r.to))}, "ports": ${list(ports(r.ports))} }`);
  return `{\n  "rules": [\n${lines.join(',\n')}\n  ]\n}\n`;
}

// ---------------------------------------------------------------------------------------
// Parsing

const TOP_KEYS = ['rules'] as const;
const RULE_KEYS = ['from', 'to', 'ports'] as const;

/**
 * Parses and checks a policy text; `source` names it in errors ("policy.json:4:15: ...").
 * Every error is BAD_ARGUMENT with file:line:column (1-based; columns count UTF-16 code
 * units, as VS Code does) and the field path, e.g.
 * `policy.json:4:15: rules[0].ports[1]: "70000" is not a port (1-65535)`.
 * Unknown keys are errors: a typo ("prots") must not silently change what is allowed.
 */
export function parsePolicy(text: string, source = 'policy.json'): NetworkPolicy {
  if (typeof text !== 'string') throw new PilotError('BAD_ARGUMENT', `${source}: a policy is JSON text`, POLICY_HINT);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > POLICY_MAX_BYTES) {
    throw new PilotError(
      'BAD_ARGUMENT',
      `${source}: the policy is ${bytes} bytes, at most ${POLICY_MAX_BYTES} (16 KiB)`,
      'split it into fewer, wider rules (tags)',
    );
  }
  checkDepth(text, source);
  const errors: ParseError[] = [];
  const root = jsonc().parseTree(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
  if (errors.length > 0 || root === undefined) throw syntaxError(text, source, errors[0]);
  const fail = (node: Node, path: JSONPath, message: string, hint = POLICY_HINT): never => {
    throw new PilotError('BAD_ARGUMENT', `${source}:${lineColumn(text, node.offset)}: ${path.length > 0 ? `${formatPath(path)}: ` : ''}${message}`, hint);
  };

  if (root.type !== 'object') fail(root, [], `the policy must be a JSON object, not ${describe(root)}`);
  const top = objectFields(root, [], TOP_KEYS, fail);
  const rulesNode = top.get('rules');
  if (rulesNode === undefined) return DEFAULT_POLICY;
  if (rulesNode.type !== 'array') fail(rulesNode, ['rules'], `must be a list of rules, not ${describe(rulesNode)}`);
  const ruleNodes = rulesNode.children ?? [];
  if (ruleNodes.length > POLICY_MAX_RULES) {
    fail(
      ruleNodes[POLICY_MAX_RULES]!,
      ['rules', POLICY_MAX_RULES],
      `too many rules: ${ruleNodes.length}, at most ${POLICY_MAX_RULES}`,
      'merge rules with tags',
    );
  }
  const rules = ruleNodes.map((node, i): PolicyRule => {
    const path = ['rules', i];
    if (node.type !== 'object') fail(node, path, `a rule must be an object, not ${describe(node)}`);
    const f = objectFields(node, path, RULE_KEYS, fail);
    for (const k of RULE_KEYS) if (!f.has(k)) fail(node, path, `missing "${k}"`);
    return {
      from: parseSelector(f.get('from')!, [...path, 'from'], fail),
      to: parseSelector(f.get('to')!, [...path, 'to'], fail),
      ports: parsePorts(f.get('ports')!, [...path, 'ports'], fail),
    };
  });
  return new NetworkPolicy(rules);
}

/** A valid policy nests 4 deep ({"rules": [{"from": [...]}]}); room for wrong but honest shapes. */
const MAX_DEPTH = 16;

/**
 * jsonc-parser's parser recurses once per bracket, so 16 KiB of "[" would overflow the stack
 * (a RangeError, in the rendezvous too, which parses what any network admin uploads).
 * Its scanner is a loop: count brackets with it first.
 */
function checkDepth(text: string, source: string): void {
  // SyntaxKind is a const enum (its values are part of jsonc-parser's API); isolated
  // modules cannot read it, so its numbers are written here.
  const OPEN_BRACE = 1;
  const CLOSE_BRACE = 2;
  const OPEN_BRACKET = 3;
  const CLOSE_BRACKET = 4;
  const EOF = 17;
  const scanner = jsonc().createScanner(text, true);
  let depth = 0;
  for (let t: number = scanner.scan(); t !== EOF; t = scanner.scan()) {
    if (t === OPEN_BRACE || t === OPEN_BRACKET) {
      if (++depth > MAX_DEPTH) {
        throw new PilotError('BAD_ARGUMENT', `${source}:${lineColumn(text, scanner.getTokenOffset())}: nested deeper than ${MAX_DEPTH} levels`, POLICY_HINT);
      }
    } else if (t === CLOSE_BRACE || t === CLOSE_BRACKET) depth--;
  }
}

type Fail = (node: Node, path: JSONPath, message: string, hint?: string) => never;

/** An object's fields by key; unknown and repeated keys are errors (at the key). */
function objectFields(node: Node, path: JSONPath, allowed: readonly string[], fail: Fail): Map<string, Node> {
  const out = new Map<string, Node>();
  for (const prop of node.children ?? []) {
    const [keyNode, valueNode] = prop.children as [Node, Node];
    const key = keyNode.value as string;
    if (!allowed.includes(key)) {
      const near = allowed.find((k) => editDistance(k, key) <= 2);
      fail(
        keyNode,
        [...path, key],
        `unknown key${near ? ` (did you mean "${near}"?)` : ''}`,
        `${path.length === 0 ? 'the policy' : 'a rule'} has only ${allowed.map((k) => `"${k}"`).join(', ')}`,
      );
    }
    if (out.has(key)) fail(keyNode, [...path, key], 'repeated key (JSON readers disagree on which one counts)');
    out.set(key, valueNode);
  }
  return out;
}

/** Elements of a from/to/ports list, checked for type and size. */
function listItems(node: Node, path: JSONPath, what: string, fail: Fail): Node[] {
  if (node.type !== 'array') fail(node, path, `must be a list of ${what}, not ${describe(node)}`);
  const items = node.children ?? [];
  if (items.length === 0) fail(node, path, `must not be empty (a rule with no ${what} allows nothing: delete the rule instead)`);
  if (items.length > POLICY_MAX_LIST) {
    fail(
      items[POLICY_MAX_LIST]!,
      [...path, POLICY_MAX_LIST],
      `too many entries: ${items.length}, at most ${POLICY_MAX_LIST} per list`,
      'use tags or port ranges',
    );
  }
  return items;
}

function parseSelector(node: Node, path: JSONPath, fail: Fail): PolicySelector {
  const tags = new Set<string>();
  const nodes = new Set<number>();
  let any = false;
  for (const [i, item] of listItems(node, path, 'members', fail).entries()) {
    const p = [...path, i];
    if (item.type !== 'string') fail(item, p, `${describe(item)} is not a member: use "tag:<name>", "*" or a node address`);
    const s = item.value as string;
    if (s === '*') any = true;
    else if (s.startsWith('tag:')) {
      const tag = s.slice(4);
      if (!TAG_RE.test(tag)) {
        const lower = tag.toLowerCase();
        fail(item, p, `${quote(s)} is not a valid tag`, TAG_RE.test(lower) ? `tags are lower case: tag:${lower}` : TAG_HINT);
      }
      tags.add(tag);
    } else if (/^\d/.test(s)) {
      let a: Address;
      try {
        a = parseAddress(s);
      } catch (e) {
        fail(item, p, `${quote(s)} is not a node address: ${(e as Error).message}`, (e as PilotError).hint);
      }
      nodes.add(a.node);
    } else {
      const hint = /^tag:/i.test(s) ? 'write the "tag:" prefix in lower case' : POLICY_HINT;
      fail(item, p, `${quote(s)} is not a member: use "tag:<name>", "*" or a node address N:XXXX.YYYY.YYYY`, hint);
    }
  }
  const byNumber = (a: number, b: number) => a - b;
  return any ? { any: true, tags: [], nodes: [] } : { any: false, tags: [...tags].sort(), nodes: [...nodes].sort(byNumber) };
}

const PORT_TEXT = /^(\d{1,5})(?:-(\d{1,5}))?$/;

function parsePorts(node: Node, path: JSONPath, fail: Fail): PortRange[] {
  const ranges: [number, number][] = [];
  for (const [i, item] of listItems(node, path, 'ports', fail).entries()) {
    const p = [...path, i];
    const raw = clip(JSON.stringify(item.value) ?? '');
    const port = (n: number): number => {
      if (!Number.isInteger(n) || n < 1 || n > 0xffff) fail(item, p, `${raw} is not a port (1-65535)`, 'ports are 1-65535, "a-b" ranges or "*"');
      return n;
    };
    if (item.type === 'number') {
      const n = port(item.value as number);
      ranges.push([n, n]);
    } else if (item.type === 'string' && item.value === '*') {
      ranges.push([0, 0xffff]); // every port, 0 included: "*" means the same as no port rule at all
    } else if (item.type === 'string') {
      const m = PORT_TEXT.exec(item.value as string);
      if (!m) fail(item, p, `${raw} is not a port or range: write 80, "1000-1003" or "*"`, 'ports are 1-65535, "a-b" ranges or "*"');
      const lo = port(Number(m![1]));
      const hi = m![2] === undefined ? lo : port(Number(m![2]));
      if (hi < lo) fail(item, p, `${raw} is an empty range: write the lower port first ("${hi}-${lo}")`, 'a range "a-b" has a <= b');
      ranges.push([lo, hi]);
    } else {
      fail(item, p, `${describe(item)} is not a port: write 80, "1000-1003" or "*"`);
    }
  }
  return mergeRanges(ranges);
}

// ---------------------------------------------------------------------------------------
// Error helpers

/** Readable text for jsonc-parser's error codes (what JSON allows, in the admin's words). */
const SYNTAX: Record<string, string> = {
  InvalidSymbol: 'unexpected',
  InvalidNumberFormat: 'invalid number',
  PropertyNameExpected: 'expected a key in double quotes',
  ValueExpected: 'expected a value',
  ColonExpected: 'expected ":" after the key',
  CommaExpected: 'expected "," between entries',
  CloseBraceExpected: 'expected "}"',
  CloseBracketExpected: 'expected "]"',
  EndOfFileExpected: 'unexpected text after the end of the policy',
  InvalidCommentToken: 'comments are not allowed (a policy is plain JSON)',
  UnexpectedEndOfComment: 'comments are not allowed (a policy is plain JSON)',
  UnexpectedEndOfString: 'unterminated string',
  UnexpectedEndOfNumber: 'incomplete number',
  InvalidUnicode: 'invalid \\u escape',
  InvalidEscapeCharacter: 'invalid escape in a string',
  InvalidCharacter: 'control character in a string (write it as an escape, e.g. \\t)',
};

function syntaxError(text: string, source: string, err: ParseError | undefined): PilotError {
  const hint = 'a policy is plain JSON: double-quoted keys and strings, no comments, no trailing commas';
  if (err === undefined) return new PilotError('BAD_ARGUMENT', `${source}:1:1: syntax error: expected a value`, hint);
  let offset = err.offset;
  const name = jsonc().printParseErrorCode(err.error);
  let message = SYNTAX[name] ?? name;
  if (name === 'InvalidSymbol') message = `unexpected ${quote(text.slice(offset, offset + Math.max(1, err.length)))}`;
  // A closing bracket where a key or value was expected, right after a comma: say so.
  let trailingComma = false;
  if ((name === 'PropertyNameExpected' || name === 'ValueExpected') && (text[offset] === '}' || text[offset] === ']')) {
    let j = offset - 1;
    while (j >= 0 && /\s/.test(text[j]!)) j--;
    if (text[j] === ',') {
      offset = j;
      message = 'trailing comma (JSON allows none)';
      trailingComma = true;
    }
  }
  if (offset >= text.length && name !== 'EndOfFileExpected') message = `unexpected end of text: ${message}`;
  // where a key is expected, getLocation names it "": leave that out
  const path = jsonc()
    .getLocation(text, offset)
    .path.filter((seg) => seg !== '');
  if (trailingComma) path.pop(); // the comma belongs to the list or object, not to its last entry
  return new PilotError(
    'BAD_ARGUMENT',
    `${source}:${lineColumn(text, offset)}: ${path.length > 0 ? `${formatPath(path)}: ` : ''}syntax error: ${message}`,
    hint,
  );
}

/** "line:column", both from 1; \n, \r\n and \r end a line. */
function lineColumn(text: string, offset: number): string {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || (c === 13 && text.charCodeAt(i + 1) !== 10)) {
      line++;
      start = i + 1;
    }
  }
  return `${line}:${offset - start + 1}`;
}

/** rules[0].ports[1], rules[2]["odd key"] */
function formatPath(path: JSONPath): string {
  let s = '';
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(seg)) s += s === '' ? seg : `.${seg}`;
    else s += `[${quote(seg)}]`;
  }
  return s;
}

function describe(node: Node): string {
  switch (node.type) {
    case 'object':
      return 'an object';
    case 'array':
      return 'a list';
    case 'null':
      return 'null';
    default:
      return clip(JSON.stringify(node.value) ?? String(node.value));
  }
}

/** A string as JSON, clipped, with invisible characters (a byte order mark, say) escaped too. */
function quote(s: string): string {
  return JSON.stringify(clip(s)).replace(
    /[\u007f-\u009f\u00ad\u200b-\u200f\u2028\u2029\u2060\ufeff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

function clip(s: string): string {
  return s.length > 48 ? `${s.slice(0, 45)}...` : s;
}

/** Levenshtein distance, for "did you mean" (keys are a few characters long). */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2 || b.length > 32) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}
