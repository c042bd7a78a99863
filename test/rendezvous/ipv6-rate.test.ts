// The rendezvous listens on both families: its per-source request limit counts an
// IPv6 client per /64 (what one subscriber gets), an IPv4 client per address.
// Real sockets in a network namespace whose loopback carries a few addresses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Lab, netnsSupport } from '../helpers/netns.ts';
import { ROOT } from '../helpers/cluster.ts';

const support = netnsSupport();

test('request flood from one IPv6 /64 is limited for the whole /64, not per address', { skip: support.ok ? false : support.reason }, () => {
  const lab = new Lab();
  try {
    const ns = lab.ns('v6rate');
    lab.sh(ns, 'ip -6 addr add 2001:db8:5::1/64 dev lo nodad; ip -6 addr add 2001:db8:5::2/64 dev lo nodad; ip -6 addr add 2001:db8:6::1/64 dev lo nodad');
    const out = JSON.parse(
      lab.exec(ns, [process.execPath, path.join(ROOT, 'test/helpers/v6-rate-probe.ts'), '2001:db8:5::1', '2001:db8:5::2', '2001:db8:6::1', '127.0.0.1']).trim(),
    ) as Record<string, number>;
    assert.ok(out['2001:db8:5::1']! >= 70, `the flooding address is limited: ${JSON.stringify(out)}`);
    assert.ok(out['2001:db8:5::2']! >= 8, `another address in the same /64 shares its bucket: ${JSON.stringify(out)}`);
    assert.equal(out['2001:db8:6::1'], 0, 'another /64 is not affected');
    assert.equal(out['127.0.0.1'], 0, 'IPv4 (as ::ffff:127.0.0.1 on the dual-stack socket) counts on its own');
  } finally {
    lab.cleanup();
  }
});
