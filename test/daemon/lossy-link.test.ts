// A stream stays intact across 10% random packet loss, made by the kernel
// (iptables -m statistic) inside a network namespace of this test's own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Agent, ROOT, run, startRendezvous, tmpDir } from '../helpers/cluster.ts';
import { Lab, netnsSupport } from '../helpers/netns.ts';

const support = netnsSupport();
const LOSS = '0.10';

test('10% random loss between two daemons: a 10 MiB stream arrives intact', { skip: support.ok ? false : support.reason, timeout: 240_000 }, async () => {
  const lab = new Lab();
  const work = tmpDir();
  try {
    const ns = lab.ns('lossy');
    const rdv = await startRendezvous({ netns: ns, listen: '127.0.0.1:9000' });
    // Drop 10% of the UDP packets between the agents (not the registry traffic).
    // lo passes a UDP GSO send as one skb: segmented first, as a wire would, so that 10% is of packets.
    lab.sh(ns, 'ip link set lo gso_max_segs 1');
    lab.sh(ns, `iptables -A INPUT -i lo -p udp ! --sport 9000 -m udp ! --dport 9000 -m statistic --mode random --probability ${LOSS} -j DROP`);
    const a = new Agent('alpha', work, ns);
    const b = new Agent('beta', work, ns);
    await a.start(['--registry', rdv.addr, '--email', 'a@example.com', '--hostname', 'alpha', '--public', '--listen', '127.0.0.1:0']);
    await b.start(['--registry', rdv.addr, '--email', 'b@example.com', '--hostname', 'beta', '--listen', '127.0.0.1:0']);
    // Trusted, so they punch a direct path (an untrusted peer of a public node may stay on the relay,
    // whose port 9000 the drop rule leaves alone: the stream would never meet the loss).
    assert.equal((await b.ctl(['handshake', a.address])).code, 0);
    assert.equal((await a.ctl(['approve', b.address])).code, 0);
    for (let i = 0; ; i++) {
      const tr = await b.ctl(['trust']);
      if ((tr.json?.data?.trusted as { peer: string; mutual: boolean }[] | undefined)?.some((t) => t.peer === a.address && t.mutual)) break;
      assert.ok(i < 100, 'trust not mutual after 20 s');
      await new Promise((r) => setTimeout(r, 200));
    }

    // The sender: a helper process that pipes 10 MiB of known bytes through the overlay to alpha's echo port
    // and hashes what comes back (echo = both directions cross the lossy link).
    const script = path.join(ROOT, 'test/helpers/echo-transfer.ts');
    const r = await run(['ip', 'netns', 'exec', ns, process.execPath, script, b.socket, 'alpha', String(10 * 1024 * 1024)], {}, 200_000);
    const why = (): string => `${r.stderr}\n--- alpha log\n${a.log().slice(-3000)}\n--- beta log\n${b.log().slice(-3000)}`;
    assert.equal(r.code, 0, why());
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(out.bytes, 10 * 1024 * 1024, `all bytes echoed back\n${why()}`);
    assert.equal(out.sentHash, out.echoHash);
    const drops = lab.exec(ns, ['iptables', '-L', 'INPUT', '-v', '-x', '-n']);
    const dropped = Number(/^\s*(\d+)\s+\d+\s+DROP/m.exec(drops)?.[1] ?? 0);
    // loopback carries up to 16 KiB packets (on-link MTU), so ~1000 packets each way: 10% of them is well over 100
    assert.ok(dropped > 100, `the kernel dropped only ${dropped} packets`);
    console.log(`# 10 MiB echoed through 10% loss in ${out.seconds}s, kernel dropped ${dropped} packets`);
    await a.stop();
    await b.stop();
    await rdv.kill();
  } finally {
    lab.cleanup();
  }
});
