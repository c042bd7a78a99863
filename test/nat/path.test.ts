// Endpoint text as carried in CANDIDATES and registry answers: "[v6]:port" next
// to "a.b.c.d:port", fuzzed (hostile input: peers and the registry send these).
// Old daemons drop IPv6 entries they cannot parse (decodeCandidates and the peer
// table filter), so no format version is needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { endpointText, parseEndpoint } from '../../src/nat/path.ts';
import { decodeCandidates, encodeCandidates } from '../../src/nat/inner.ts';
import { formatIpv6 } from '../../src/util/ip6.ts';

test('fuzz: random IPv6 endpoints round-trip through text and the CANDIDATES codec', () => {
  for (let i = 0; i < 3000; i++) {
    const b = crypto.randomBytes(16);
    b.fill(0, 0, crypto.randomInt(3) * 4); // some leading zeros
    if (i % 7 === 0) b.fill(0, 0, 10).fill(0xff, 10, 12); // IPv4-mapped now and then
    const host = formatIpv6(b);
    const port = 1 + crypto.randomInt(65535);
    const text = endpointText(host, port);
    const parsed = parseEndpoint(text);
    assert.ok(parsed, text);
    const mapped = i % 7 === 0;
    assert.equal(parsed.port, port);
    assert.equal(parsed.host, mapped ? `${b[12]}.${b[13]}.${b[14]}.${b[15]}` : host, text);
    assert.deepEqual(decodeCandidates(encodeCandidates({ eps: [text], nat: 'eim', reply: false }).subarray(1)).eps, [text]);
  }
});

test('fuzz: random junk never parses into something odd', () => {
  const alphabet = '0123456789abcdefABCDEF:.[]%-x ';
  for (let i = 0; i < 20000; i++) {
    const len = crypto.randomInt(60);
    let s = '';
    for (let j = 0; j < len; j++) s += alphabet[crypto.randomInt(alphabet.length)];
    const p = parseEndpoint(s);
    if (!p) continue;
    assert.ok(p.port >= 1 && p.port <= 65535, s);
    assert.ok(!p.host.includes('%') && !p.host.includes('['), s);
    assert.deepEqual(parseEndpoint(endpointText(p.host, p.port)), p, `${s} is stable`);
  }
});
