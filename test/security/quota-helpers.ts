// Helpers of the resource-quota tests: a small real filesystem (tmpfs) for a
// daemon's PILOT_HOME, and raw requests to a peer's built-in services through
// a dial pipe (what a hostile trusted peer sends, without the CLI's checks).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { openPipe } from '../../src/ipc/client.ts';
import { ByteReader, encodeFrame } from '../../src/services/framing.ts';
import { startRendezvous, tmpDir, type Agent, type Rendezvous } from '../helpers/cluster.ts';
import { startAgent, trustEachOther } from '../services/helpers.ts';

/** Mount a tmpfs of `mib` MiB at `dir` (created); returns the unmounter (safe to call twice). */
export function mountTmpfs(dir: string, mib: number): () => void {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m,mode=0700`, 'tmpfs', dir]);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    try {
      execFileSync('umount', ['-l', dir]);
    } catch {
      /* already gone */
    }
  };
}

export function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

export function totalBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.blocks * s.bsize;
}

/** Write a filler file until the filesystem is full (ENOSPC): "something else" filled the disk. */
export function fillDisk(file: string): number {
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(256 * 1024, 1);
  let n = 0;
  try {
    for (;;) {
      try {
        n += fs.writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
        break;
      }
    }
    // the last partial blocks too
    for (const size of [4096, 512, 1]) {
      for (;;) {
        try {
          const w = fs.writeSync(fd, chunk.subarray(0, size));
          if (w === 0) break;
          n += w;
        } catch {
          break;
        }
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return n;
}

export const sha = (b: Buffer | string): string => crypto.createHash('sha256').update(b).digest('hex');

export interface RawStream {
  socket: net.Socket;
  reader: ByteReader;
}

/** Open a stream from `from` to `to`'s virtual port. */
export async function dialRaw(from: Agent, to: Agent, port: number): Promise<RawStream> {
  const { socket } = await openPipe('dial', { target: to.address, port }, from.socket);
  socket.on('error', () => {});
  return { socket, reader: new ByteReader(socket) };
}

/** One request frame, one answer frame; the stream stays open (subscriptions) unless `end`. */
export async function ask(from: Agent, to: Agent, port: number, req: unknown, end = true): Promise<{ answer: Record<string, any>; stream: RawStream }> {
  const s = await dialRaw(from, to, port);
  s.socket.write(encodeFrame(req));
  if (end) s.socket.end();
  const answer = (await s.reader.readFrame()) as Record<string, any>;
  if (end) s.socket.destroy();
  return { answer, stream: s };
}

/** Send a message with pilotctl; returns its JSON answer. */
export async function message(from: Agent, to: Agent, text: string): Promise<{ code: number; json: any; stderr: string }> {
  return from.ctl(['send-message', to.address, '--data', text]);
}

export function dirBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) n += dirBytes(p);
    else if (e.isFile()) n += fs.statSync(p).size;
  }
  return n;
}

export function rssOf(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  assert.ok(m, 'VmRSS');
  return Number(m[1]) * 1024;
}

/** A receiver (beta) trusted by one or two senders (alpha, gamma), each a real daemon on one rendezvous. */
export interface QuotaSetup {
  rdv: Rendezvous;
  work: string;
  /** The receiver whose quotas are tested. */
  b: Agent;
  a: Agent;
  /** The second sender, when asked for. */
  c: Agent | undefined;
  /** Stops every daemon and the rendezvous, unmounts the tmpfs, removes the work dir. */
  stop(): Promise<void>;
}

/**
 * The setting of every quota test: beta (with `services` in its services.json and, with
 * `tmpfsMiB`, its PILOT_HOME on a tmpfs of that size), alpha and (with `gamma`) gamma,
 * both trusted by beta.
 */
export async function startQuotaSetup(
  prefix: string,
  opts: { services?: Record<string, unknown>; tmpfsMiB?: number; gamma?: boolean } = {},
): Promise<QuotaSetup> {
  const work = tmpDir(`pilot-sec-${prefix}-`);
  const rdv = await startRendezvous();
  const agents: Agent[] = [];
  const unmount = opts.tmpfsMiB === undefined ? undefined : mountTmpfs(path.join(work, `${prefix}-beta`), opts.tmpfsMiB);
  const stop = async () => {
    for (const x of agents) await x.stop();
    await rdv.kill();
    unmount?.();
    fs.rmSync(work, { recursive: true, force: true });
  };
  try {
    const b = await startAgent(rdv, work, `${prefix}-beta`, [], opts.services);
    agents.push(b);
    const a = await startAgent(rdv, work, `${prefix}-alpha`);
    agents.push(a);
    const c = opts.gamma ? await startAgent(rdv, work, `${prefix}-gamma`) : undefined;
    if (c) agents.push(c);
    await trustEachOther(a, b);
    if (c) await trustEachOther(c, b);
    return { rdv, work, b, a, c, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
