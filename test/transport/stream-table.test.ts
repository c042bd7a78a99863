// The stream table alone: id parity, what a frame for an unknown id means, retiring peer ids,
// the incoming-stream limit and the bounded memory of answered ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_ANSWERED_UNKNOWN, StreamTable } from '../../src/transport/stream-table.ts';

const s = (id: number) => ({ id });

test('local ids follow the parity, two apart', () => {
  const low = new StreamTable(0);
  const high = new StreamTable(1);
  assert.deepEqual([low.allocateLocalId(), low.allocateLocalId(), low.allocateLocalId()], [0, 2, 4]);
  assert.deepEqual([high.allocateLocalId(), high.allocateLocalId()], [1, 3]);
  assert.equal(low.isLocal(4), true);
  assert.equal(low.isLocal(5), false);
});

test('add, get, remove; a removed peer stream is retired: later frames for it are ignored', () => {
  const t = new StreamTable<{ id: number }>(0);
  const mine = s(t.allocateLocalId());
  t.add(mine);
  assert.equal(t.onUnknown(1, true, true), 'accept');
  const peer = s(1);
  t.add(peer);
  assert.equal(t.size, 2);
  assert.equal(t.get(1), peer);
  t.remove(s(1)); // another object with the same id: not ours to remove
  assert.equal(t.size, 2);
  t.remove(peer);
  t.remove(mine);
  assert.equal(t.size, 0);
  assert.equal(t.onUnknown(1, true, true), 'ignore', 'retired');
  assert.equal(t.onUnknown(1, false, true), 'ignore');
  assert.equal(t.onUnknown(3, true, true), 'accept', 'the next peer id is new');
});

test('unknown ids: ours never opened, or the peer’s without the open info, are answered once', () => {
  const t = new StreamTable(0);
  t.allocateLocalId(); // 0 opened (and since finished)
  assert.equal(t.onUnknown(0, false, true), 'ignore', 'ours, finished: a late frame');
  assert.equal(t.onUnknown(6, false, true), 'answer', 'ours, never opened by this incarnation');
  assert.equal(t.onUnknown(6, false, true), 'ignore', 'answered already');
  assert.equal(t.onUnknown(7, false, true), 'answer', 'the peer’s, opening seen before we lost state');
  assert.equal(t.onUnknown(7, false, true), 'ignore');
  assert.equal(t.onUnknown(7, true, true), 'accept', 'with the open info it is a new stream');
});

test('refused: nobody listens, or too many peer streams; the id is retired', () => {
  const t = new StreamTable(0, 2);
  assert.equal(t.onUnknown(1, true, false), 'refuse');
  assert.equal(t.onUnknown(1, true, true), 'ignore', 'retired by the refusal');
  t.add(s(3));
  t.add(s(5));
  assert.equal(t.onUnknown(7, true, true), 'refuse', 'limit reached');
  t.remove(t.get(3)!);
  assert.equal(t.onUnknown(9, true, true), 'accept', 'room again');
});

test('a reset for an unknown peer id retires it; for one of ours it changes nothing', () => {
  const t = new StreamTable(1);
  t.onUnknownReset(4);
  assert.equal(t.onUnknown(4, true, true), 'ignore');
  t.onUnknownReset(5);
  assert.equal(t.onUnknown(5, false, true), 'answer', 'ours never opened');
});

test('answered ids are forgotten all at once past the cap (memory stays bounded)', () => {
  const t = new StreamTable(0);
  for (let i = 0; i < MAX_ANSWERED_UNKNOWN; i++) assert.equal(t.onUnknown(2 * i + 1, false, true), 'answer');
  assert.equal(t.onUnknown(1, false, true), 'ignore');
  assert.equal(t.onUnknown(2 * MAX_ANSWERED_UNKNOWN + 1, false, true), 'answer', 'the set is cleared');
  assert.equal(t.onUnknown(1, false, true), 'answer', 'so an old id is answered again');
});

test('list and clear hand out copies', () => {
  const t = new StreamTable(0);
  const a = s(t.allocateLocalId());
  const b = s(t.allocateLocalId());
  t.add(a);
  t.add(b);
  const l = t.list();
  t.remove(a);
  assert.deepEqual(l, [a, b]);
  assert.deepEqual(t.clear(), [b]);
  assert.equal(t.size, 0);
});
