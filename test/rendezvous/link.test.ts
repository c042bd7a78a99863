// UdpLink: a datagram's source at the rendezvous; UdpLinks: one per source, reused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UdpLink, UdpLinks } from '../../src/rendezvous/link.ts';

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

test('UdpLinks: one UdpLink per source while it keeps sending, a new one for another address or port, bounded', () => {
  const sent: unknown[][] = [];
  const links = new UdpLinks({ send: (...args: unknown[]) => void sent.push(args) }, 3);
  const a = links.get('198.51.100.1', 4000);
  assert.equal(links.get('198.51.100.1', 4000), a, 'the same object for every datagram of a source');
  assert.equal(links.get(['198.51.100', '1'].join('.'), 4000), a, 'an equal address string that is another string object');
  const b = links.get('198.51.100.2', 4000);
  assert.notEqual(b, a, 'another address on the same port');
  assert.equal(b.id, 'udp:198.51.100.2:4000');
  b.send(Buffer.from([0x21]));
  assert.deepEqual(sent[0]!.slice(1), [4000, '198.51.100.2'], 'each link answers its own source');
  const a2 = links.get('198.51.100.1', 4000);
  assert.notEqual(a2, b);
  assert.equal(a2.id, a.id, 'a source made again has the id the online index knows it by');
  for (let p = 1; p <= 10; p++) links.get('198.51.100.9', p);
  assert.ok(links.size <= 3, `bounded: ${links.size}`);
});
