// Two real daemons (started by the real pilotctl) that trust each other, and a
// real rendezvous, on loopback: the setting of every built-in service test.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';

export interface Pair {
  rdv: Rendezvous;
  work: string;
  a: Agent;
  b: Agent;
  agents: Agent[];
  /** A third daemon that nobody trusts. */
  stranger(extra?: string[]): Promise<Agent>;
  stop(): Promise<void>;
}

export async function startAgent(rdv: Rendezvous, work: string, name: string, extra: string[] = [], services?: Record<string, unknown>): Promise<Agent> {
  const a = new Agent(name, work);
  if (services) {
    fs.mkdirSync(a.home, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(a.home, 'services.json'), JSON.stringify(services));
  }
  await a.start(['--registry', rdv.addr, '--email', `${name}@example.com`, '--hostname', name, '--listen', '127.0.0.1:0', ...extra]);
  return a;
}

export async function trustEachOther(a: Agent, b: Agent): Promise<void> {
  const hs = await b.ctl(['handshake', a.address, 'tests']);
  assert.equal(hs.code, 0, hs.stderr);
  const ap = await a.ctl(['approve', b.address]);
  assert.equal(ap.code, 0, ap.stderr);
  // b learns of the approval by a registry push: wait until it enforces it
  for (let i = 0; i < 50; i++) {
    const t = await b.ctl(['trust']);
    if (t.json?.data?.trusted?.some((x: { peer: string }) => x.peer === a.address)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail('trust did not reach both sides');
}

export async function startPair(prefix: string, opts: { aServices?: Record<string, unknown>; bServices?: Record<string, unknown> } = {}): Promise<Pair> {
  const work = tmpDir(`pilot-svc-${prefix}-`);
  const rdv = await startRendezvous();
  const agents: Agent[] = [];
  const a = await startAgent(rdv, work, `${prefix}-alpha`, [], opts.aServices);
  agents.push(a);
  const b = await startAgent(rdv, work, `${prefix}-beta`, [], opts.bServices);
  agents.push(b);
  await trustEachOther(a, b);
  return {
    rdv,
    work,
    a,
    b,
    agents,
    stranger: async (extra: string[] = []) => {
      const s = await startAgent(rdv, work, `${prefix}-stranger`, extra);
      agents.push(s);
      return s;
    },
    stop: async () => {
      for (const x of agents) await x.stop();
      await rdv.kill();
      // files tests move hundreds of MiB: leave nothing behind (set PILOT_KEEP_TEST_DIRS to debug)
      if (!process.env.PILOT_KEEP_TEST_DIRS) fs.rmSync(work, { recursive: true, force: true });
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
