// Issue 19, "candidates that are someone else's tunnel", end to end: two hosts
// joined by another overlay (a real userspace VPN: socat carries a tun interface,
// nebula9, over UDP port 7777 between them, as Nebula does over 4242), whose
// firewalls let only that overlay's port through between them. Before the fix each
// daemon advertised its nebula9 address, the other probed it (an "attached"
// subnet) and Pilot reported a "direct" path that was Nebula's tunnel. Now the
// pair stays on the relay, and goes through the overlay only when both name it
// in --candidate-interfaces (then `peers` says via nebula9).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { Agent, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { NatLab, natLabSupport, RENDEZVOUS_IP, type Host } from '../helpers/natlab.ts';
import { trustPair } from './matrix.ts';

const base = natLabSupport();
const skip = !base.ok ? base.reason : spawnSync('which', ['socat']).status !== 0 ? 'needs socat for the overlay tunnel (apt-get install socat)' : false;

interface Row {
  address: string;
  pathType: string;
  endpoint: string | null;
  via?: string | null;
}

describe('another overlay between two hosts is not a Pilot direct path', { skip, timeout: 180_000 }, () => {
  let lab: NatLab;
  let rdv: Rendezvous;
  let work: string;
  let hosts: Host[];
  const tunnels: ChildProcess[] = [];

  before(async () => {
    lab = new NatLab();
    work = tmpDir('pilot-overlay-');
    hosts = [lab.addSite('public', 'ova').hosts[0]!, lab.addSite('public', 'ovb').hosts[0]!];
    hosts.forEach((h, i) => {
      const other = hosts[1 - i]!;
      // Only the overlay's port between the two: their own UDP never reaches each other directly.
      lab.sh(h.ns, `iptables -A OUTPUT -p udp -d ${other.ip} ! --dport 7777 -j DROP; iptables -A INPUT -p udp -s ${other.ip} ! --sport 7777 -j DROP`);
      tunnels.push(
        lab.spawn(
          h.ns,
          ['socat', `UDP-DATAGRAM:${other.ip}:7777,bind=${h.ip}:7777`, `TUN:10.90.0.${i + 1}/24,tun-type=tun,tun-name=nebula9,iff-up,iff-no-pi`],
          {
            stdio: ['ignore', 'ignore', 'ignore'],
          },
        ),
      );
    });
    // Both ends up (no ping on a bare Debian; the opt-in test below proves it carries traffic).
    const t0 = Date.now();
    while (!hosts.every((h) => /LOWER_UP/.test(spawnSync('ip', ['netns', 'exec', h.ns, 'ip', 'link', 'show', 'nebula9']).stdout?.toString() ?? ''))) {
      if (Date.now() - t0 > 10_000) throw new Error('the overlay tunnel did not come up');
      await new Promise((r) => setTimeout(r, 50));
    }
    rdv = await startRendezvous({ netns: lab.rendezvous.ns, listen: `${RENDEZVOUS_IP}:9000`, dataDir: path.join(work, 'rendezvous') });
  });

  after(async () => {
    await rdv?.kill();
    for (const t of tunnels) t.kill();
    lab?.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  /** Start both agents (with `extra` flags), trust them, ping across, and report what each side says for ~6 s. */
  const pair = async (tag: string, extra: string[]): Promise<{ seen: string[]; rows: Row[] }> => {
    const agents = hosts.map((h) => new Agent(`${tag}${h.name}`, work, h.ns));
    for (const a of agents)
      await a.start(['--registry', `${RENDEZVOUS_IP}:9000`, '--email', `${a.name}@example.com`, '--hostname', a.name, '--listen', '0.0.0.0:0', ...extra]);
    try {
      await trustPair(agents[0]!, agents[1]!);
      const [a, b] = agents as [Agent, Agent];
      const ping = a.ctl(['ping', b.address, '--count', '40', '--interval', '0.2s', '--timeout', '1s'], 60_000);
      const seen = new Set<string>();
      let rows: Row[] = [];
      const t0 = Date.now();
      while (Date.now() - t0 < 8_000) {
        rows = await Promise.all(
          [
            [a, b],
            [b, a],
          ].map(async ([x, y]) => (await x!.ipc<{ peers: Row[] }>('peers')).peers.find((p) => p.address === y!.address)!),
        );
        for (const r of rows) if (r) seen.add(`${r.pathType}${r.endpoint ? ` ${r.endpoint}` : ''}${r.via ? ` via ${r.via}` : ''}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const p = await ping;
      assert.ok(Number(p.json?.data?.received ?? 0) > 30, `pings answered: ${JSON.stringify(p.json?.data)}`);
      return { seen: [...seen], rows };
    } finally {
      for (const a of agents) await a.stop();
    }
  };

  test('by default: the overlay addresses are never a path; the pair stays on the relay', async () => {
    const r = await pair('d', []);
    console.log(`# without --candidate-interfaces: paths seen ${JSON.stringify(r.seen)}`);
    assert.ok(!r.seen.some((s) => s.includes('10.90.0.')), `no path through the overlay: ${r.seen}`);
    assert.ok(
      r.rows.every((x) => x.pathType === 'relay'),
      `relay (their own UDP is firewalled): ${JSON.stringify(r.rows)}`,
    );
  });

  test('--candidate-interfaces nebula9 on both: direct through the overlay, and peers says via nebula9', async () => {
    const r = await pair('o', ['--candidate-interfaces', 'nebula9']);
    console.log(`# with --candidate-interfaces nebula9: paths seen ${JSON.stringify(r.seen)}`);
    assert.ok(
      r.rows.every((x) => x.pathType === 'direct' && x.endpoint?.startsWith('10.90.0.') && x.via === 'nebula9'),
      JSON.stringify(r.rows),
    );
  });
});
