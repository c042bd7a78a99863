// The network policy language (issue 18): parsing with positions, limits, normalisation,
// evaluation tables, and a property check of the indexed evaluator against a naive
// reference written from the documented meaning (docs/FLEETS.md "Policy").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_POLICY,
  MAX_TAGS,
  POLICY_MAX_BYTES,
  POLICY_MAX_LIST,
  POLICY_MAX_RULES,
  NetworkPolicy,
  formatPolicy,
  parsePolicy,
  policyAllows,
  validateTag,
  validateTags,
} from '../../src/registry/network-policy.ts';
import { PilotError } from '../../src/util/errors.ts';
import { formatAddress, makeAddress, parseAddress, type Address } from '../../src/wire/address.ts';

/** The PilotError parsePolicy throws for `text` (fails the test if it parses). */
function policyError(text: string, source?: string): PilotError {
  try {
    parsePolicy(text, source);
  } catch (e) {
    assert.ok(e instanceof PilotError, String(e));
    assert.equal(e.code, 'BAD_ARGUMENT');
    return e;
  }
  assert.fail(`parsed, but should not have: ${text}`);
}

/** "line:column" of the nth occurrence of `needle` in `text`, computed independently of the module. */
function at(text: string, needle: string, nth = 0): string {
  let i = -1;
  for (let k = 0; k <= nth; k++) {
    i = text.indexOf(needle, i + 1);
    assert.ok(i >= 0, `${needle} not in text`);
  }
  const before = text.slice(0, i).split(/\r\n|\r|\n/);
  return `${before.length}:${before[before.length - 1]!.length + 1}`;
}

const A = (network: number, node: number): Address => makeAddress(network, node);
const PLANNER = A(0, 0x10);
const WORKER = A(0, 0x20);

function allows(p: NetworkPolicy, fromTags: string[], fromAddress: Address, toTags: string[], toAddress: Address, port: number): boolean {
  return policyAllows(p, { fromTags, fromAddress, toTags, toAddress, port });
}

// ------------------------------------------------------------------ parsing: success

const EXAMPLE = `{ "rules": [ { "from": ["tag:planner"], "to": ["tag:worker"], "ports": ["1000-1003", 80] } ] }`;

test('the design example parses into sorted, merged, normalised rules', () => {
  const p = parsePolicy(EXAMPLE);
  assert.deepEqual(p.rules, [
    {
      from: { any: false, tags: ['planner'], nodes: [] },
      to: { any: false, tags: ['worker'], nodes: [] },
      ports: [
        [80, 80],
        [1000, 1003],
      ],
    },
  ]);
});

test('no "rules" key is the default policy (allow all); "rules": [] denies all', () => {
  assert.equal(parsePolicy('{}'), DEFAULT_POLICY);
  assert.equal(parsePolicy(' \r\n{ }\n'), DEFAULT_POLICY);
  assert.equal(DEFAULT_POLICY.rules, undefined);
  assert.deepEqual(parsePolicy('{"rules": []}').rules, []);
});

test('normalisation: duplicates dropped, "*" swallows a side, N:id and 0:id are one node, ranges merged', () => {
  const p = parsePolicy(
    JSON.stringify({
      rules: [
        {
          from: ['tag:b', 'tag:a', 'tag:b', '7:0007.0000.002A', '0:0000.0000.002a', '0:0000.0000.0001'],
          to: ['tag:x', '*', '0:0000.0000.0005'],
          ports: ['10-20', 15, '21-30', 5, '40-50', '45', 50, '1-1', 65535],
        },
        { from: ['*'], to: ['*'], ports: [80, '*'] },
      ],
    }),
  );
  assert.deepEqual(p.rules, [
    {
      from: { any: false, tags: ['a', 'b'], nodes: [1, 0x2a] },
      to: { any: true, tags: [], nodes: [] },
      ports: [
        [1, 1],
        [5, 5],
        [10, 30],
        [40, 50],
        [65535, 65535],
      ],
    },
    { from: { any: true, tags: [], nodes: [] }, to: { any: true, tags: [], nodes: [] }, ports: [[0, 65535]] },
  ]);
});

test('single ports may be written as numbers or strings; 80.0 is the number 80', () => {
  const p = parsePolicy('{"rules":[{"from":["*"],"to":["*"],"ports":["80", 81.0, "1", "65535", "1-65535"]}]}');
  assert.deepEqual(p.rules![0]!.ports, [[1, 65535]]);
});

test('the parsed policy is immutable', () => {
  const p = parsePolicy(EXAMPLE);
  assert.ok(Object.isFrozen(p.rules));
  assert.ok(Object.isFrozen(p.rules![0]));
  assert.ok(Object.isFrozen(p.rules![0]!.from.tags));
  assert.ok(Object.isFrozen(p.rules![0]!.ports[0]));
  assert.throws(() => (p.rules as any).push(p.rules![0]), TypeError);
  assert.throws(() => ((p.rules![0]!.from.tags as string[])[0] = 'worker'), TypeError);
  assert.throws(() => ((p.rules![0]!.ports[0] as unknown as number[])[1] = 65535), TypeError);
  assert.throws(() => ((p as any).rules = undefined), TypeError);
  assert.equal(allows(p, ['planner'], PLANNER, ['worker'], WORKER, 81), false);
});

// ------------------------------------------------------------------ parsing: errors

test('the design error example, exactly: file:line:column, field path, quoted value', () => {
  const text = '{"rules": [\n {"from": ["tag:planner"],\n  "to": ["tag:worker"],\n  "ports": [8,"70000"]}\n]}\n';
  const e = policyError(text);
  assert.equal(e.message, 'policy.json:4:15: rules[0].ports[1]: "70000" is not a port (1-65535)');
  assert.match(e.hint!, /1-65535/);
  assert.equal(policyError(text, 'fleet/acl.json').message, 'fleet/acl.json:4:15: rules[0].ports[1]: "70000" is not a port (1-65535)');
});

/** A rule on lines 3-5 of a pretty policy; `patch` edits its text. */
function ruleText(from: string, to: string, ports: string, extra = ''): string {
  return `{\n  "rules": [\n    { "from": ${from},\n      "to": ${to},\n      "ports": ${ports}${extra} }\n  ]\n}\n`;
}

test('structure errors: message, path and position of the offending key or value', () => {
  const cases: [text: string, needle: string, nth: number, message: string][] = [
    ['[]', '[', 0, 'the policy must be a JSON object, not a list'],
    ['"rules"', '"', 0, 'the policy must be a JSON object, not "rules"'],
    ['{"rules": {}}', '{}', 0, 'rules: must be a list of rules, not an object'],
    ['{"rules": null}', 'null', 0, 'rules: must be a list of rules, not null'],
    ['{"rules": [1]}', '1', 0, 'rules[0]: a rule must be an object, not 1'],
    ['{"rules": [{}, []]}', '{}', 0, 'rules[0]: missing "from"'],
    ['{"rules": [{"from": ["*"], "to": ["*"], "ports": [1]}, []]}', '[]', 0, 'rules[1]: a rule must be an object, not a list'],
    ['{"rules": [{"from": ["*"], "to": ["*"]}]}', '{"from', 0, 'rules[0]: missing "ports"'],
    ['{"rules": [], "rulez": []}', '"rulez"', 0, 'rulez: unknown key (did you mean "rules"?)'],
    ['{"acls": []}', '"acls"', 0, 'acls: unknown key'],
    ['{"rules": [], "rules": []}', '"rules"', 1, 'rules: repeated key (JSON readers disagree on which one counts)'],
    [ruleText('["*"]', '["*"]', '[80]', ', "prots": [81]'), '"prots"', 0, 'rules[0].prots: unknown key (did you mean "ports"?)'],
    [ruleText('["*"]', '["*"]', '[80]', ', "deny": true'), '"deny"', 0, 'rules[0].deny: unknown key'],
    [ruleText('["*"]', '["*"]', '[80]', ', "from": ["*"]'), '"from"', 1, 'rules[0].from: repeated key (JSON readers disagree on which one counts)'],
    [ruleText('["*"]', '["*"]', '[80]', ', "a b": 1'), '"a b"', 0, 'rules[0]["a b"]: unknown key'],
    [ruleText('"*"', '["*"]', '[80]'), '"*"', 0, 'rules[0].from: must be a list of members, not "*"'],
    [ruleText('["*"]', '[]', '[80]'), '[]', 0, 'rules[0].to: must not be empty (a rule with no members allows nothing: delete the rule instead)'],
    [ruleText('["*"]', '["*"]', '[]'), '[]', 0, 'rules[0].ports: must not be empty (a rule with no ports allows nothing: delete the rule instead)'],
    [ruleText('["*"]', '["*"]', '80'), '80', 0, 'rules[0].ports: must be a list of ports, not 80'],
    [ruleText('["*", 7]', '["*"]', '[80]'), '7', 0, 'rules[0].from[1]: 7 is not a member: use "tag:<name>", "*" or a node address'],
    [ruleText('["*"]', '[null]', '[80]'), 'null', 0, 'rules[0].to[0]: null is not a member: use "tag:<name>", "*" or a node address'],
    [
      ruleText('["planner"]', '["*"]', '[80]'),
      '"planner"',
      0,
      'rules[0].from[0]: "planner" is not a member: use "tag:<name>", "*" or a node address N:XXXX.YYYY.YYYY',
    ],
    [
      ruleText('["group:ops"]', '["*"]', '[80]'),
      '"group:ops"',
      0,
      'rules[0].from[0]: "group:ops" is not a member: use "tag:<name>", "*" or a node address N:XXXX.YYYY.YYYY',
    ],
    [ruleText('["tag:"]', '["*"]', '[80]'), '"tag:"', 0, 'rules[0].from[0]: "tag:" is not a valid tag'],
    [ruleText('["tag:Planner"]', '["*"]', '[80]'), '"tag:', 0, 'rules[0].from[0]: "tag:Planner" is not a valid tag'],
    [ruleText('["*"]', '["tag:gpu_a100"]', '[80]'), '"tag:', 0, 'rules[0].to[0]: "tag:gpu_a100" is not a valid tag'],
    [ruleText('["*"]', `["tag:${'x'.repeat(33)}"]`, '[80]'), '"tag:', 0, `rules[0].to[0]: "tag:${'x'.repeat(33)}" is not a valid tag`],
    [
      ruleText('["*"]', '["1:0000.0000.002A"]', '[80]'),
      '"1:',
      0,
      'rules[0].to[0]: "1:0000.0000.002A" is not a node address: address network 1 does not match its first group 0000',
    ],
    [ruleText('["*"]', '["0:2A"]', '[80]'), '"0:', 0, 'rules[0].to[0]: "0:2A" is not a node address: malformed address: "0:2A"'],
    [ruleText('["*"]', '["*"]', '[0]'), '0', 0, 'rules[0].ports[0]: 0 is not a port (1-65535)'],
    [ruleText('["*"]', '["*"]', '[80, 65536]'), '65536', 0, 'rules[0].ports[1]: 65536 is not a port (1-65535)'],
    [ruleText('["*"]', '["*"]', '[-1]'), '-1', 0, 'rules[0].ports[0]: -1 is not a port (1-65535)'],
    [ruleText('["*"]', '["*"]', '[80.5]'), '80.5', 0, 'rules[0].ports[0]: 80.5 is not a port (1-65535)'],
    [ruleText('["*"]', '["*"]', '[1e9]'), '1e9', 0, 'rules[0].ports[0]: 1000000000 is not a port (1-65535)'],
    [ruleText('["*"]', '["*"]', '["0"]'), '"0"', 0, 'rules[0].ports[0]: "0" is not a port (1-65535)'],
    [ruleText('["*"]', '["*"]', '["0-10"]'), '"0-10"', 0, 'rules[0].ports[0]: "0-10" is not a port (1-65535)'],
    [ruleText('["*"]', '["*"]', '["1-65536"]'), '"1-', 0, 'rules[0].ports[0]: "1-65536" is not a port (1-65535)'],
    [ruleText('["*"]', '["*"]', '["1003-1000"]'), '"1003', 0, 'rules[0].ports[0]: "1003-1000" is an empty range: write the lower port first ("1000-1003")'],
    [ruleText('["*"]', '["*"]', '["http"]'), '"http"', 0, 'rules[0].ports[0]: "http" is not a port or range: write 80, "1000-1003" or "*"'],
    [ruleText('["*"]', '["*"]', '[" 80"]'), '" 80"', 0, 'rules[0].ports[0]: " 80" is not a port or range: write 80, "1000-1003" or "*"'],
    [ruleText('["*"]', '["*"]', '["1000 - 1003"]'), '"1000', 0, 'rules[0].ports[0]: "1000 - 1003" is not a port or range: write 80, "1000-1003" or "*"'],
    [ruleText('["*"]', '["*"]', '["80-"]'), '"80-"', 0, 'rules[0].ports[0]: "80-" is not a port or range: write 80, "1000-1003" or "*"'],
    [ruleText('["*"]', '["*"]', '["-80"]'), '"-80"', 0, 'rules[0].ports[0]: "-80" is not a port or range: write 80, "1000-1003" or "*"'],
    [ruleText('["*"]', '["*"]', '["any"]'), '"any"', 0, 'rules[0].ports[0]: "any" is not a port or range: write 80, "1000-1003" or "*"'],
    [ruleText('["*"]', '["*"]', '[true]'), 'true', 0, 'rules[0].ports[0]: true is not a port: write 80, "1000-1003" or "*"'],
    [ruleText('["*"]', '["*"]', '[[80]]'), '[80]', 0, 'rules[0].ports[0]: a list is not a port: write 80, "1000-1003" or "*"'],
    [ruleText('["*"]', '["*"]', '[{"port": 80}]'), '{"port"', 0, 'rules[0].ports[0]: an object is not a port: write 80, "1000-1003" or "*"'],
  ];
  for (const [text, needle, nth, message] of cases) {
    const e = policyError(text);
    const where = at(text, needle, nth);
    assert.equal(e.message.slice(0, e.message.indexOf(': ') + 2), `policy.json:${where}: `, text);
    assert.ok(e.message.startsWith(`policy.json:${where}: ${message}`), `${e.message}\n  expected: policy.json:${where}: ${message}`);
    assert.ok(e.hint, `no hint for ${text}`);
  }
});

test('structure error positions, hard-coded for a pretty-printed file', () => {
  // keys are checked before values: a misspelt key is reported even when a value before it is wrong too
  const text0 = ruleText('["tag:planner", "tag:Worker"]', '["tag:worker"]', '["1000-1003", 80]', ', "prots": [81]');
  assert.equal(policyError(text0).message, 'policy.json:5:35: rules[0].prots: unknown key (did you mean "ports"?)');
  const text = ruleText('["tag:planner", "tag:Worker"]', '["tag:worker"]', '["1000-1003", 80]');
  assert.equal(policyError(text).message, 'policy.json:3:31: rules[0].from[1]: "tag:Worker" is not a valid tag');
  assert.equal(policyError(text).hint, 'tags are lower case: tag:worker');
  const text2 = ruleText('["tag:planner"]', '["tag:worker"]', '["1000-1003", 80]', ', "prots": [81]');
  assert.equal(policyError(text2).message, 'policy.json:5:35: rules[0].prots: unknown key (did you mean "ports"?)');
  assert.equal(policyError(text2).hint, 'a rule has only "from", "to", "ports"');
  assert.equal(policyError('{\n  "rules": [\n    {}\n  ]\n}').message, 'policy.json:3:5: rules[0]: missing "from"');
  assert.equal(policyError(ruleText('["TAG:x"]', '["*"]', '[1]')).hint, 'write the "tag:" prefix in lower case');
});

test('syntax errors: every kind names line and column (and the field when there is one)', () => {
  const s = (text: string, where: string, message: string): void => {
    const e = policyError(text);
    assert.equal(e.message, `policy.json:${where}: ${message}`, JSON.stringify(text));
    assert.match(e.hint!, /plain JSON/);
  };
  s('', '1:1', 'syntax error: unexpected end of text: expected a value');
  s('  \n ', '2:2', 'syntax error: unexpected end of text: expected a value');
  s('{"rules": [],}', '1:13', 'syntax error: trailing comma (JSON allows none)');
  s('{"rules": [\n  {"from": ["*"], "to": ["*"], "ports": [80,\n]}]}', '2:44', 'rules[0].ports: syntax error: trailing comma (JSON allows none)');
  s('{"rules": [{"from": ["*"], "to": ["*"], "ports": [80]},\n  ]}', '1:55', 'rules: syntax error: trailing comma (JSON allows none)');
  s('{"rules": [] // none\n}', '1:14', 'rules: syntax error: comments are not allowed (a policy is plain JSON)');
  s('{\n  /* allow all */\n}', '2:3', 'syntax error: comments are not allowed (a policy is plain JSON)');
  s("{'rules': []}", '1:2', `syntax error: unexpected "'rules'"`);
  s('{rules: []}', '1:2', 'syntax error: unexpected "rules"');
  s('{"rules": [{"from": ["*"], "to": ["*"], "ports": [NaN]}]}', '1:51', 'rules[0].ports[0]: syntax error: unexpected "NaN"');
  s('\uFEFF{}', '1:1', 'syntax error: unexpected "\\ufeff"');
  s('{"rules" []}', '1:10', 'rules: syntax error: expected ":" after the key');
  s('{"rules": [{"from": ["*"] "to": ["*"]}]}', '1:27', 'rules[0].to: syntax error: expected "," between entries');
  s('{"rules": [{"from": ["*" "tag:a"]}]}', '1:26', 'rules[0].from[0]: syntax error: expected "," between entries');
  s('{"rules": [', '1:12', 'rules[0]: syntax error: unexpected end of text: expected "]"');
  s('{"rules": []', '1:13', 'rules: syntax error: unexpected end of text: expected "}"');
  s('{"rules": [{"from": ["*"]}', '1:27', 'rules[0]: syntax error: unexpected end of text: expected "]"');
  s('{"rules": []}\n{}', '2:1', 'syntax error: unexpected text after the end of the policy');
  s('{"rules": []} x', '1:15', 'syntax error: unexpected "x"');
  s('{"rules": [{"from": ["tag:a]}]}', '1:22', 'rules[0].from[0]: syntax error: unterminated string');
  s('{"rules": [{"from": ["*"], "to": ["*"], "ports": [1.]}]}', '1:51', 'rules[0].ports[0]: syntax error: incomplete number');
  s('{"rules": [{"from": ["*"], "to": ["*"], "ports": [1e]}]}', '1:51', 'rules[0].ports[0]: syntax error: incomplete number');
  s('{"rules": [{"from": ["tag:\\u00"]}]}', '1:22', 'rules[0].from[0]: syntax error: invalid \\u escape');
  s('{"rules": [{"from": ["tag:\\q"]}]}', '1:22', 'rules[0].from[0]: syntax error: invalid escape in a string');
  s('{"rules": [{"from": ["tag:\ta"]}]}', '1:22', 'rules[0].from[0]: syntax error: control character in a string (write it as an escape, e.g. \\t)');
  s('{"rules": [{"from": ["*"], "to": ["*"], "ports": [01]}]}', '1:52', 'rules[0].ports[0]: syntax error: expected "," between entries');
  // line breaks: \n, \r\n and \r each end a line
  s('{\r\n"rules"\r\n[]}', '3:1', 'rules: syntax error: expected ":" after the key');
  s('{\r"rules"\r[]}', '3:1', 'rules: syntax error: expected ":" after the key');
});

test('jsonc-parser, as configured, accepts exactly what JSON.parse accepts', () => {
  const base = (ports: string) => `{"rules": [{"from": ["*"], "to": ["*"], "ports": ${ports}}]}`;
  const texts = [
    base('[80]'),
    base('[80,]'),
    base('[080]'),
    base('[-0]'),
    base('[8e1]'),
    base('[8E+1]'),
    base('[.8]'),
    base('[+80]'),
    base('[0x50]'),
    base('[Infinity]'),
    base("['80']"),
    base('["8\\u0030"]'),
    base('["8\\x30"]'),
    base('[80] /**/'),
    `\uFEFF${base('[80]')}`,
    `\u00a0${base('[80]')}`,
    `\v${base('[80]')}`,
    ` \t\r\n${base('[80]')} \t\r\n`,
    `${base('[80]')}\u0000`,
    base('[80]').replace('"from"', 'from'),
    base('[80]').replace('"*"', '"\u2028*"'),
  ];
  for (const text of texts) {
    let jsonOk = true;
    try {
      JSON.parse(text);
    } catch {
      jsonOk = false;
    }
    let syntaxOk = true;
    try {
      parsePolicy(text);
    } catch (e) {
      syntaxOk = !(e as Error).message.includes('syntax error');
    }
    assert.equal(syntaxOk, jsonOk, JSON.stringify(text));
  }
});

test('deep nesting is refused before the (recursive) parser sees it: no stack overflow', () => {
  assert.equal(policyError('['.repeat(16000)).message, 'policy.json:1:17: nested deeper than 16 levels');
  assert.equal(policyError(`{"rules":${'['.repeat(8000)}${']'.repeat(8000)}}`).message, 'policy.json:1:25: nested deeper than 16 levels');
  const deep = `{"rules": [{"from": [${'{"a":'.repeat(2500)}1${'}'.repeat(2500)}]}]}`;
  assert.equal(policyError(deep).message, 'policy.json:1:82: nested deeper than 16 levels');
  // brackets inside strings do not count
  assert.match(policyError(`{"rules": [{"from": ["${'['.repeat(100)}"], "to": ["*"], "ports": [1]}]}`).message, /^policy\.json:1:22: rules\[0\]\.from\[0\]: /);
  // 16 levels is still parsed (and refused for its shape, with a position)
  const sixteen = `{"rules": [{"from": [${'['.repeat(12)}${']'.repeat(12)}], "to": ["*"], "ports": [1]}]}`;
  assert.equal(policyError(sixteen).message, 'policy.json:1:22: rules[0].from[0]: a list is not a member: use "tag:<name>", "*" or a node address');
});

test('non-text input is refused', () => {
  assert.throws(
    () => parsePolicy(42 as any),
    (e: PilotError) => e.code === 'BAD_ARGUMENT' && e.message === 'policy.json: a policy is JSON text',
  );
});

// ------------------------------------------------------------------ limits

test(`limit: ${POLICY_MAX_BYTES} bytes of UTF-8 (not characters)`, () => {
  const body = '{"rules": []}';
  const exact = body + ' '.repeat(POLICY_MAX_BYTES - body.length);
  assert.deepEqual(parsePolicy(exact).rules, []);
  assert.equal(policyError(`${exact} `).message, `policy.json: the policy is ${POLICY_MAX_BYTES + 1} bytes, at most ${POLICY_MAX_BYTES} (16 KiB)`);
  // 'é' is 2 bytes: fewer characters than the limit, more bytes
  const wide = `{"rules": [], "${'é'.repeat(POLICY_MAX_BYTES / 2)}": 1}`;
  assert.ok(wide.length < POLICY_MAX_BYTES);
  assert.match(policyError(wide).message, /^policy\.json: the policy is \d+ bytes, at most 16384 \(16 KiB\)$/);
});

test(`limit: ${POLICY_MAX_RULES} rules; the error points at the first rule too many`, () => {
  const rule = '{"from":["*"],"to":["*"],"ports":[1]}';
  const text = (n: number) => `{"rules":[\n${Array(n).fill(rule).join(',\n')}\n]}`;
  assert.equal(parsePolicy(text(POLICY_MAX_RULES)).rules!.length, POLICY_MAX_RULES);
  const e = policyError(text(POLICY_MAX_RULES + 1));
  assert.equal(e.message, `policy.json:${POLICY_MAX_RULES + 2}:1: rules[256]: too many rules: 257, at most 256`);
  assert.equal(e.hint, 'merge rules with tags');
});

test(`limit: ${POLICY_MAX_LIST} entries per from/to/ports list (counted as written, before duplicates go)`, () => {
  const tags = (n: number) => JSON.stringify(Array.from({ length: n }, (_, i) => `tag:t${i}`));
  const ports = (n: number) => JSON.stringify(Array.from({ length: n }, (_, i) => i + 1));
  assert.equal(parsePolicy(ruleText(tags(64), tags(64), ports(64))).rules![0]!.from.tags.length, 64);
  for (const [text, path, needle] of [
    [ruleText(tags(65), '["*"]', '[1]'), 'rules[0].from[64]', '"tag:t64"'],
    [ruleText('["*"]', tags(65), '[1]'), 'rules[0].to[64]', '"tag:t64"'],
    [ruleText('["*"]', '["*"]', ports(65)), 'rules[0].ports[64]', '65'],
    [ruleText('["*"]', '["*"]', JSON.stringify(Array(65).fill(80))), 'rules[0].ports[64]', '80]'],
  ] as const) {
    const e = policyError(text);
    assert.equal(e.message, `policy.json:${at(text, needle)}: ${path}: too many entries: 65, at most ${POLICY_MAX_LIST} per list`);
    assert.equal(e.hint, 'use tags or port ranges');
  }
});

// ------------------------------------------------------------------ tags

test('validateTags: distinct and sorted; upper case refused with the lower-case form as hint', () => {
  assert.deepEqual(validateTags([]), []);
  assert.deepEqual(validateTags(['worker', 'gpu-a100', 'worker', '0', '-']), ['-', '0', 'gpu-a100', 'worker']);
  assert.deepEqual(validateTags(['x'.repeat(32)]), ['x'.repeat(32)]);
  const bad = (tags: unknown[], message: string, hint?: RegExp): void => {
    assert.throws(
      () => validateTags(tags as string[]),
      (e: PilotError) => {
        assert.equal(e.code, 'BAD_ARGUMENT');
        assert.equal(e.message, message);
        if (hint) assert.match(e.hint!, hint);
        return true;
      },
    );
  };
  bad(['worker', 'Worker'], 'invalid tag "Worker": only a-z, 0-9 and "-" are allowed', /^tags are lower case: worker$/);
  bad(['gpu_a100'], 'invalid tag "gpu_a100": only a-z, 0-9 and "-" are allowed', /1-32 characters/);
  bad(['tag:x'], 'invalid tag "tag:x": only a-z, 0-9 and "-" are allowed');
  bad(['a b'], 'invalid tag "a b": only a-z, 0-9 and "-" are allowed');
  bad(['é'], 'invalid tag "é": only a-z, 0-9 and "-" are allowed');
  bad([''], 'invalid tag "": 0 characters, a tag has 1-32');
  bad(['x'.repeat(33)], `invalid tag "${'x'.repeat(33)}": 33 characters, a tag has 1-32`);
  bad(['x'.repeat(100)], `invalid tag "${'x'.repeat(45)}...": 100 characters, a tag has 1-32`);
  bad([7], 'a tag must be a string (got number)');
  bad('worker' as any, 'tags must be a list of strings');
  const nine = Array.from({ length: MAX_TAGS + 1 }, (_, i) => `t${i}`);
  assert.deepEqual(validateTags([...nine.slice(0, 8), 't0', 't1']), nine.slice(0, 8));
  bad(nine, '9 distinct tags, at most 8');
  assert.equal(validateTag('planner'), 'planner');
});

// ------------------------------------------------------------------ evaluation

test('the design example: tag:planner reaches tag:worker on 1000-1003 and 80, nothing else', () => {
  const p = parsePolicy(EXAMPLE);
  const table: [fromTags: string[], toTags: string[], port: number, ok: boolean][] = [
    [['planner'], ['worker'], 80, true],
    [['planner'], ['worker'], 1000, true],
    [['planner'], ['worker'], 1003, true],
    [['planner'], ['worker'], 79, false],
    [['planner'], ['worker'], 81, false],
    [['planner'], ['worker'], 999, false],
    [['planner'], ['worker'], 1004, false],
    [['planner'], ['worker'], 0, false],
    [['planner', 'other'], ['gpu', 'worker'], 1001, true],
    [['worker'], ['planner'], 80, false], // rules have a direction
    [['planner'], ['planner'], 80, false],
    [[], ['worker'], 80, false],
    [['planner'], [], 80, false],
    [['Planner'], ['worker'], 80, false], // tags compare byte for byte
    [['plan'], ['worker'], 80, false],
  ];
  for (const [fromTags, toTags, port, ok] of table) {
    assert.equal(allows(p, fromTags, PLANNER, toTags, WORKER, port), ok, `${fromTags} -> ${toTags}:${port}`);
  }
});

test('"*" sides, and port edges 0 / 1 / 65535 / 65536 / -1 / fractions', () => {
  const star = parsePolicy('{"rules":[{"from":["*"],"to":["*"],"ports":["*"]}]}');
  const edges = parsePolicy('{"rules":[{"from":["*"],"to":["*"],"ports":[1, 65535]}]}');
  const full = parsePolicy('{"rules":[{"from":["*"],"to":["*"],"ports":["1-65535"]}]}');
  const expect: [port: number, star: boolean, edges: boolean, full: boolean, dflt: boolean][] = [
    [0, true, false, false, true], // "*" is every port, 0 included, like no policy
    [1, true, true, true, true],
    [2, true, false, true, true],
    [65534, true, false, true, true],
    [65535, true, true, true, true],
    [65536, false, false, false, false], // not a virtual port: refused, even by default
    [-1, false, false, false, false],
    [80.5, false, false, false, false],
    [Number.NaN, false, false, false, false],
  ];
  for (const [port, a, b, c, d] of expect) {
    assert.equal(allows(star, [], PLANNER, [], WORKER, port), a, `* ${port}`);
    assert.equal(allows(edges, [], PLANNER, [], WORKER, port), b, `edges ${port}`);
    assert.equal(allows(full, [], PLANNER, [], WORKER, port), c, `full ${port}`);
    assert.equal(allows(DEFAULT_POLICY, [], PLANNER, [], WORKER, port), d, `default ${port}`);
  }
});

test('default policy allows every member pair; "rules": [] denies every one', () => {
  const deny = parsePolicy('{"rules":[]}');
  for (const port of [0, 1, 7, 80, 1000, 65535]) {
    assert.equal(allows(DEFAULT_POLICY, [], PLANNER, [], WORKER, port), true);
    assert.equal(allows(DEFAULT_POLICY, ['a'], A(3, 9), ['b'], A(3, 10), port), true);
    assert.equal(allows(deny, [], PLANNER, [], WORKER, port), false);
    assert.equal(allows(deny, ['planner'], PLANNER, ['worker'], WORKER, port), false);
  }
});

test('address entries match the node whatever the network field, on either side', () => {
  const p = parsePolicy(
    JSON.stringify({
      rules: [
        { from: ['0:0000.0000.0010'], to: ['5:0005.0000.0020'], ports: [80] },
        { from: ['tag:ops'], to: ['0:0000.DEAD.BEEF'], ports: [22] },
      ],
    }),
  );
  for (const net of [0, 5, 9, 65535]) {
    assert.equal(allows(p, [], A(net, 0x10), [], A(5, 0x20), 80), true, `from ${net}`);
    assert.equal(allows(p, [], A(5, 0x10), [], A(net, 0x20), 80), true, `to ${net}`);
    assert.equal(allows(p, ['ops'], A(net, 1), [], A(net, 0xdeadbeef), 22), true);
  }
  assert.equal(allows(p, [], A(0, 0x11), [], A(0, 0x20), 80), false);
  assert.equal(allows(p, [], A(0, 0x10), [], A(0, 0x21), 80), false);
  assert.equal(allows(p, [], A(0, 0x10), [], A(0, 0x20), 81), false);
  assert.equal(allows(p, ['ops'], A(0, 1), [], A(0, 0xdeadbeee), 22), false);
  // a node's address does not stand in for a tag, nor a tag for an address
  assert.equal(allows(p, [], A(0, 1), [], A(0, 0xdeadbeef), 22), false);
});

test('rules add up (allow-only): any one matching rule allows, order does not matter', () => {
  const r1 = { from: ['tag:a'], to: ['tag:b'], ports: [80] };
  const r2 = { from: ['*'], to: ['tag:c'], ports: ['1000-1003'] };
  const r3 = { from: ['0:0000.0000.0010'], to: ['*'], ports: ['*'] };
  const p1 = parsePolicy(JSON.stringify({ rules: [r1, r2, r3] }));
  const p2 = parsePolicy(JSON.stringify({ rules: [r3, r2, r1] }));
  const table: [fromTags: string[], from: Address, toTags: string[], port: number, ok: boolean][] = [
    [['a'], A(0, 1), ['b'], 80, true], // r1
    [['a'], A(0, 1), ['b'], 1000, false],
    [['x'], A(0, 1), ['c'], 1002, true], // r2
    [['x'], A(0, 1), ['b', 'c'], 80, false],
    [['a'], A(0, 1), ['b', 'c'], 1003, true], // r2 while r1 does not cover the port
    [[], A(0, 0x10), [], 65535, true], // r3
    [[], A(0, 0x10), [], 0, true],
    [[], A(0, 0x11), [], 80, false],
  ];
  for (const p of [p1, p2]) {
    for (const [fromTags, from, toTags, port, ok] of table) assert.equal(allows(p, fromTags, from, toTags, WORKER, port), ok, `${fromTags}->${toTags}:${port}`);
  }
});

test('queries may pass tags as any iterable (a Set)', () => {
  const p = parsePolicy(EXAMPLE);
  assert.equal(policyAllows(p, { fromTags: new Set(['planner']), fromAddress: PLANNER, toTags: new Set(['worker']), toAddress: WORKER, port: 80 }), true);
});

test('rule 255 and rules across word boundaries (31, 32, 63, 64) are found', () => {
  for (const k of [0, 31, 32, 33, 63, 64, 128, 255]) {
    const rules = Array.from({ length: 256 }, (_, i) => ({ from: [`tag:f${i}`], to: [`tag:t${i}`], ports: [i + 1] }));
    const p = parsePolicy(JSON.stringify({ rules }));
    assert.equal(allows(p, [`f${k}`], PLANNER, [`t${k}`], WORKER, k + 1), true, `rule ${k}`);
    assert.equal(allows(p, [`f${k}`], PLANNER, [`t${k}`], WORKER, k + 2), false, `rule ${k} other port`);
    assert.equal(allows(p, [`f${k}`], PLANNER, [`t${(k + 1) % 256}`], WORKER, k + 1), false, `rule ${k} other to`);
  }
});

// ------------------------------------------------------------------ formatPolicy

test('formatPolicy writes canonical JSON that parses back to the same rules', () => {
  assert.equal(formatPolicy(DEFAULT_POLICY), '{}\n');
  assert.equal(formatPolicy(parsePolicy('{"rules":[]}')), '{ "rules": [] }\n');
  const p = parsePolicy(
    '{"rules":[{"from":["tag:planner","5:0005.0000.002A"],"to":["tag:worker"],"ports":[80,"1000-1003","1004"]},{"from":["*"],"to":["tag:b","*"],"ports":["*"]}]}',
  );
  assert.equal(
    formatPolicy(p),
    '{\n  "rules": [\n' +
      '    { "from": ["tag:planner", "0:0000.0000.002A"], "to": ["tag:worker"], "ports": [80, "1000-1004"] },\n' +
      '    { "from": ["*"], "to": ["*"], "ports": ["*"] }\n' +
      '  ]\n}\n',
  );
  assert.deepEqual(parsePolicy(formatPolicy(p)).rules, p.rules);
  assert.equal(parsePolicy(formatPolicy(DEFAULT_POLICY)), DEFAULT_POLICY);
});

// ------------------------------------------------------------------ property check

/** mulberry32: a small seeded generator, so a failure can be replayed from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TAG_POOL = ['a', 'b', 'c', 'gpu', 'worker', 'planner'];
const NODE_POOL = [0, 1, 0x10, 0x20, 0xffffffff];
const NET_POOL = [0, 1, 7, 65535];
const PORT_POOL = [1, 2, 79, 80, 81, 999, 1000, 1001, 1003, 1004, 32767, 65534, 65535];

/** The meaning, written naively from the documentation, on the raw JSON. */
function reference(raw: any, q: { fromTags: string[]; fromAddress: Address; toTags: string[]; toAddress: Address; port: number }): boolean {
  if (!Number.isInteger(q.port) || q.port < 0 || q.port > 65535) return false;
  if (raw.rules === undefined) return true;
  const side = (list: string[], tags: string[], addr: Address) =>
    list.some((e) => e === '*' || (e.startsWith('tag:') && tags.includes(e.slice(4))) || (/^\d/.test(e) && parseAddress(e).node === addr.node));
  const port = (list: (string | number)[]) =>
    list.some((e) => {
      if (e === '*') return true;
      if (typeof e === 'number') return e === q.port;
      const [lo, hi] = e.split('-').map(Number);
      return lo! <= q.port && q.port <= (hi ?? lo!);
    });
  return raw.rules.some((r: any) => side(r.from, q.fromTags, q.fromAddress) && side(r.to, q.toTags, q.toAddress) && port(r.ports));
}

function randomPolicy(r: () => number): any {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  if (r() < 0.05) return {};
  const n = r() < 0.05 ? 0 : r() < 0.1 ? 100 + Math.floor(r() * 157) : 1 + Math.floor(r() * 10);
  const most = n > 50 ? 1 : 4; // large policies with short lists, to stay within 16 KiB
  const side = () =>
    Array.from({ length: 1 + Math.floor(r() * most) }, () => {
      const x = r();
      if (x < 0.08) return '*';
      if (x < 0.7) return `tag:${pick(TAG_POOL)}`;
      return formatAddress(makeAddress(pick(NET_POOL), pick(NODE_POOL)));
    });
  const ports = () =>
    Array.from({ length: 1 + Math.floor(r() * (most + 1)) }, () => {
      const x = r();
      if (x < 0.05) return '*';
      const p = pick(PORT_POOL);
      if (x < 0.45) return p;
      if (x < 0.6) return String(p);
      const q = pick(PORT_POOL);
      return `${Math.min(p, q)}-${Math.max(p, q)}`;
    });
  return { rules: Array.from({ length: n }, () => ({ from: side(), to: side(), ports: ports() })) };
}

test('property: the indexed evaluator agrees with a naive reference on random policies and queries', () => {
  const seed = Number(process.env.POLICY_SEED ?? Date.now() % 1e9);
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const queryPorts = [0, -1, 65536, 1.5, ...PORT_POOL];
  const tags = () => TAG_POOL.filter(() => r() < 0.3).concat(r() < 0.2 ? ['unknown'] : []);
  let checks = 0;
  let allowed = 0;
  let tooLarge = 0;
  for (let i = 0; i < 400; i++) {
    const raw = randomPolicy(r);
    let text = JSON.stringify(raw, null, r() < 0.5 ? 2 : undefined);
    if (Buffer.byteLength(text) > POLICY_MAX_BYTES) text = JSON.stringify(raw);
    if (Buffer.byteLength(text) > POLICY_MAX_BYTES) {
      assert.match(policyError(text).message, /at most 16384/);
      tooLarge++;
      continue;
    }
    const p = parsePolicy(text);
    // the canonical form is wordier (addresses, spaces): a large policy's may not fit in 16 KiB
    const formatted = formatPolicy(p);
    const round = Buffer.byteLength(formatted) <= POLICY_MAX_BYTES ? parsePolicy(formatted) : p;
    assert.deepEqual(round.rules, p.rules, `seed ${seed}: formatPolicy round trip of ${text}`);
    for (let j = 0; j < 60; j++) {
      const q = {
        fromTags: tags(),
        fromAddress: makeAddress(pick(NET_POOL), pick(NODE_POOL)),
        toTags: tags(),
        toAddress: makeAddress(pick(NET_POOL), pick(NODE_POOL)),
        port: r() < 0.8 ? pick(queryPorts) : Math.floor(r() * 65536),
      };
      const want = reference(raw, q);
      // messages built only on a mismatch: building them for every check is most of the cost
      if (policyAllows(p, q) !== want) assert.fail(`POLICY_SEED=${seed} replays: ${want ? 'refused' : 'allowed'} ${JSON.stringify(q)} under ${text}`);
      if (policyAllows(round, q) !== want) assert.fail(`POLICY_SEED=${seed}: the formatted policy differs for ${JSON.stringify(q)}: ${formatted}`);
      checks++;
      if (want) allowed++;
    }
  }
  // the generator must exercise both outcomes, or the comparison proves little
  assert.ok(allowed > checks * 0.1 && allowed < checks * 0.9, `seed ${seed}: ${allowed}/${checks} allowed`);
  assert.ok(tooLarge < 10, `seed ${seed}: ${tooLarge} random policies over 16 KiB`);
});

// ------------------------------------------------------------------ cost

test('cost of policyAllows with 256 rules (printed; it runs per incoming stream and datagram)', (t) => {
  const measure = (p: NetworkPolicy, q: Parameters<typeof policyAllows>[1], expect: boolean): number => {
    assert.equal(policyAllows(p, q), expect);
    const n = 200_000;
    for (let i = 0; i < 20_000; i++) policyAllows(p, q); // warm up
    const t0 = process.hrtime.bigint();
    let hits = 0;
    for (let i = 0; i < n; i++) if (policyAllows(p, q)) hits++;
    const ns = Number(process.hrtime.bigint() - t0) / n;
    assert.equal(hits, expect ? n : 0);
    return ns;
  };
  const eight = Array.from({ length: 8 }, (_, i) => `g${i}`);
  // tag to tag, 256 rules (as many as 16 KiB holds at this size), sender and receiver with 8 tags each
  const tagRules = parsePolicy(
    JSON.stringify({ rules: Array.from({ length: 256 }, (_, i) => ({ from: [`tag:f${i}`], to: [`tag:t${i}`], ports: [1000 + i] })) }),
  );
  const hit = measure(tagRules, { fromTags: [...eight, 'f255'], fromAddress: PLANNER, toTags: [...eight, 't255'], toAddress: WORKER, port: 1255 }, true);
  const miss = measure(tagRules, { fromTags: eight, fromAddress: PLANNER, toTags: eight, toAddress: WORKER, port: 1255 }, false);
  const one = measure(tagRules, { fromTags: ['f7'], fromAddress: PLANNER, toTags: ['t7'], toAddress: WORKER, port: 1007 }, true);
  // every rule matches both sides, the port in none: all 256 rules' ports are searched
  const star = parsePolicy(JSON.stringify({ rules: Array.from({ length: 256 }, (_, i) => ({ from: ['*'], to: ['*'], ports: [2 * i + 1, '600-700'] })) }));
  const stars = measure(star, { fromTags: eight, fromAddress: PLANNER, toTags: eight, toAddress: WORKER, port: 64 }, false);
  // beyond what 16 KiB of text can say (256 rules x 64 ports), built directly: the evaluator's bound
  const sel = { any: true, tags: [], nodes: [] };
  const ranges = Array.from({ length: 64 }, (_, j) => [2 * j + 1, 2 * j + 1] as const);
  const wide = new NetworkPolicy(Array.from({ length: 256 }, () => ({ from: sel, to: sel, ports: ranges })));
  const worst = measure(wide, { fromTags: eight, fromAddress: PLANNER, toTags: eight, toAddress: WORKER, port: 64 }, false);
  const dflt = measure(DEFAULT_POLICY, { fromTags: eight, fromAddress: PLANNER, toTags: eight, toAddress: WORKER, port: 80 }, true);
  const line =
    `policyAllows, 256 tag rules: 1 tag a side ${one.toFixed(0)} ns; 9 tags a side: allowed ${hit.toFixed(0)} ns, refused ${miss.toFixed(0)} ns; 256 "*" rules, port in none ${stars.toFixed(0)} ns; ` +
    `256 x 64 ports (unparseable bound) ${worst.toFixed(0)} ns; default policy ${dflt.toFixed(0)} ns`;
  t.diagnostic(line);
  // a generous ceiling on a shared 2-core box: catches a regression to something pathological only
  assert.ok(miss < 20_000 && stars < 100_000 && worst < 200_000, line);
});

test('a policy built from rules directly gets its port ranges checked and merged', () => {
  const sel = { any: true, tags: [], nodes: [] };
  const p = new NetworkPolicy([
    {
      from: sel,
      to: sel,
      ports: [
        [10, 20],
        [1, 3],
        [4, 4],
        [15, 30],
      ],
    },
  ]);
  assert.deepEqual(p.rules![0]!.ports, [
    [1, 4],
    [10, 30],
  ]);
  assert.equal(allows(p, [], PLANNER, [], WORKER, 4), true);
  assert.equal(allows(p, [], PLANNER, [], WORKER, 25), true);
  assert.equal(allows(p, [], PLANNER, [], WORKER, 5), false);
  for (const bad of [
    [5, 4],
    [-1, 4],
    [1, 65536],
    [1.5, 2],
  ] as const) {
    assert.throws(
      () => new NetworkPolicy([{ from: sel, to: sel, ports: [bad] }]),
      (e: PilotError) => e.code === 'BAD_ARGUMENT' && e.message.startsWith('invalid port range'),
    );
  }
  assert.throws(
    () => new NetworkPolicy(Array(257).fill({ from: sel, to: sel, ports: [[1, 1]] })),
    (e: PilotError) => e.code === 'BAD_ARGUMENT' && e.message === 'a policy has at most 256 rules (got 257)',
  );
});
