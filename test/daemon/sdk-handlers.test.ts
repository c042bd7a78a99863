// whenOpened (src/daemon/sdk-handlers.ts): a dial waits for the peer to acknowledge the stream's
// opening; a peer that never answers fails the dial with TIMEOUT and nothing else (found by the
// fleet bench: the stream's own 'error' was left without a listener and crashed the process).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { whenOpened } from '../../src/daemon/sdk-handlers.ts';
import { PilotError } from '../../src/util/errors.ts';

function opening(): Duplex & { openAcked: boolean } {
  const d = new Duplex({
    read() {},
    write(_c, _e, cb) {
      cb();
    },
  }) as Duplex & { openAcked: boolean };
  d.openAcked = false;
  return d;
}

test('a peer that never acknowledges the opening: TIMEOUT for the opener, the stream destroyed, no uncaught error', async () => {
  const uncaught: unknown[] = [];
  const onUncaught = (e: unknown): void => void uncaught.push(e);
  process.on('uncaughtException', onUncaught);
  try {
    const s = opening();
    await assert.rejects(whenOpened(s, 20), { code: 'TIMEOUT' });
    await new Promise((r) => setTimeout(r, 20)); // the stream's error lands on a later tick
    assert.equal(s.destroyed, true);
    assert.deepEqual(uncaught, []);
  } finally {
    process.off('uncaughtException', onUncaught);
  }
});

test('acknowledged: resolves; an error while opening rejects with its code', async () => {
  const s = opening();
  const p = whenOpened(s, 1000);
  s.openAcked = true;
  s.emit('open-acked');
  await p;
  const t = opening();
  const q = whenOpened(t, 1000);
  t.destroy(new PilotError('CONNECTION_REFUSED', 'nothing listens on that port', 'start a listener'));
  await assert.rejects(q, { code: 'CONNECTION_REFUSED' });
});
