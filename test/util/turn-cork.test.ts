// TurnCork: the first write of an event-loop turn goes out at once, the rest of the turn's writes are corked until it ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TurnCork } from '../../src/util/turn-cork.ts';

test('TurnCork: the first write of a turn is not held; the writes after it are corked until the turn ends, then released once', async () => {
  const calls: string[] = [];
  const turn = new TurnCork({ cork: () => calls.push('cork'), uncork: () => calls.push('uncork') });
  turn.beforeWrite();
  assert.deepEqual(calls, [], 'a lone packet (a request, a reply) leaves at once');
  await new Promise((r) => setImmediate(r));
  turn.beforeWrite();
  turn.beforeWrite();
  turn.beforeWrite();
  assert.deepEqual(calls, ['cork'], 'the second write of the turn corks, once');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(calls, ['cork', 'uncork'], 'released when the turn ends');
  turn.beforeWrite();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(calls, ['cork', 'uncork'], 'a turn with one write never corks');
});
