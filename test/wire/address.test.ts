import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  addressKey,
  formatAddress,
  makeAddress,
  parseAddress,
  parseNodeId,
  parseSocketAddress,
  formatSocketAddress,
  readAddress,
  writeAddress,
} from '../../src/wire/address.ts';
import { PilotError } from '../../src/util/errors.ts';

test('formats the seed examples', () => {
  assert.equal(formatAddress(makeAddress(0, 0x2a)), '0:0000.0000.002A');
  assert.equal(formatAddress(makeAddress(0, 0x37d)), '0:0000.0000.037D');
  assert.equal(formatAddress(makeAddress(1, 0xdeadbeef)), '1:0001.DEAD.BEEF');
  assert.equal(formatAddress(makeAddress(65535, 0xffffffff)), '65535:FFFF.FFFF.FFFF');
});

test('parse/format round trips, case-insensitive', () => {
  for (const [n, id] of [
    [0, 0],
    [0, 1],
    [7, 0x10000],
    [300, 0xabcdef01],
    [65535, 0xffffffff],
  ] as const) {
    const a = makeAddress(n, id);
    assert.deepEqual(parseAddress(formatAddress(a)), a);
    assert.deepEqual(parseAddress(formatAddress(a).toLowerCase()), a);
  }
});

test('rejects malformed addresses with BAD_ADDRESS', () => {
  for (const bad of [
    '',
    '0:0000.0000',
    '0:0000.0000.002G',
    '0:00000.0000.002A',
    '0.0000.0000.002A',
    '70000:1117.0000.0000',
    '1:0000.0000.0001',
    'x:0000.0000.0001',
    '0:0000.0000.002A.0000',
    ' : ',
    'a'.repeat(100),
  ]) {
    assert.throws(
      () => parseAddress(bad),
      (e: unknown) => e instanceof PilotError && e.code === 'BAD_ADDRESS',
      bad,
    );
  }
  assert.throws(() => parseAddress(42 as unknown as string), PilotError);
  assert.throws(() => makeAddress(-1, 0), PilotError);
  assert.throws(() => makeAddress(0, 2 ** 32), PilotError);
  assert.throws(() => makeAddress(0.5, 0), PilotError);
});

test('binary form round trips and rejects truncation', () => {
  const a = makeAddress(513, 0x01020304);
  const buf = Buffer.alloc(8);
  assert.equal(writeAddress(buf, 1, a), 7);
  assert.deepEqual(readAddress(buf, 1), a);
  assert.throws(() => readAddress(Buffer.alloc(5), 0), PilotError);
});

test('node ids and keys', () => {
  assert.deepEqual(parseNodeId('42'), makeAddress(0, 42));
  assert.deepEqual(parseNodeId('0x2A'), makeAddress(0, 42));
  assert.equal(parseNodeId('agent-alpha'), undefined);
  assert.equal(parseNodeId('99999999999'), undefined);
  assert.notEqual(addressKey(makeAddress(1, 0)), addressKey(makeAddress(0, 1)));
});

test('socket addresses', () => {
  const s = parseSocketAddress('0:0000.0000.002A:80');
  assert.equal(s.port, 80);
  assert.equal(formatSocketAddress(s), '0:0000.0000.002A:80');
  assert.throws(() => parseSocketAddress('0:0000.0000.002A:70000'), PilotError);
  assert.throws(() => parseSocketAddress('nope'), PilotError);
});
