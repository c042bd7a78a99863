// BBR (the default) against CUBIC on a randomly lossy path, both through real
// daemons and real UDP sockets between two namespaces joined by a veth pair
// (1500-byte MTU, as bench:loss): the kernel drops LOSS of the overlay's
// packets arriving at either end (iptables -m statistic). CUBIC
// reads every loss as congestion and keeps cutting its window; BBR keeps
// pacing at the bandwidth it measured. Same namespace, same run, alternating
// transfers, so box load hits both alike: the assertion is a ratio.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, startRendezvous, tmpDir } from '../helpers/cluster.ts';
import { Lab, netnsSupport } from '../helpers/netns.ts';

const support = netnsSupport();
const LOSS = '0.10';
const MIB = 4;
const REPS = 3;

test('10% random loss: a bbr transfer moves well over 1.5x what a cubic one does', {
  skip: support.ok ? false : support.reason,
  timeout: 300_000,
}, async () => {
  const lab = new Lab();
  const work = tmpDir('pilot-lossy-bbr-');
  const agents: Agent[] = [];
  try {
    const nsA = lab.ns('a');
    const nsB = lab.ns('b');
    lab.sh(nsA, `ip link add va type veth peer name vb netns ${nsB}; ip addr add 10.78.0.1/24 dev va; ip link set va gso_max_segs 1; ip link set va up`);
    // No GSO batches through the veth (a wire segments them): the iptables loss below is per packet.
    lab.sh(nsB, 'ip addr add 10.78.0.2/24 dev vb; ip link set vb gso_max_segs 1; ip link set vb up');
    const rdv = await startRendezvous({ netns: nsA, listen: '10.78.0.1:9000' });
    const pairs: Record<string, [Agent, Agent]> = {};
    for (const cc of ['bbr', 'cubic']) {
      const a = new Agent(`a-${cc}`, work, nsA);
      const b = new Agent(`b-${cc}`, work, nsB);
      agents.push(a, b);
      await a.start(['--registry', rdv.addr, '--email', `a-${cc}@example.com`, '--hostname', `a-${cc}`, '--listen', '10.78.0.1:0', '--cc', cc]);
      await b.start(['--registry', rdv.addr, '--email', `b-${cc}@example.com`, '--hostname', `b-${cc}`, '--listen', '10.78.0.2:0', '--cc', cc]);
      assert.equal((await b.ctl(['handshake', a.address])).code, 0);
      assert.equal((await a.ctl(['approve', b.address])).code, 0);
      assert.equal((await b.ctl(['ping', a.address, '--count', '2', '--interval', '10ms'])).code, 0);
      pairs[cc] = [a, b];
    }
    // loss only now: the handshakes above are not what is measured
    for (const [ns, dev] of [
      [nsA, 'va'],
      [nsB, 'vb'],
    ]) {
      lab.sh(ns!, `iptables -A INPUT -i ${dev} -p udp ! --sport 9000 -m udp ! --dport 9000 -m statistic --mode random --probability ${LOSS} -j DROP`);
    }
    const rates: Record<string, number[]> = { bbr: [], cubic: [] };
    for (let rep = 0; rep < REPS; rep++) {
      for (const cc of rep % 2 === 0 ? ['bbr', 'cubic'] : ['cubic', 'bbr']) {
        const [a, b] = pairs[cc]!;
        const r = await b.ctl(['bench', a.address, String(MIB)], 120_000);
        assert.equal(r.code, 0, `${cc}: ${r.stderr}\n${b.log().slice(-2000)}`);
        rates[cc]!.push(r.json.data.mbPerSec as number);
      }
    }
    const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    const bbr = median(rates.bbr!);
    const cubic = median(rates.cubic!);
    const drops = lab.exec(nsA, ['iptables', '-L', 'INPUT', '-v', '-x', '-n']);
    const dropped = Number(/^\s*(\d+)\s+\d+\s+DROP/m.exec(drops)?.[1] ?? 0);
    console.log(
      `# ${LOSS} loss, ${MIB} MiB x ${REPS}: bbr ${rates.bbr!.map((x) => x.toFixed(1)).join('/')} MB/s, cubic ${rates.cubic!.map((x) => x.toFixed(1)).join('/')} MB/s, ratio ${(bbr / cubic).toFixed(2)}x; kernel dropped ${dropped}`,
    );
    assert.ok(dropped > 100, `the loss was real: the kernel dropped ${dropped} packets`);
    assert.ok(bbr > 1.5 * cubic, `bbr ${bbr.toFixed(2)} MB/s vs cubic ${cubic.toFixed(2)} MB/s (medians)`);
    await rdv.kill();
  } finally {
    for (const a of agents) await a.stop().catch(() => {});
    lab.cleanup();
  }
});
