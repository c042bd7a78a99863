// A network that drops all UDP: the rendezvous runs in one namespace, the
// client in another behind `iptables -A OUTPUT -p udp -j DROP`, joined by a
// veth pair. UDP to the rendezvous fails; framed TCP and WebSocket uplinks
// register, resolve and relay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ROOT, run, startRendezvous } from '../helpers/cluster.ts';
import { Lab, netnsSupport } from '../helpers/netns.ts';

const support = netnsSupport();

test('UDP dropped by the client network: registers and relays over TCP and WebSocket', {
  skip: support.ok ? false : support.reason,
  timeout: 90_000,
}, async () => {
  const lab = new Lab();
  try {
    const srv = lab.ns('srv');
    const cli = lab.ns('cli');
    const [vs, vc] = [`${lab.prefix}-s`, `${lab.prefix}-c`];
    lab.exec(srv, ['ip', 'link', 'add', vs, 'type', 'veth', 'peer', 'name', vc, 'netns', cli]);
    lab.sh(srv, `ip addr add 10.99.0.1/24 dev ${vs} && ip link set ${vs} up`);
    lab.sh(cli, `ip addr add 10.99.0.2/24 dev ${vc} && ip link set ${vc} up`);
    const rdv = await startRendezvous({ netns: srv, listen: '10.99.0.1:9000' });
    try {
      const client = ['ip', 'netns', 'exec', cli, process.execPath, path.join(ROOT, 'test/uplink/udp-blocked-client.ts'), '10.99.0.1', '9000'];
      // Control: with UDP open, the same client reaches the rendezvous over UDP.
      const open = await run(client, {}, 30_000);
      assert.equal(open.code, 0, open.stderr);
      assert.equal(JSON.parse(open.stdout.trim()).udp, 'ok');

      lab.sh(cli, 'iptables -A OUTPUT -p udp -j DROP');
      const r = await run(client, {}, 30_000);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim());
      assert.equal(out.udp, 'TIMEOUT', 'UDP to the rendezvous is blocked');
      assert.match(out.tcpAddress, /^0:0000\.0000\.[0-9A-F]{4}$/);
      assert.match(out.wsAddress, /^0:0000\.0000\.[0-9A-F]{4}$/);
      assert.equal(out.resolved, out.tcpAddress);
      assert.equal(out.relayedToWs, out.tcpAddress);
      assert.equal(out.relayedToTcp, out.wsAddress);
      const rules = lab.exec(cli, ['iptables', '-L', 'OUTPUT', '-v', '-x', '-n']);
      const dropped = Number(/^\s*(\d+)\s+\d+\s+DROP/m.exec(rules)?.[1] ?? 0);
      assert.ok(dropped >= 3, `the kernel dropped ${dropped} UDP packets (the hello and its retries)`);
      console.log(
        `# UDP blocked (${dropped} packets dropped); registered over tcp as ${out.tcpAddress}, over websocket as ${out.wsAddress}; relayed both ways`,
      );
    } finally {
      await rdv.kill();
    }
  } finally {
    lab.cleanup();
  }
});
