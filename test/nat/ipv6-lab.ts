// The IPv6 kinds of the NAT lab, run as pairs (used by test/nat/ipv6.test.ts and
// by `npm run bench:nat`, which prints them next to the IPv4 matrix):
//   dual-cone  x dual-cone   both behind IPv4 cone NAT and an IPv6 firewall: IPv6 direct preferred
//   dual-sym   x dual-sym    both behind IPv4 *symmetric* NAT (IPv4 alone relays): IPv6 direct
//   nat64      x v4-cone     IPv6-only behind NAT64 (rendezvous by name via DNS64) to an IPv4-only agent
//   v4-cone    x v4-cone     the same-run IPv4 reference (both IPv4-only behind cone NAT)
// One agent (dual-cone 1) reaches the rendezvous at its IPv6 address, the rest at IPv4
// or by name; a second IPv6-only agent is given it as an IPv4 literal (NAT64 synthesis). Per pair: trust, a cold echo (time to first byte), when both sides
// report the direct path they must (polled over IPC every 100 ms from the dial),
// more data once direct, ping, and the routers' own byte counts of the direct flow.
import fs from 'node:fs';
import path from 'node:path';
import { Agent, ROOT, run, startRendezvous, tmpDir } from '../helpers/cluster.ts';
import { NatLab, RENDEZVOUS_IP, type Host, type Router, type Site } from '../helpers/natlab.ts';
import { NatLabV6, RENDEZVOUS_IP6 } from '../helpers/natlab-v6.ts';
import { trustPair } from './matrix.ts';

const ECHO_SCRIPT = path.join(ROOT, 'test/helpers/echo-transfer.ts');
export const RDV_NAME = 'rendezvous.lab.example';

export type V6Kind = 'dual-cone' | 'dual-sym' | 'nat64' | 'v4-cone';

export interface PeerView {
  address: string;
  pathType: 'direct' | 'relay' | 'none';
  endpoint: string | null;
}

export interface V6PairResult {
  a: V6Kind;
  b: V6Kind;
  ok: boolean;
  error?: string;
  /** What each side reports for the other at the end. */
  viewA?: PeerView;
  viewB?: PeerView;
  /** The path the pair must end on: "ipv6" (an [IPv6] endpoint) or "ipv4" (direct, IPv4 endpoint). */
  want: 'ipv6' | 'ipv4';
  firstByteMs?: number;
  /** From the first dial (the cold echo, after trust) to both sides reporting the wanted path. */
  directMs?: number;
  /** The trust handshake before it (handshake, approve, mutual). */
  trustMs?: number;
  intact?: boolean;
  pingReceived?: number;
  pingAvgMs?: number | null;
  /** Bytes the routers counted on the direct flow (IPv6 flow between the hosts; NAT64: packets tayga translated). */
  routerBytes?: number[];
  nat64Packets?: number;
  /** Unsolicited IPv6 packets the two firewalls dropped (simultaneous open still needed). */
  firewallDrops?: number[];
  seconds: number;
}

export interface V6LabRun {
  results: V6PairResult[];
  /** Facts about single agents: uplink in use, observed endpoint, NAT64 prefix source (from the log). */
  agents: Record<string, { uplink?: string; observed?: string | null; nat64?: string; startError?: string }>;
  setupSeconds: number;
  seconds: number;
}

export const wants = (want: 'ipv6' | 'ipv4', v: PeerView | undefined): boolean =>
  v?.pathType === 'direct' && (want === 'ipv6' ? /^\[/.test(v.endpoint ?? '') : /^\d/.test(v.endpoint ?? ''));

async function view(a: Agent, b: Agent): Promise<PeerView | undefined> {
  return ((await a.ipc('peers')).peers as PeerView[]).find((p) => p.address === b.address);
}

async function echo(from: Agent, to: Agent, bytes: number): Promise<{ intact: boolean; firstByteMs: number }> {
  const s = await run(['ip', 'netns', 'exec', from.netns!, process.execPath, ECHO_SCRIPT, from.socket, to.address, String(bytes)], {}, 60_000);
  if (s.code !== 0) throw new Error(`echo-transfer exit ${s.code}: ${s.stderr.trim().split('\n').pop()}`);
  const out = JSON.parse(s.stdout.trim().split('\n').pop()!) as { bytes: number; sentHash: string; echoHash: string; firstByteMs: number };
  return { intact: out.bytes === bytes && out.sentHash === out.echoHash, firstByteMs: out.firstByteMs };
}

interface Pair {
  a: V6Kind;
  b: V6Kind;
  x: string;
  y: string;
  want: 'ipv6' | 'ipv4';
}

export async function runIpv6Lab(opts: { bytes?: number; log?: (line: string) => void } = {}): Promise<V6LabRun> {
  const t0 = Date.now();
  const bytes = opts.bytes ?? 4 * 1024 * 1024;
  const log = opts.log ?? (() => {});
  const lab = new NatLab();
  const lab6 = new NatLabV6(lab);
  const work = tmpDir('pilot-ipv6-');
  const agents: Record<string, Agent> = {};
  const facts: V6LabRun['agents'] = {};
  try {
    const sites: Record<string, Site> = {
      dc1: lab.addSite('cone', 'dc1'),
      dc2: lab.addSite('cone', 'dc2'),
      ds1: lab.addSite('symmetric', 'ds1'),
      ds2: lab.addSite('symmetric', 'ds2'),
      v4o: lab.addSite('cone', 'v4o'),
      v4p: lab.addSite('cone', 'v4p'),
      v4q: lab.addSite('cone', 'v4q'),
      n64: lab.addSite('cone', 'n64'),
      // Another IPv6-only host that is given the rendezvous as an IPv4 literal (no DNS64 can help).
      n64l: lab.addSite('cone', 'n64l'),
    };
    for (const k of ['dc1', 'dc2', 'ds1', 'ds2']) lab6.dualStack(sites[k]!);
    lab6.nat64(sites.n64!, { [RDV_NAME]: RENDEZVOUS_IP });
    lab6.nat64(sites.n64l!);
    const host = (k: string): Host => sites[k]!.hosts[0]!;
    const router = (k: string): Router => sites[k]!.routers[0]!;
    // 0.0.0.0 = every address of both families (one "::" socket each for UDP and TCP).
    const rdv = await startRendezvous({ netns: lab.rendezvous.ns, listen: '0.0.0.0:9000', dataDir: path.join(work, 'rendezvous') });
    try {
      const registry = (k: string): string => (k === 'dc1' ? `[${RENDEZVOUS_IP6}]:9000` : k === 'n64' ? `${RDV_NAME}:9000` : `${RENDEZVOUS_IP}:9000`);
      await Promise.all(
        Object.keys(sites).map(async (k) => {
          const a = new Agent(k, work, host(k).ns);
          try {
            await a.start(['--registry', registry(k), '--email', `${k}@example.com`, '--hostname', k, '--listen', '0.0.0.0:0']);
            agents[k] = a;
            const info = await a.ipc('info');
            facts[k] = { uplink: info.uplink, observed: info.observed, nat64: /\b(rfc7050|well-known)\b/.exec(a.log())?.[1] };
          } catch (err) {
            facts[k] = { startError: (err as Error).message };
          }
        }),
      );
      const setupSeconds = (Date.now() - t0) / 1000;
      log(`IPv6 lab + rendezvous + ${Object.keys(agents).length} agents up in ${setupSeconds.toFixed(1)}s`);
      const pairs: Pair[] = [
        { a: 'dual-cone', b: 'dual-cone', x: 'dc1', y: 'dc2', want: 'ipv6' },
        { a: 'dual-sym', b: 'dual-sym', x: 'ds1', y: 'ds2', want: 'ipv6' },
        { a: 'nat64', b: 'v4-cone', x: 'n64', y: 'v4o', want: 'ipv4' },
        { a: 'v4-cone', b: 'v4-cone', x: 'v4p', y: 'v4q', want: 'ipv4' },
      ];
      // The pairs share no daemon: all at once (so the IPv4 reference runs under the same load).
      const results = await Promise.all(
        pairs.map(async (p): Promise<V6PairResult> => {
          const r: V6PairResult = { a: p.a, b: p.b, ok: false, want: p.want, seconds: 0 };
          const p0 = Date.now();
          try {
            const [A, B] = [agents[p.x], agents[p.y]];
            if (!A || !B) throw new Error(`agent did not start: ${facts[p.x]?.startError ?? facts[p.y]?.startError}`);
            const n64Before = p.a === 'nat64' ? lab6.nat64Packets(router('n64')) : 0;
            await trustPair(A, B);
            const dial = Date.now();
            r.trustMs = dial - p0;
            // Poll both sides from now on (100 ms) while the cold echo runs: time to the wanted direct path.
            let stop = false;
            const poller = (async () => {
              while (!stop) {
                const [va, vb] = await Promise.all([view(A, B), view(B, A)]);
                if (wants(p.want, va) && wants(p.want, vb)) {
                  r.directMs = Date.now() - dial;
                  return;
                }
                if (Date.now() - dial > 40_000) return;
                await new Promise((res) => setTimeout(res, 100));
              }
            })();
            const e = await echo(A, B, bytes);
            r.firstByteMs = e.firstByteMs;
            r.intact = e.intact;
            if (!e.intact) throw new Error('echo not intact');
            await poller;
            stop = true;
            // Data on the direct path, the other way round too, then the kernel's view of it.
            const back = await echo(B, A, 2 * 1024 * 1024);
            if (!back.intact) throw new Error('echo back not intact');
            const ping = await A.ctl(['ping', B.address, '--count', '3', '--interval', '200ms', '--timeout', '2s']);
            r.pingReceived = ping.json?.data?.received;
            r.pingAvgMs = ping.json?.data?.avgMs;
            [r.viewA, r.viewB] = await Promise.all([view(A, B), view(B, A)]);
            if (p.want === 'ipv6') {
              r.routerBytes = [lab6.udp6BytesWith(router(p.x), lab6.ip6.get(host(p.y))!), lab6.udp6BytesWith(router(p.y), lab6.ip6.get(host(p.x))!)];
              r.firewallDrops = [lab6.wan6Drops(router(p.x)), lab6.wan6Drops(router(p.y))];
            } else {
              if (p.a === 'nat64') r.nat64Packets = lab6.nat64Packets(router('n64')) - n64Before;
              r.routerBytes = [lab.udpBytesWith(router(p.y), router(p.x).publicIp)];
            }
            r.ok = r.pingReceived === 3;
            if (!r.ok) r.error = `ping ${r.pingReceived}/3`;
          } catch (err) {
            r.error = (err as Error).message.slice(0, 300);
          }
          r.seconds = (Date.now() - p0) / 1000;
          log(
            `${p.a} x ${p.b}: ${r.ok ? (r.viewA?.pathType ?? 'none') : 'FAIL'} ${r.viewA?.endpoint ?? ''} first byte ${r.firstByteMs ?? '-'} ms, direct ${r.directMs ?? '-'} ms${r.error ? ` (${r.error})` : ''}`,
          );
          return r;
        }),
      );
      await Promise.all(Object.values(agents).map((a) => a.stop()));
      return { results, agents: facts, setupSeconds, seconds: (Date.now() - t0) / 1000 };
    } finally {
      await rdv.kill();
    }
  } finally {
    lab.cleanup();
    lab6.cleanup();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** Markdown rows for BENCHMARKS.md / bench:nat. */
export function formatIpv6Table(m: V6LabRun): string {
  const lines = ['| pair (IPv6 kinds) | path | endpoint | first byte | time to direct | ping avg |', '|---|---|---|---|---|---|'];
  for (const r of m.results) {
    lines.push(
      `| ${r.a} x ${r.b} | ${r.ok ? (r.viewA?.pathType ?? 'none') : 'FAIL'} | ${r.viewA?.endpoint ?? '-'} | ${r.firstByteMs ?? '-'} ms | ${r.directMs ?? '-'} ms | ${r.pingAvgMs ?? '-'} ms |`,
    );
  }
  return lines.join('\n');
}
