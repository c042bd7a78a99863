// Shared setup for the SDK tests: a real rendezvous and real daemons started
// by the real pilotctl, made mutually trusted the way an operator would.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Duplex } from 'node:stream';
import { connect, type PilotNode } from '../../src/sdk/index.ts';
import { Agent, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';

export interface Net {
  rdv: Rendezvous;
  work: string;
  agents: Agent[];
  agent(name: string, extra?: string[]): Promise<Agent>;
  stop(): Promise<void>;
}

export async function startNet(): Promise<Net> {
  const work = tmpDir('pilot-sdk-');
  const rdv = await startRendezvous();
  const agents: Agent[] = [];
  return {
    rdv,
    work,
    agents,
    agent: async (name, extra = []) => {
      const a = new Agent(name, work);
      await a.start(['--registry', rdv.addr, '--email', `${name}@example.com`, '--hostname', name, '--listen', '127.0.0.1:0', ...extra]);
      agents.push(a);
      return a;
    },
    stop: async () => {
      for (const a of agents) await a.stop();
      await rdv.kill();
      fs.rmSync(work, { recursive: true, force: true });
      fs.rmSync(rdv.dataDir, { recursive: true, force: true });
    },
  };
}

/** Mutual trust through the real CLI: b asks, a approves. */
export async function trustPair(a: Agent, b: Agent): Promise<void> {
  const hs = await b.ctl(['handshake', a.address, 'sdk tests']);
  assert.equal(hs.code, 0, hs.stderr);
  const ap = await a.ctl(['approve', b.address]);
  assert.equal(ap.code, 0, ap.stderr);
}

/** Two agents `<prefix>-alpha` and `<prefix>-beta` on a fresh net, trusted both ways, with an SDK connection to each. */
export interface TrustedPair {
  net: Net;
  alpha: Agent;
  beta: Agent;
  na: PilotNode;
  nb: PilotNode;
}

export async function startTrustedPair(prefix: string): Promise<TrustedPair> {
  const net = await startNet();
  const alpha = await net.agent(`${prefix}-alpha`);
  const beta = await net.agent(`${prefix}-beta`);
  await trustPair(alpha, beta);
  return { net, alpha, beta, na: await connect({ socket: alpha.socket }), nb: await connect({ socket: beta.socket }) };
}

/** Closes what startTrustedPair made (any part may be missing when before() failed). */
export async function stopTrustedPair(p: Partial<TrustedPair>): Promise<void> {
  await p.na?.close();
  await p.nb?.close();
  await p.net?.stop();
}

/** Read a stream to its end: total bytes and sha256. */
export function drain(s: Duplex): Promise<{ bytes: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha256');
    let bytes = 0;
    s.on('data', (c: Buffer) => {
      bytes += c.length;
      h.update(c);
    });
    s.once('end', () => resolve({ bytes, sha256: h.digest('hex') }));
    s.once('error', reject);
  });
}

/** Write `size` pseudo-random bytes with backpressure, then end; returns the sha256. */
export async function pump(s: Duplex, size: number): Promise<string> {
  const h = crypto.createHash('sha256');
  const block = crypto.randomBytes(64 * 1024);
  for (let sent = 0; sent < size; ) {
    const n = Math.min(block.length, size - sent);
    const chunk = Buffer.from(block.subarray(0, n));
    chunk.writeUInt32BE(sent >>> 0, 0); // every block differs
    h.update(chunk);
    sent += n;
    if (!s.write(chunk))
      await new Promise<void>((resolve, reject) => {
        const ok = (): void => {
          s.off('error', bad);
          resolve();
        };
        const bad = (e: Error): void => {
          s.off('drain', ok);
          reject(e);
        };
        s.once('drain', ok);
        s.once('error', bad);
      });
  }
  s.end();
  return h.digest('hex');
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
