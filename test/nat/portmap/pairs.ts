// Port mapping as a benchmark row set for `npm run bench:nat`: a symmetric NAT
// whose router runs Debian's miniupnpd ("symmetric+upnp") against public, cone
// and symmetric peers, each next to the same pair with a plain symmetric router
// (the reference, same run). Per pair: cold time to first byte (dial to first
// echoed byte of a 10 MiB echo), time to direct (dial to both daemons saying
// direct), and the bytes the mapping-side router counted toward the peer's
// public address (what really went direct).
import fs from 'node:fs';
import path from 'node:path';
import { Agent, ROOT, run, startRendezvous, tmpDir } from '../../helpers/cluster.ts';
import { NatLab, RENDEZVOUS_IP, type Host, type SiteKind } from '../../helpers/natlab.ts';
import { startMiniupnpd, type Miniupnpd } from '../../helpers/miniupnpd.ts';
import { disjointPool, trustPair } from '../matrix.ts';

const ECHO_SCRIPT = path.join(ROOT, 'test/helpers/echo-transfer.ts');
const PORT = 9000;
export const PORTMAP_PARTNERS: readonly SiteKind[] = ['public', 'cone', 'symmetric'];

export interface PortmapPairResult {
  kind: 'symmetric+upnp' | 'symmetric';
  partner: SiteKind;
  ok: boolean;
  error?: string;
  path?: 'direct' | 'relay' | 'none';
  /** The partner reaches the mapped side at its mapping (not at an endpoint the NAT picked). */
  viaMapping?: boolean;
  firstByteMs?: number;
  directAfterMs?: number;
  echoSeconds?: number;
  intact?: boolean;
  routerDirectBytes?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runPortmapPairs(opts: { bytes?: number; log?: (l: string) => void } = {}): Promise<PortmapPairResult[]> {
  const bytes = opts.bytes ?? 10 * 1024 * 1024;
  const lab = new NatLab();
  const work = tmpDir('pilot-portmap-bench-');
  const mus: Miniupnpd[] = [];
  const agents: Agent[] = [];
  try {
    const short: Record<string, string> = { public: 'p', cone: 'c', symmetric: 's' };
    const plan = PORTMAP_PARTNERS.flatMap((partner) =>
      (['symmetric+upnp', 'symmetric'] as const).map((kind) => ({
        kind,
        partner,
        mine: lab.addSite('symmetric', `${kind === 'symmetric' ? 'ps' : 'us'}${short[partner]}`),
        theirs: lab.addSite(partner, `${kind === 'symmetric' ? 'pp' : 'up'}${short[partner]}`),
      })),
    );
    for (const p of plan) if (p.kind === 'symmetric+upnp') mus.push(await startMiniupnpd(lab, p.mine.routers[0]!));
    const rdv = await startRendezvous({ netns: lab.rendezvous.ns, listen: `${RENDEZVOUS_IP}:${PORT}`, dataDir: path.join(work, 'rendezvous') });
    try {
      const start = async (h: Host): Promise<Agent> => {
        const a = new Agent(h.name, work, h.ns);
        await a.start(['--registry', `${RENDEZVOUS_IP}:${PORT}`, '--email', `${h.name}@example.com`, '--hostname', h.name, '--listen', '0.0.0.0:0']);
        agents.push(a);
        return a;
      };
      const pairs = [];
      for (const p of plan) pairs.push({ ...p, a: await start(p.mine.hosts[0]!), b: await start(p.theirs.hosts[0]!) });
      // The mapping side has its mapping before the clock starts (it is asked at start-up, in the background).
      const deadline = Date.now() + 15_000;
      for (const p of pairs.filter((x) => x.kind === 'symmetric+upnp'))
        while (!(await p.a.ipc('info')).portmap?.external && Date.now() < deadline) await sleep(100);
      const results: PortmapPairResult[] = [];
      await disjointPool(
        pairs,
        (p) => [p.a.name, p.b.name],
        2,
        async (p) => {
          const r: PortmapPairResult = { kind: p.kind, partner: p.partner, ok: false };
          try {
            await trustPair(p.b, p.a);
            const t0 = Date.now();
            const echo = run(['ip', 'netns', 'exec', p.b.netns!, process.execPath, ECHO_SCRIPT, p.b.socket, p.a.address, String(bytes)], {}, 60_000);
            const isDirect = async (): Promise<boolean> => {
              const [x, y] = await Promise.all([p.a.ipc('peers'), p.b.ipc('peers')]);
              const px = (x.peers as { address: string; pathType: string }[]).find((q) => q.address === p.b.address);
              const py = (y.peers as { address: string; pathType: string; endpoint: string | null }[]).find((q) => q.address === p.a.address);
              const mapped: string | null | undefined = (await p.a.ipc('info')).portmap?.external;
              r.viaMapping = py?.pathType === 'direct' && typeof mapped === 'string' && py.endpoint === mapped;
              return px?.pathType === 'direct' && py?.pathType === 'direct';
            };
            let done = false;
            void echo.then(() => {
              done = true;
            });
            while (!done && r.directAfterMs === undefined) {
              if (await isDirect()) r.directAfterMs = Date.now() - t0;
              else await sleep(100);
            }
            const s = await echo;
            if (s.code !== 0) throw new Error(`echo exit ${s.code}: ${s.stderr.trim().split('\n').pop()}`);
            const out = JSON.parse(s.stdout.trim().split('\n').pop()!) as {
              bytes: number;
              sentHash: string;
              echoHash: string;
              seconds: number;
              firstByteMs: number;
            };
            r.firstByteMs = out.firstByteMs;
            r.echoSeconds = out.seconds;
            r.intact = out.bytes === bytes && out.sentHash === out.echoHash;
            // Not direct during the echo: give it 10 s more (a symmetric pair never gets there without a mapping).
            const until = Date.now() + 10_000;
            while (r.directAfterMs === undefined && Date.now() < until) {
              if (await isDirect()) r.directAfterMs = Date.now() - t0;
              else await sleep(250);
            }
            r.path = r.directAfterMs !== undefined ? 'direct' : 'relay';
            const peerPublic = p.theirs.routers.at(-1)?.publicIp ?? p.theirs.hosts[0]!.ip;
            r.routerDirectBytes = lab.udpBytesWith(p.mine.routers[0]!, peerPublic);
            r.ok = r.intact;
          } catch (err) {
            r.error = (err as Error).message.slice(0, 200);
          }
          results.push(r);
          opts.log?.(
            `${r.kind} x ${r.partner}: ${r.ok ? r.path : `FAIL ${r.error}`} first byte ${r.firstByteMs} ms, direct after ${r.directAfterMs ?? '-'} ms`,
          );
        },
      );
      await Promise.all(agents.map((a) => a.stop()));
      const order = (r: PortmapPairResult): number => PORTMAP_PARTNERS.indexOf(r.partner) * 2 + (r.kind === 'symmetric' ? 1 : 0);
      return results.sort((x, y) => order(x) - order(y));
    } finally {
      await rdv.kill();
    }
  } finally {
    for (const m of mus) await m.stop().catch(() => {});
    lab.cleanup();
    fs.rmSync(work, { recursive: true, force: true });
  }
}
