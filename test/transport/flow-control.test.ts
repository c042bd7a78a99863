// Connection-level flow control alone: send credit and blocked streams, the receive limit, and
// window auto-tuning on a controlled clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionFlowControl, INITIAL_CONN_CREDIT } from '../../src/transport/flow-control.ts';

const KiB = 1024;

test('send credit: starts at the protocol constant, used by new bytes, raised only upwards by MAX_DATA', () => {
  const fc = new ConnectionFlowControl<string>(256 * KiB, 1024 * KiB);
  assert.equal(fc.sendRoom(), INITIAL_CONN_CREDIT);
  fc.onSent(1000);
  assert.equal(fc.sendRoom(), INITIAL_CONN_CREDIT - 1000);
  assert.equal(fc.onMaxData(INITIAL_CONN_CREDIT), false, 'not a raise');
  assert.equal(fc.onMaxData(INITIAL_CONN_CREDIT - 5), false, 'a lower limit is ignored');
  assert.equal(fc.sendRoom(), INITIAL_CONN_CREDIT - 1000);
  assert.equal(fc.onMaxData(INITIAL_CONN_CREDIT + 500), true);
  assert.equal(fc.sendRoom(), INITIAL_CONN_CREDIT + 500 - 1000);
});

test('blocked streams: each once, handed over once, none -> null', () => {
  const fc = new ConnectionFlowControl<string>(256 * KiB, 1024 * KiB);
  assert.equal(fc.takeBlocked(), null);
  fc.block('a');
  fc.block('b');
  fc.block('a');
  assert.deepEqual(fc.takeBlocked(), ['a', 'b']);
  assert.equal(fc.takeBlocked(), null);
});

test('receive limit: growth past what we advertised is refused and not counted', () => {
  const fc = new ConnectionFlowControl<string>(256 * KiB, 1024 * KiB);
  assert.equal(fc.maxData, INITIAL_CONN_CREDIT);
  assert.equal(fc.onReceived(INITIAL_CONN_CREDIT - 10), true);
  assert.equal(fc.onReceived(11), false, 'one byte over');
  assert.equal(fc.onReceived(10), true, 'the refused frame was not counted');
  assert.equal(fc.onReceived(0), true);
  assert.equal(fc.onReceived(1), false);
});

test('MAX_DATA is raised once half the window is consumed, and the window doubles only when used within two RTTs', () => {
  const window = 256 * KiB;
  const fc = new ConnectionFlowControl<string>(window, 4 * window);
  // the initial credit (1 MiB) is above the window: nothing to raise until consumed + window/2 passes it
  assert.equal(fc.onConsumed(INITIAL_CONN_CREDIT - window / 2), false, 'half a window left');
  assert.equal(fc.pending, false);
  assert.equal(fc.onConsumed(1), true, 'less than half a window left');
  let now = 1000;
  const srtt = 50;
  fc.raise(now, srtt);
  assert.equal(fc.pending, true);
  let consumed = INITIAL_CONN_CREDIT - window / 2 + 1;
  assert.equal(fc.maxData, consumed + window, 'the first raise: no doubling (no previous raise)');
  fc.pending = false; // sent

  // consumed again within two RTTs: the window is the limit, so it doubles
  now += 2 * srtt - 1;
  assert.equal(fc.onConsumed(window / 2 + 1), true);
  consumed += window / 2 + 1;
  fc.raise(now, srtt);
  assert.equal(fc.maxData, consumed + 2 * window);

  // slowly consumed (more than two RTTs): no growth
  now += 10 * srtt;
  assert.equal(fc.onConsumed(window + 1), true);
  consumed += window + 1;
  fc.raise(now, srtt);
  assert.equal(fc.maxData, consumed + 2 * window);

  // fast again, twice: capped at maxWindow
  for (let i = 0; i < 3; i++) {
    now += 1;
    const left = fc.maxData - consumed;
    const step = left; // use it all
    fc.onConsumed(step);
    consumed += step;
    fc.raise(now, srtt);
  }
  assert.equal(fc.maxData, consumed + 4 * window, 'capped at maxWindow');
});
