// Path MTU discovery (src/transport/mtu-discoverer.ts) between two agents behind
// real cone NATs, through real routers whose link toward the other site has a
// given MTU (a per-destination route MTU on both routers, so the rendezvous
// traffic is left alone): the kernel drops DF packets over it and answers with
// ICMP "fragmentation needed" unless the router's OUTPUT chain drops those
// (a PMTU black hole, as many firewalls make one).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { NatLab, natLabSupport, RENDEZVOUS_IP, type Router } from '../helpers/natlab.ts';
import { trustPair } from './matrix.ts';

const support = natLabSupport();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface PeerRow {
  address: string;
  pathType: string;
  mtu: number;
  mtuState: string;
}

describe('path MTU discovery in the NAT lab', { skip: support.ok ? false : support.reason, timeout: 240_000 }, () => {
  let lab: NatLab;
  let rdv: Rendezvous;
  let work: string;
  const agents: Agent[] = [];

  /** Two agents on two cone sites (symmetric: relayed); `link` shapes the routers' link toward each other before the agents start. */
  const pair = async (
    name: string,
    link?: (r1: Router, r2: Router, hostB: string) => void,
    kind: 'cone' | 'symmetric' = 'cone',
  ): Promise<{ a: Agent; b: Agent; r1: Router; r2: Router }> => {
    const s1 = lab.addSite(kind, `${name}1`);
    const s2 = lab.addSite(kind, `${name}2`);
    const [r1, r2] = [s1.routers[0]!, s2.routers[0]!];
    link?.(r1, r2, s2.hosts[0]!.ip);
    const [a, b] = [s1.hosts[0]!, s2.hosts[0]!].map((h) => new Agent(h.name, work, h.ns)) as [Agent, Agent];
    for (const x of [a, b]) {
      await x.start(['--registry', `${RENDEZVOUS_IP}:9000`, '--email', `${x.name}@example.com`, '--hostname', x.name, '--listen', '0.0.0.0:0']);
      agents.push(x);
    }
    await trustPair(a, b);
    return { a, b, r1, r2 };
  };

  /** Both routers carry at most `mtu` bytes toward each other; `icmp`: whether they say so. */
  const limit = (r1: Router, r2: Router, mtu: number, icmp: boolean): void => {
    // ICMP first: a router that drops big packets before it blocks ICMP would teach the sender the PMTU
    for (const r of [r1, r2]) {
      lab.sh(r.ns, 'iptables -D OUTPUT -p icmp --icmp-type fragmentation-needed -j DROP 2>/dev/null || true');
      if (!icmp) lab.sh(r.ns, 'iptables -I OUTPUT -p icmp --icmp-type fragmentation-needed -j DROP');
    }
    lab.sh(r1.ns, `ip route replace ${r2.wanIp}/32 dev ${r1.wan} mtu lock ${mtu}`);
    lab.sh(r2.ns, `ip route replace ${r1.wanIp}/32 dev ${r2.wan} mtu lock ${mtu}`);
  };

  const peerRow = async (from: Agent, to: Agent): Promise<PeerRow | undefined> =>
    (await from.ipc<{ peers: PeerRow[] }>('peers')).peers.find((p) => p.address === to.address);

  /** Pings until both ends' path MTU search is over (probes ride on traffic); the rows then. */
  const settle = async (a: Agent, b: Agent, ms = 20_000, pathType = 'direct'): Promise<[PeerRow, PeerRow]> => {
    const t0 = Date.now();
    for (;;) {
      await a.ipc('ping', { target: b.address, count: 5, intervalMs: 20, timeoutMs: 1000 });
      const [ra, rb] = [await peerRow(a, b), await peerRow(b, a)];
      if (ra?.pathType === pathType && rb?.pathType === pathType && ra.mtuState !== 'searching' && rb.mtuState !== 'searching') return [ra, rb];
      if (Date.now() - t0 > ms) assert.fail(`path MTU search not over after ${ms} ms: ${JSON.stringify([ra, rb])}`);
    }
  };

  const bench = async (from: Agent, to: Agent, mib: number): Promise<number> => {
    const r = await from.ctl(['bench', to.address, String(mib)], 60_000);
    assert.equal(r.code, 0, `bench: ${r.stderr}\n${from.log().slice(-2000)}`);
    return r.json.data.mbPerSec as number;
  };

  before(async () => {
    lab = new NatLab();
    work = tmpDir('pilot-pmtu-');
    rdv = await startRendezvous({ netns: lab.rendezvous.ns, listen: `${RENDEZVOUS_IP}:9000`, dataDir: path.join(work, 'rendezvous') });
  });

  after(async () => {
    for (const x of agents) await x.stop().catch(() => {});
    await rdv?.kill();
    lab?.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('a 1500-byte path between NATed peers: packets grow from the 1280-safe size to over 1400 bytes', async () => {
    const { a, b } = await pair('open');
    const [ra, rb] = await settle(a, b);
    console.log(`# 1500-byte path: ${ra.mtu} / ${rb.mtu} bytes (${ra.mtuState})`);
    for (const r of [ra, rb]) {
      assert.equal(r.mtuState, 'done');
      assert.equal(r.mtu, 1500, 'a full Ethernet MTU');
    }
    await bench(b, a, 8);
  });

  test('a 1400-byte link with ICMP blocked (black hole): probing settles at or below 1400, bulk transfer completes', async () => {
    const { a, b } = await pair('hole', (r1, r2) => limit(r1, r2, 1400, false));
    const [ra, rb] = await settle(a, b);
    console.log(`# 1400-byte black-hole path: ${ra.mtu} / ${rb.mtu} bytes`);
    for (const r of [ra, rb]) assert.ok(r.mtu <= 1400 && r.mtu > 1360, `mtu ${r.mtu} (${r.mtuState})`);
    const t0 = Date.now();
    const rate = await bench(b, a, 16);
    console.log(`# 16 MiB in ${Date.now() - t0} ms (${rate} MB/s)`);
  });

  test('a 1400-byte link that sends ICMP: an acked probe the kernel fragmented is not taken, the size stays at or below 1400', async () => {
    const { a, b } = await pair('icmp', (r1, r2) => limit(r1, r2, 1400, true));
    const [ra, rb] = await settle(a, b);
    console.log(`# 1400-byte path with ICMP: ${ra.mtu} / ${rb.mtu} bytes`);
    // exactly 1400 when the ICMP reached the kernel in time (the route cache names the size), else found by loss
    for (const r of [ra, rb]) assert.ok(r.mtu <= 1400 && r.mtu > 1360, `mtu ${r.mtu} (${r.mtuState})`);
    await bench(b, a, 8);
  });

  test('a relayed pair (symmetric x symmetric) on 1500-byte links: relayed packets grow from 1260 to 1500 bytes', async () => {
    const { a, b } = await pair('rel', undefined, 'symmetric');
    const [ra, rb] = await settle(a, b, 20_000, 'relay');
    console.log(`# relayed, 1500-byte links: ${ra.mtu} / ${rb.mtu} bytes (${ra.mtuState} / ${rb.mtuState})`);
    for (const r of [ra, rb]) {
      assert.equal(r.mtuState, 'done', 'the rendezvous relays with DF, so the relayed path is probed');
      assert.equal(r.mtu, 1500, 'a full Ethernet MTU through the relay');
    }
    await bench(a, b, 8);
  });

  test('a relayed pair whose rendezvous -> receiver leg carries 1400 bytes (ICMP on): the rendezvous never fragments, the size stays at or below 1400', async () => {
    // Only the leg from the rendezvous to b is narrow (b's router toward b): a's leg to the
    // rendezvous and a's route cache say 1500, so only the rendezvous's DF keeps an oversized
    // probe from arriving in fragments (and being acked).
    const { a, b } = await pair(
      'rln',
      (_r1, r2, hostB) => {
        const dev = /\bdev (\S+)/.exec(lab.exec(r2.ns, ['ip', 'route', 'get', hostB]))![1]!;
        lab.sh(r2.ns, `ip route replace ${hostB}/32 dev ${dev} mtu lock 1400`);
      },
      'symmetric',
    );
    const [ra, rb] = await settle(a, b, 30_000, 'relay');
    console.log(`# relayed, 1400-byte leg to the receiver: ${ra.mtu} / ${rb.mtu} bytes (${ra.mtuState} / ${rb.mtuState})`);
    assert.ok(ra.mtu <= 1400 && ra.mtu > 1360, `a -> b: mtu ${ra.mtu} (${ra.mtuState})`);
    assert.equal(rb.mtu, 1500, 'b -> a: the narrow leg is only toward b');
    await bench(a, b, 8);
  });

  test('the link MTU drops to 1300 mid-transfer, ICMP blocked: black hole detected, fallback, the transfer completes', async () => {
    const { a, b, r1, r2 } = await pair('drop');
    const [, before] = await settle(a, b);
    assert.ok(before.mtu > 1400, `grew first: ${before.mtu}`);
    const t0 = Date.now();
    const run = bench(b, a, 32);
    await sleep(300);
    limit(r1, r2, 1300, false);
    const rate = await run;
    const after = (await peerRow(b, a))!;
    console.log(`# 32 MiB with the MTU dropped to 1300 after 300 ms: ${Date.now() - t0} ms (${rate} MB/s), now ${after.mtu} bytes (${after.mtuState})`);
    assert.ok(after.mtu <= 1300, `mtu ${after.mtu} (${after.mtuState})`);
    assert.match(b.log(), /path MTU black hole/, 'the sender saw the black hole');
    const icmpDrops = (r: Router): number =>
      Number(/^\s*(\d+)\s+\d+\s+DROP.*icmptype 3 code 4/m.exec(lab.exec(r.ns, ['iptables', '-L', 'OUTPUT', '-v', '-x', '-n']))?.[1] ?? 0);
    assert.ok(icmpDrops(r2) > 0, 'the router did try to say "fragmentation needed" (and its firewall dropped it)');
  });
});
