// Connection options alone: defaults, clamping, and refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_MAX_PLAINTEXT } from '../../src/wire/packet-types.ts';
import { PilotError } from '../../src/util/errors.ts';
import { checkPort, DEFAULT_CONNECTION_WINDOW, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_STREAM_WINDOW, resolveConnectionOptions } from '../../src/transport/options.ts';

const send = (): void => {};

test('defaults', () => {
  const c = resolveConnectionOptions({ role: 'high', sendPacket: send });
  assert.equal(c.parity, 1);
  assert.equal(c.maxPacketSize, DEFAULT_MAX_PLAINTEXT);
  assert.deepEqual([c.headroom, c.tailroom], [0, 0]);
  assert.deepEqual(c.stream, { window: DEFAULT_STREAM_WINDOW, maxWindow: 16 * 1024 * 1024, sendAhead: DEFAULT_STREAM_WINDOW });
  assert.equal(c.connWindow, DEFAULT_CONNECTION_WINDOW);
  assert.equal(c.maxConnWindow, 64 * 1024 * 1024);
  assert.equal(c.idleTimeoutMs, DEFAULT_IDLE_TIMEOUT_MS);
  assert.equal(c.congestionControl, 'bbr');
  assert.equal(typeof c.now(), 'number');
  assert.equal(resolveConnectionOptions({ role: 'low', sendPacket: send }).parity, 0);
});

test('windows are clamped from below; a configured window above the auto-tuning cap is its own cap', () => {
  const small = resolveConnectionOptions({ role: 'low', sendPacket: send, streamWindow: 1, connectionWindow: 1 });
  assert.equal(small.stream.window, 64 * 1024);
  assert.equal(small.connWindow, 256 * 1024);
  const big = resolveConnectionOptions({ role: 'low', sendPacket: send, streamWindow: 32 * 1024 * 1024, connectionWindow: 128 * 1024 * 1024 });
  assert.equal(big.stream.maxWindow, 32 * 1024 * 1024);
  assert.equal(big.maxConnWindow, 128 * 1024 * 1024);
});

test('bad values are refused with BAD_ARGUMENT', () => {
  const bad = (o: object): void => {
    assert.throws(
      () => resolveConnectionOptions({ role: 'low', sendPacket: send, ...o }),
      (e: unknown) => e instanceof PilotError && e.code === 'BAD_ARGUMENT',
    );
  };
  bad({ role: 'middle' });
  bad({ maxPacketSize: 255 });
  bad({ maxPacketSize: 65_001 });
  bad({ maxPacketSize: 1000.5 });
  bad({ headroom: -1 });
  bad({ tailroom: 257 });
  bad({ congestionControl: 'vegas' });
  assert.throws(() => checkPort(65536, 'dstPort'), /dstPort must be an integer 0-65535/);
  assert.throws(() => checkPort(1.5, 'srcPort'), PilotError);
  checkPort(0, 'x');
  checkPort(65535, 'x');
});
