// UdpLink: what the rendezvous makes for every datagram it receives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UdpLink } from '../../src/rendezvous/link.ts';

test('UdpLink sends to its source with no completion callback, and formats observed only when asked', () => {
  const calls: unknown[][] = [];
  const link = new UdpLink({ send: (...args: unknown[]) => void calls.push(args) }, '::ffff:192.0.2.7', 4000);
  assert.equal(link.id, 'udp:::ffff:192.0.2.7:4000', 'the id the online index has always used');
  const pkt = Buffer.from([0x21]);
  assert.equal(link.send(pkt), true);
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.length, 3, 'no callback: dgram would schedule a tick per packet for it');
  assert.equal(calls[0]![0], pkt);
  assert.equal(calls[0]![1], 4000);
  assert.equal(calls[0]![2], '::ffff:192.0.2.7');
  assert.equal(link.observed, '192.0.2.7:4000', 'IPv4-mapped shown as IPv4');
  assert.equal(new UdpLink({ send: () => {} }, '2001:db8::1', 9).observed, '[2001:db8::1]:9');
});
