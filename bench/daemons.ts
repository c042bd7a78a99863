// Two real daemons on loopback that trust each other, behind one real
// rendezvous: what the latency, streams and scale benchmarks stand on.
import fs from 'node:fs';
import { Agent, startRendezvous, tmpDir, type Rendezvous } from '../test/helpers/cluster.ts';

export interface Pair {
  rdv: Rendezvous;
  a: Agent;
  b: Agent;
  /** Hostnames the daemons registered. */
  aName: string;
  bName: string;
  work: string;
  stop(): Promise<void>;
}

let seq = 0;

/** Start a daemon registered as `hostname` (loopback only). */
export async function startAgent(rdv: Rendezvous, work: string, hostname: string, extra: string[] = []): Promise<Agent> {
  const ag = new Agent(hostname, work);
  await ag.start(['--registry', rdv.addr, '--email', `${hostname}@example.com`, '--hostname', hostname, '--listen', '127.0.0.1:0', ...extra]);
  return ag;
}

/** Make `a` and `b` trust each other (zero trust: both must agree). */
export async function trustEachOther(a: Agent, b: Agent): Promise<void> {
  const r1 = await b.ctl(['handshake', a.address]);
  if (r1.code !== 0) throw new Error(`handshake failed: ${r1.stderr}`);
  const r2 = await a.ctl(['approve', b.address]);
  if (r2.code !== 0) throw new Error(`approve failed: ${r2.stderr}`);
}

/** A fresh rendezvous (or `rdv`) and two trusting daemons; warm = one ping so the session exists. */
export async function startPair(tag: string, opts: { rdv?: Rendezvous; warm?: boolean } = {}): Promise<Pair> {
  const work = tmpDir(`pilot-bench-${tag}-`);
  const own = opts.rdv === undefined;
  const rdv = opts.rdv ?? (await startRendezvous());
  const n = `${process.pid % 10000}-${seq++}`;
  const aName = `${tag}-a-${n}`;
  const bName = `${tag}-b-${n}`;
  const agents: Agent[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(agents.map((x) => x.stop()));
    if (own) await rdv.kill();
    fs.rmSync(work, { recursive: true, force: true });
  };
  try {
    const a = await startAgent(rdv, work, aName);
    agents.push(a);
    const b = await startAgent(rdv, work, bName);
    agents.push(b);
    await trustEachOther(a, b);
    if (opts.warm !== false) {
      const w = await a.ctl(['ping', bName, '--count', '3', '--interval', '10ms']);
      if (w.code !== 0) throw new Error(`warm-up ping failed: ${w.stderr}`);
    }
    return { rdv, a, b, aName, bName, work, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
