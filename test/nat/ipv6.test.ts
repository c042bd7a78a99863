// IPv6 in the NAT lab (real netfilter/ip6tables and a real NAT64, tayga):
// (1) a dual-stack pair, both also behind IPv4 cone NAT (so IPv4 direct would work
//     too), goes direct over IPv6 through two stateful IPv6 home-router firewalls;
//     one of them reaches the rendezvous at its IPv6 address, over UDP (before
//     this change the daemon's IPv4-only socket fell back to the TCP uplink);
// (2) an IPv6-only agent behind NAT64 reaches a v4-only rendezvous by name
//     (DNS64 answer in /etc/netns/<ns>/hosts), learns the NAT64 prefix (RFC 7050)
//     and streams to / pings an IPv4-only agent.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, ROOT, run, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { NatLab, natLabSupport, RENDEZVOUS_IP, type Host, type Site } from '../helpers/natlab.ts';
import { NatLabV6, nat64Support, RENDEZVOUS_IP6, v6LabSupport } from '../helpers/natlab-v6.ts';
import { trustPair } from './matrix.ts';

const support = natLabSupport();
const v6 = v6LabSupport();
const n64 = nat64Support();
const skip = !support.ok ? support.reason : !v6.ok ? v6.reason : !n64.ok ? n64.reason : false;
const ECHO_SCRIPT = path.join(ROOT, 'test/helpers/echo-transfer.ts');
const RDV_NAME = 'rendezvous.lab.example';

interface PeerView {
  address: string;
  pathType: 'direct' | 'relay' | 'none';
  endpoint: string | null;
}

async function peerView(a: Agent, b: Agent): Promise<PeerView | undefined> {
  const r = await a.ctl(['peers']);
  assert.equal(r.code, 0, r.stderr);
  return (r.json.data.peers as PeerView[]).find((p) => p.address === b.address);
}

/** Poll both sides' `peers` until `ok` holds for both (or the deadline): the views at the end, and when. */
async function waitPaths(a: Agent, b: Agent, ok: (v: PeerView | undefined) => boolean, ms: number): Promise<{ va?: PeerView; vb?: PeerView; atMs: number }> {
  const t0 = Date.now();
  for (;;) {
    const [va, vb] = await Promise.all([peerView(a, b), peerView(b, a)]);
    if ((ok(va) && ok(vb)) || Date.now() - t0 > ms) return { va, vb, atMs: Date.now() - t0 };
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function echo(from: Agent, to: Agent, bytes: number): Promise<{ intact: boolean; firstByteMs: number; seconds: number }> {
  const s = await run(['ip', 'netns', 'exec', from.netns!, process.execPath, ECHO_SCRIPT, from.socket, to.address, String(bytes)], {}, 60_000);
  assert.equal(s.code, 0, `echo-transfer: ${s.stderr}`);
  const out = JSON.parse(s.stdout.trim().split('\n').pop()!) as { bytes: number; sentHash: string; echoHash: string; firstByteMs: number; seconds: number };
  return { intact: out.bytes === bytes && out.sentHash === out.echoHash, firstByteMs: out.firstByteMs, seconds: out.seconds };
}

describe('IPv6 and NAT64 in the NAT lab', { skip, timeout: 240_000 }, () => {
  let lab: NatLab;
  let lab6: NatLabV6;
  let rdv: Rendezvous | undefined;
  let work: string;
  const agents: Record<string, Agent> = {};
  let sites: Record<'ds1' | 'ds2' | 'v4o' | 'n64', Site>;
  const host = (k: keyof typeof sites): Host => sites[k].hosts[0]!;

  before(async () => {
    lab = new NatLab();
    lab6 = new NatLabV6(lab);
    work = tmpDir('pilot-ipv6-');
    sites = { ds1: lab.addSite('cone', 'ds1'), ds2: lab.addSite('cone', 'ds2'), v4o: lab.addSite('cone', 'v4o'), n64: lab.addSite('cone', 'n64') };
    lab6.dualStack(sites.ds1);
    lab6.dualStack(sites.ds2);
    lab6.nat64(sites.n64, { [RDV_NAME]: RENDEZVOUS_IP });
    // 0.0.0.0 = every address of both families (one "::" socket each for UDP, TCP).
    rdv = await startRendezvous({ netns: lab.rendezvous.ns, listen: '0.0.0.0:9000', dataDir: path.join(work, 'rendezvous') });
    const registry: Record<string, string> = {
      ds1: `[${RENDEZVOUS_IP6}]:9000`,
      ds2: `${RENDEZVOUS_IP}:9000`,
      v4o: `${RENDEZVOUS_IP}:9000`,
      n64: `${RDV_NAME}:9000`,
    };
    // One agent that cannot start fails its own test (with the reason), not the whole suite.
    await Promise.all(
      (Object.keys(sites) as (keyof typeof sites)[]).map(async (k) => {
        const a = new Agent(k, work, host(k).ns);
        try {
          await a.start(['--registry', registry[k]!, '--email', `${k}@example.com`, '--hostname', k, '--listen', '0.0.0.0:0']);
          agents[k] = a;
        } catch (err) {
          startErrors[k] = (err as Error).message;
        }
      }),
    );
  });
  const startErrors: Record<string, string> = {};
  const started = (...ks: string[]): void => {
    for (const k of ks) assert.ok(agents[k], `agent ${k} did not start: ${startErrors[k]}`);
  };

  after(async () => {
    await Promise.all(Object.values(agents).map((a) => a.stop()));
    await rdv?.kill();
    lab?.cleanup();
    lab6?.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('a rendezvous at an IPv6 address is reached over UDP, not the TCP uplink', async () => {
    started('ds1');
    const info = await agents.ds1!.ctl(['info']);
    assert.equal(info.code, 0, info.stderr);
    assert.equal(info.json.data.uplink, 'udp', `uplink ${info.json.data.uplink}; log:\n${agents.ds1!.log().slice(-2000)}`);
    assert.match(info.json.data.observed, /^\[2001:db8:1::10\]:\d+$/, 'the rendezvous saw our IPv6 address (no NAT in front of it)');
  });

  test('dual-stack pair behind IPv4 NAT and IPv6 firewalls goes direct over IPv6', async () => {
    started('ds1', 'ds2');
    const [a, b] = [agents.ds1!, agents.ds2!];
    const t0 = Date.now();
    await trustPair(a, b);
    const e = await echo(a, b, 4 * 1024 * 1024);
    assert.ok(e.intact, 'stream intact');
    const v6Path = (v: PeerView | undefined): boolean => v?.pathType === 'direct' && /^\[2001:db8:/.test(v.endpoint ?? '');
    const w = await waitPaths(a, b, v6Path, 20_000);
    assert.ok(v6Path(w.va) && v6Path(w.vb), `paths ${JSON.stringify(w.va)} / ${JSON.stringify(w.vb)}`);
    assert.equal(w.va!.endpoint?.replace(/:\d+$/, ''), `[${lab6.ip6.get(host('ds2'))}]`);
    // More data after direct, then the routers' own view: the IPv6 flow between the two hosts carried it.
    const again = await echo(a, b, 2 * 1024 * 1024);
    assert.ok(again.intact);
    const r1 = sites.ds1.routers[0]!;
    const r2 = sites.ds2.routers[0]!;
    const bytes1 = lab6.udp6BytesWith(r1, lab6.ip6.get(host('ds2'))!);
    const bytes2 = lab6.udp6BytesWith(r2, lab6.ip6.get(host('ds1'))!);
    assert.ok(bytes1 > 2 * 1024 * 1024, `router ds1 saw ${bytes1} IPv6 bytes with ds2`);
    assert.ok(bytes2 > 2 * 1024 * 1024, `router ds2 saw ${bytes2} IPv6 bytes with ds1`);
    const ping = await a.ctl(['ping', b.address, '--count', '3', '--interval', '200ms', '--timeout', '2s']);
    assert.equal(ping.json?.data?.received, 3, ping.stdout);
    console.log(
      `# dual-stack: first byte ${e.firstByteMs} ms, IPv6 direct ${Date.now() - t0 - w.atMs > 0 ? w.atMs : 0} ms after the echo (` +
        `${((Date.now() - t0) / 1000).toFixed(1)} s total); router IPv6 bytes ${bytes1}/${bytes2}; unsolicited IPv6 drops ${lab6.wan6Drops(r1)}/${lab6.wan6Drops(r2)}`,
    );
  });

  test('IPv6-only agent behind NAT64 reaches the v4-only rendezvous by name and streams to a v4-only agent', async () => {
    started('n64', 'v4o');
    const [a, b] = [agents.n64!, agents.v4o!];
    const info = await a.ctl(['info']);
    assert.equal(info.json.data.uplink, 'udp', 'UDP through NAT64');
    assert.ok(/NAT64/.test(a.log()) && /rfc7050/.test(a.log()), `the daemon learnt the prefix from ipv4only.arpa; log:\n${a.log().slice(-1500)}`);
    const before64 = lab6.nat64Packets(sites.n64.routers[0]!);
    await trustPair(a, b);
    const e = await echo(a, b, 4 * 1024 * 1024);
    assert.ok(e.intact, 'stream intact');
    const back = await echo(b, a, 1024 * 1024);
    assert.ok(back.intact, 'and the other way');
    const ping = await a.ctl(['ping', b.address, '--count', '3', '--interval', '200ms', '--timeout', '2s']);
    assert.equal(ping.json?.data?.received, 3, ping.stdout);
    const translated = lab6.nat64Packets(sites.n64.routers[0]!) - before64;
    assert.ok(translated > 1000, `tayga translated ${translated} packets`);
    // The v4-only side sees the NAT64 router's IPv4 address; the IPv6-only side a plain IPv4 endpoint (synthesised only on the wire).
    const w = await waitPaths(a, b, (v) => v?.pathType === 'direct', 15_000);
    console.log(
      `# nat64: first byte ${e.firstByteMs} ms; paths ${w.va?.pathType} ${w.va?.endpoint} / ${w.vb?.pathType} ${w.vb?.endpoint}; tayga packets ${translated}`,
    );
    assert.equal(w.va?.pathType, 'direct', `n64 -> v4o ${JSON.stringify(w.va)}`);
    assert.match(w.va!.endpoint!, /^198\.51\.100\.\d+:\d+$/, 'the edge turns the synthesised address back into IPv4');
  });
});
