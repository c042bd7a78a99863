import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import fs from 'node:fs';
import { ipUdpHeaders, MAX_LINK_PAYLOAD, onLinkPayload, remotePayloadCeiling, routePmtu, routePmtuSupported } from '../../src/nat/link-mtu.ts';

test('bigger packets only where the link is known: this host, attached subnets', () => {
  assert.equal(onLinkPayload('127.0.0.1'), MAX_LINK_PAYLOAD);
  const own = Object.values(os.networkInterfaces())
    .flat()
    .find((n) => n && n.family === 'IPv4' && !n.internal);
  if (own) {
    assert.equal(onLinkPayload(own.address), MAX_LINK_PAYLOAD, 'our own address goes over loopback');
    const p = onLinkPayload(own.address.replace(/\.\d+$/, '.254'));
    if (own.netmask !== '255.255.255.255') assert.ok(p === undefined || (p >= 548 && p <= MAX_LINK_PAYLOAD));
  }
  assert.equal(onLinkPayload('203.0.113.77'), undefined, 'a remote path keeps the 1280-safe default');
  assert.equal(onLinkPayload('not-an-ip'), undefined);
});

test('remote paths probe up to 1500 bytes on the wire at most, minus the IP and UDP headers of their family', () => {
  const v4 = remotePayloadCeiling('203.0.113.77');
  const v6 = remotePayloadCeiling('2001:db8::1');
  assert.ok(v4 <= 1472, `v4 ${v4}`);
  assert.equal(v4 - v6, 20, 'IPv6 headers are 20 bytes longer');
  assert.equal(ipUdpHeaders('203.0.113.77'), 28);
  assert.equal(ipUdpHeaders('2001:db8::1'), 48);
});

test('the route cache: the PMTU toward loopback is the loopback MTU; no route answers undefined', {
  skip: routePmtuSupported() ? false : 'needs Linux and iproute2',
}, async () => {
  assert.equal(await routePmtu('127.0.0.1'), Number(fs.readFileSync('/sys/class/net/lo/mtu', 'utf8')));
  assert.equal(await routePmtu('not-an-address'), undefined);
});
