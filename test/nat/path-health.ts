// Path health over long idle periods (issue 19), with real daemons behind real
// netfilter NAT: an idle pair keeps its direct path through many rekeys, and
// through routers whose UDP conntrack timeouts are 5 s / 8 s (some carrier NATs)
// the path and the rendezvous mapping are kept alive below them, `peers` never
// claims a direct path the routers no longer carry, and the first ping after
// a minute of silence answers at once.
// Each part runs from its own test file in its own lab (path-health-*.test.ts): three idle
// minutes side by side in the test tier, not one after another.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { NatLab, natLabSupport, RENDEZVOUS_IP, type Router, type Site } from '../helpers/natlab.ts';
import { trustPair } from './matrix.ts';

const support = natLabSupport();
/** Sessions rekey this often here (the default is 120 s): an idle minute is four rekey periods. */
const REKEY_MS = 15_000;
const IDLE_MS = 60_000;
/** By then the short NAT timeouts must have been learned (see the second test). */
const LEARNED_BY_MS = 30_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export type PathHealthPart = 'rekey' | '10/30' | '5/8';

export function pathHealth(part: PathHealthPart): void {
  describe(`path health (${part}): idle pairs, short NAT timeouts`, { skip: support.ok ? false : support.reason, timeout: 300_000 }, () => {
    let lab: NatLab;
    let rdv: Rendezvous;
    let work: string;
    let s1: Site;
    let s2: Site;
    let a: Agent;
    let b: Agent;

    /** How `from` reaches `to` now, from its IPC (no CLI process per sample). */
    const pathOf = async (from: Agent, to: Agent): Promise<string> => {
      const r = await from.ipc<{ peers: { address: string; pathType: string; endpoint: string | null }[] }>('peers');
      const p = r.peers.find((x) => x.address === to.address);
      return p ? `${p.pathType}${p.endpoint ? ` ${p.endpoint}` : ''}` : 'none';
    };
    /** The router's live UDP flows from its host toward `dst` (the kernel's mappings; expired ones are not listed). */
    const flows = (router: Router, host: string, dst: string, dport?: number): number =>
      lab
        .exec(router.ns, ['conntrack', '-L', '-p', 'udp', '-s', host, '-d', dst, ...(dport ? ['--dport', String(dport)] : [])])
        .split('\n')
        .filter((l) => l.includes(`dst=${dst}`)).length;
    const ping = async (): Promise<{ received: number; avgMs: number | null; pathType: string }> => {
      const r = await a.ctl(['ping', b.address, '--count', '1', '--timeout', '5s'], 30_000);
      return { received: Number(r.json?.data?.received ?? 0), avgMs: r.json?.data?.avgMs ?? null, pathType: String(r.json?.data?.pathType) };
    };
    const waitDirect = async (ms: number): Promise<void> => {
      const t0 = Date.now();
      while (Date.now() - t0 < ms) {
        await ping();
        if ((await pathOf(a, b)).startsWith('direct') && (await pathOf(b, a)).startsWith('direct')) return;
        await sleep(200);
      }
      assert.fail(`not direct after ${ms} ms: a sees ${await pathOf(a, b)}, b sees ${await pathOf(b, a)}`);
    };
    const rekeys = async (x: Agent): Promise<number> => (await x.ipc<{ sessions: { rekeys: number } }>('stats')).sessions.rekeys;

    before(async () => {
      lab = new NatLab();
      work = tmpDir('pilot-health-');
      s1 = lab.addSite('cone', 'hc1');
      s2 = lab.addSite('cone', 'hc2');
      rdv = await startRendezvous({ netns: lab.rendezvous.ns, listen: `${RENDEZVOUS_IP}:9000`, dataDir: path.join(work, 'rendezvous') });
      const agents: Agent[] = [];
      for (const h of [s1.hosts[0]!, s2.hosts[0]!]) {
        const x = new Agent(h.name, work, h.ns);
        // The rekey time is a config key (only lower than the default); written before the first start.
        fs.mkdirSync(x.home, { recursive: true, mode: 0o700 });
        fs.writeFileSync(
          path.join(x.home, 'config.json'),
          JSON.stringify({ registry: `${RENDEZVOUS_IP}:9000`, email: `${h.name}@example.com`, hostname: h.name, listen: '0.0.0.0:0', rekeyAfterMs: REKEY_MS }),
        );
        await x.start();
        agents.push(x);
      }
      [a, b] = agents as [Agent, Agent];
      await trustPair(a, b);
    });

    after(async () => {
      await a?.stop();
      await b?.stop();
      await rdv?.kill();
      lab?.cleanup();
      if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    if (part === 'rekey')
      test(`an idle pair stays direct through ${IDLE_MS / REKEY_MS} rekey periods: keepalives rekey, no relay fall-back, no first-ping stall`, async () => {
        await waitDirect(15_000);
        const rekeysBefore = (await rekeys(a)) + (await rekeys(b));
        const notDirect: string[] = [];
        const t0 = Date.now();
        while (Date.now() - t0 < IDLE_MS) {
          await sleep(500);
          const [va, vb] = [await pathOf(a, b), await pathOf(b, a)];
          if (!va.startsWith('direct') || !vb.startsWith('direct')) notDirect.push(`+${((Date.now() - t0) / 1000).toFixed(1)}s a:${va} b:${vb}`);
        }
        const p = await ping();
        const rekeyed = (await rekeys(a)) + (await rekeys(b)) - rekeysBefore;
        console.log(
          `# idle ${IDLE_MS / 1000} s (rekey every ${REKEY_MS / 1000} s): ${rekeyed} rekeys, ${notDirect.length} samples off direct, first ping ${p.avgMs} ms over ${p.pathType}`,
        );
        assert.deepEqual(notDirect.slice(0, 5), [], `direct all along (${notDirect.length} samples off it)\n${a.log().slice(-3000)}`);
        assert.ok(rekeyed >= IDLE_MS / REKEY_MS - 1, `the keepalives rekeyed the idle session (${rekeyed} rekeys)`);
        assert.equal(p.received, 1, 'the first ping after the silence is answered');
        assert.equal(p.pathType, 'direct');
        assert.ok(p.avgMs !== null && p.avgMs < 500, `no first-ping stall: ${p.avgMs} ms`);
      });

    if (part === '10/30')
      test('10 s / 30 s router UDP timeouts: a rendezvous mapping that lapsed is held again from the next heartbeat on', async () => {
        const [r1, r2] = [s1.routers[0]!, s2.routers[0]!];
        const [h1, h2] = [s1.hosts[0]!, s2.hosts[0]!];
        for (const r of [r1, r2]) lab.sh(r.ns, 'sysctl -qw net.netfilter.nf_conntrack_udp_timeout=10 net.netfilter.nf_conntrack_udp_timeout_stream=30');
        await waitDirect(15_000);
        // The lapse: both routers forget the rendezvous flow (as a router reboot or a long silence would).
        for (const r of [r1, r2]) lab.sh(r.ns, `conntrack -D -p udp -d ${RENDEZVOUS_IP} --dport 9000 >/dev/null 2>&1 || true`);
        const held: { at: number; ok: boolean }[] = [];
        const t0 = Date.now();
        while (Date.now() - t0 < 50_000) {
          await sleep(250);
          held.push({ at: Date.now() - t0, ok: flows(r1, h1.ip, RENDEZVOUS_IP, 9000) > 0 && flows(r2, h2.ip, RENDEZVOUS_IP, 9000) > 0 });
        }
        // From the first heartbeat after the lapse (within 20 s, plus the 2.5 s stream keepalive) on.
        const late = held.filter((x) => x.at > 25_000);
        const share = late.filter((x) => x.ok).length / late.length;
        console.log(`# rendezvous mapping after a lapse (10 s / 30 s): held in ${(share * 100).toFixed(0)}% of ${late.length} samples from 25 s on`);
        assert.ok(share >= 0.95, `held in ${(share * 100).toFixed(0)}% of samples: ${held.map((x) => `${(x.at / 1000).toFixed(1)}:${+x.ok}`).join(' ')}`);
      });

    // 10 s / 30 s first: what keepalives held before (keep it), then the carrier-grade 5 s / 8 s.
    for (const [udp, stream] of [
      [10, 30],
      [5, 8],
    ] as const) {
      if (part !== `${udp}/${stream}`) continue;
      test(`${udp} s / ${stream} s router UDP timeouts: mappings kept alive below them, peers truthful all along, first ping after ${IDLE_MS / 1000} s idle < 1 s`, async () => {
        const [r1, r2] = [s1.routers[0]!, s2.routers[0]!];
        const [h1, h2] = [s1.hosts[0]!, s2.hosts[0]!];
        // Per network namespace: only these two routers forget mappings this fast.
        for (const r of [r1, r2])
          lab.sh(r.ns, `sysctl -qw net.netfilter.nf_conntrack_udp_timeout=${udp} net.netfilter.nf_conntrack_udp_timeout_stream=${stream}`);
        await waitDirect(15_000);
        interface Sample {
          at: number;
          /** The side's view says direct, but what it sends directly would be dropped by the far router. */
          staleA: boolean;
          staleB: boolean;
          rdv1: boolean;
          rdv2: boolean;
        }
        const samples: Sample[] = [];
        const t0 = Date.now();
        while (Date.now() - t0 < IDLE_MS) {
          await sleep(250);
          const [va, vb] = [await pathOf(a, b), await pathOf(b, a)];
          // A packet sent on the direct path now gets in only while the far router keeps the flow
          // (port-restricted filtering); the sender's own router opens its side as it sends.
          const into1 = flows(r1, h1.ip, r2.publicIp) > 0;
          const into2 = flows(r2, h2.ip, r1.publicIp) > 0;
          samples.push({
            at: Date.now() - t0,
            staleA: va.startsWith('direct') && !into2,
            staleB: vb.startsWith('direct') && !into1,
            rdv1: flows(r1, h1.ip, RENDEZVOUS_IP, 9000) > 0,
            rdv2: flows(r2, h2.ip, RENDEZVOUS_IP, 9000) > 0,
          });
        }
        const p = await ping();
        /** Longest run of consecutive stale samples, in ms. */
        const longestStale = (key: 'staleA' | 'staleB'): number => {
          let best = 0;
          let from: number | undefined;
          for (const s of samples) {
            if (s[key]) from ??= s.at;
            else from = undefined;
            if (from !== undefined) best = Math.max(best, s.at - from + 250);
          }
          return best;
        };
        // Learning takes one lapse (within the default 10 s keepalive), and the side that only answers
        // learns the rendezvous interval from two of its peer's shorter keepalives: judged from 30 s on.
        const late = samples.filter((s) => s.at > LEARNED_BY_MS);
        const rdvHeld = late.filter((s) => s.rdv1 && s.rdv2).length / Math.max(1, late.length);
        const stale = Math.max(longestStale('staleA'), longestStale('staleB'));
        const directShare = samples.filter((s) => !s.staleA && !s.staleB).length / samples.length;
        console.log(
          `# ${udp} s / ${stream} s UDP timeouts, ${IDLE_MS / 1000} s idle: longest 'direct' without a router mapping ${stale} ms; ` +
            `rendezvous mappings held in ${(rdvHeld * 100).toFixed(0)}% of samples after ${LEARNED_BY_MS / 1000} s; truthful in ${(directShare * 100).toFixed(0)}% of ${samples.length} samples; ` +
            `first ping ${p.avgMs} ms over ${p.pathType}`,
        );
        const story = (x: Agent): string =>
          x
            .log()
            .split('\n')
            .filter((l) => /peer path|uplink|polic/.test(l))
            .slice(-25)
            .join('\n');
        const why = `\n--- a\n${story(a)}\n--- b\n${story(b)}\n--- samples\n${samples.map((s) => `${s.at} ${+s.staleA}${+s.staleB} ${+s.rdv1}${+s.rdv2}`).join(' | ')}`;
        assert.equal(p.received, 1, `the first ping after the silence is answered${why}`);
        assert.ok(p.avgMs !== null && p.avgMs < 1000, `first ping after ${IDLE_MS / 1000} s idle answered in ${p.avgMs} ms`);
        // One lapse is how the keepalive interval is learned: from the far router's timeout to the
        // next keepalive (10 s at most) and its 1 s check.
        assert.ok(stale <= 11_000 - udp * 1000 + 1_000, `peers said direct for ${stale} ms after the routers had forgotten the path${why}`);
        assert.ok(
          late.every((s) => !s.staleA && !s.staleB),
          `once learned (after ${LEARNED_BY_MS / 1000} s), never direct without a mapping${why}`,
        );
        assert.ok(rdvHeld >= 0.95, `the rendezvous mappings were kept open (${(rdvHeld * 100).toFixed(0)}% of samples after ${LEARNED_BY_MS / 1000} s)${why}`);
      });
    }
  });
}
