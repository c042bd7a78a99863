// The connection timer alone, on fake timers: one pending timer, re-armed only when a deadline
// comes earlier, and kept alive (ref'd) only for deadlines other than the idle check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionTimer, type TimerApi, type TimerHandle } from '../../src/transport/conn-timer.ts';

class FakeHandle implements TimerHandle {
  refd = true;
  cleared = false;
  readonly cb: () => void;
  readonly ms: number;
  constructor(cb: () => void, ms: number) {
    this.cb = cb;
    this.ms = ms;
  }
  ref(): void {
    this.refd = true;
  }
  unref(): void {
    this.refd = false;
  }
  hasRef(): boolean {
    return this.refd;
  }
}

function rig() {
  const set: FakeHandle[] = [];
  const api: TimerApi = {
    set: (cb, ms) => {
      const h = new FakeHandle(cb, ms);
      set.push(h);
      return h;
    },
    clear: (h) => {
      (h as FakeHandle).cleared = true;
    },
  };
  let fired = 0;
  const timer = new ConnectionTimer(() => fired++, api);
  return {
    timer,
    set,
    get fired() {
      return fired;
    },
  };
}

test('arms once; a later deadline keeps the pending timer, an earlier one replaces it', () => {
  const r = rig();
  r.timer.arm(100, 150.2, false);
  assert.equal(r.set.length, 1);
  assert.equal(r.set[0]!.ms, 51, 'rounded up: never early');
  r.timer.arm(110, 200, false);
  assert.equal(r.set.length, 1, 'fires early enough: re-evaluated then');
  r.timer.arm(120, 130, false);
  assert.equal(r.set.length, 2);
  assert.equal(r.set[0]!.cleared, true);
  assert.equal(r.set[1]!.ms, 10);
  r.timer.arm(125, 90, false);
  assert.equal(r.set[2]!.ms, 0, 'overdue: at once');
});

test('firing clears the pending state, so the next arm sets a new timer', () => {
  const r = rig();
  r.timer.arm(0, 10, false);
  assert.equal(r.timer.pending, true);
  r.set[0]!.cb();
  assert.equal(r.fired, 1);
  assert.equal(r.timer.pending, false);
  r.timer.arm(10, 20, false);
  assert.equal(r.set.length, 2);
});

test('keep-alive: an idle check alone does not hold the process; data in flight does', () => {
  const r = rig();
  r.timer.arm(0, 1000, true);
  const h = r.set[0]!;
  assert.equal(h.hasRef(), false, 'idle check only: unref');
  r.timer.arm(0, 2000, false); // e.g. a probe timeout later than the pending idle check
  assert.equal(r.set.length, 1);
  assert.equal(h.hasRef(), true, 'something else waits: ref again');
  r.timer.arm(0, Infinity, false);
  assert.equal(h.hasRef(), false, 'nothing to wait for: left pending but unref');
  assert.equal(h.cleared, false);
});

test('stop clears the pending timer', () => {
  const r = rig();
  r.timer.arm(0, 10, false);
  r.timer.stop();
  assert.equal(r.set[0]!.cleared, true);
  assert.equal(r.timer.pending, false);
  r.timer.stop(); // harmless twice
  r.timer.arm(0, 50, false);
  assert.equal(r.set.length, 2);
});

test('the default timers are node’s (a real, unref’d timer fires)', async () => {
  let resolve!: () => void;
  const fired = new Promise<void>((r) => {
    resolve = r;
  });
  const timer = new ConnectionTimer(resolve);
  timer.arm(performance.now(), performance.now() + 1, false);
  await fired;
  assert.equal(timer.pending, false);
});
