import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { MAX_LINK_PAYLOAD, onLinkPayload } from '../../src/nat/link-mtu.ts';

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
