// GOODBYE (src/daemon/goodbye.ts): the in-session message a stopping node sends its peers,
// and the bounded, expiring book of peers that said it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeGoodbye, encodeGoodbye, GONE_MS, GoneBook, INNER_GOODBYE, MAX_GONE } from '../../src/daemon/goodbye.ts';
import { PilotError } from '../../src/util/errors.ts';

test('goodbye round-trips; anything malformed is ignored', () => {
  assert.equal(decodeGoodbye(encodeGoodbye('stopped')), 'stopped');
  assert.equal(decodeGoodbye(encodeGoodbye('deregistered')), 'deregistered');
  assert.equal(encodeGoodbye('stopped')[0], INNER_GOODBYE);
  assert.equal(decodeGoodbye(Buffer.from([INNER_GOODBYE, 1, 9])), undefined, 'unknown reason');
  assert.equal(decodeGoodbye(Buffer.from([INNER_GOODBYE, 2, 0])), undefined, 'unknown version');
  assert.equal(decodeGoodbye(Buffer.from([INNER_GOODBYE, 1])), undefined, 'short');
  assert.equal(decodeGoodbye(Buffer.from([INNER_GOODBYE, 1, 0, 0])), undefined, 'long');
  assert.equal(decodeGoodbye(Buffer.from([0x04, 1, 0])), undefined, 'another type');
});

test('gone book: a dial fails fast with UNREACHABLE while the peer is offline; forgotten once online, after GONE_MS, or on a new session', () => {
  const g = new GoneBook();
  g.check(1, '0:0000.0000.0001', false, 0); // not gone: nothing
  g.note(1, 'stopped', 1000);
  assert.throws(
    () => g.check(1, '0:0000.0000.0001', false, 3000),
    (e: unknown) => e instanceof PilotError && e.code === 'UNREACHABLE' && /stopped 2 s ago/.test(e.message) && e.hint !== undefined,
  );
  g.check(1, '0:0000.0000.0001', true, 3000); // online again: forgotten
  g.check(1, '0:0000.0000.0001', false, 3000);
  g.note(2, 'deregistered', 0);
  assert.throws(() => g.check(2, 'x', false, GONE_MS - 1), /deregistered/);
  g.check(2, 'x', false, GONE_MS); // expired
  g.check(2, 'x', false, GONE_MS + 1);
  g.note(3, 'stopped', 0);
  g.clear(3);
  g.check(3, 'x', false, 1);
});

test('gone book is bounded: the oldest entries go first', () => {
  const g = new GoneBook();
  for (let i = 0; i <= MAX_GONE; i++) g.note(i, 'stopped', 0);
  g.check(0, 'x', false, 1); // evicted
  assert.throws(() => g.check(MAX_GONE, 'x', false, 1), /stopped/);
});
