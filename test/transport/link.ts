// Test helper: two Connections wired back to back through an imperfect link.
// Delivery is asynchronous (setImmediate, or a timer when delayed), with
// optional random loss, duplication, reordering and fixed delay per direction.
import crypto from 'node:crypto';
import { Connection, type ConnectionOptions } from '../../src/transport/connection.ts';
import type { Stream } from '../../src/transport/stream.ts';

export interface LinkOptions {
  /** probability 0..1 that a packet is dropped */
  loss?: number;
  /** probability that a packet is delivered twice */
  duplicate?: number;
  /** probability that a packet is held back and delivered after later ones */
  reorder?: number;
  /** one-way delay in ms (timers) */
  delayMs?: number;
  /** deterministic randomness */
  seed?: number;
  /** packets over this many bytes are dropped (a path MTU that sends no ICMP back) */
  maxSize?: number;
}

/** Small deterministic PRNG (mulberry32) so failures are reproducible. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One direction of the link. */
class Pipe {
  deliver: (pkt: Buffer) => void = () => {};
  opts: LinkOptions;
  private rand: () => number;
  private queue: Buffer[] = [];
  private held: Buffer[] = [];
  private scheduled = false;
  sent = 0;
  dropped = 0;
  /** of `dropped`, packets over maxSize */
  oversize = 0;
  enabled = true;

  constructor(opts: LinkOptions, seed: number) {
    this.opts = opts;
    this.rand = prng(seed);
  }

  send(pkt: Buffer): void {
    this.sent++;
    if (!this.enabled) return;
    const o = this.opts;
    if (o.maxSize !== undefined && pkt.length > o.maxSize) {
      this.dropped++;
      this.oversize++;
      return;
    }
    if (o.loss && this.rand() < o.loss) {
      this.dropped++;
      return;
    }
    const copies = o.duplicate && this.rand() < o.duplicate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      if (o.reorder && this.rand() < o.reorder) {
        this.held.push(pkt);
        continue;
      }
      this.queue.push(pkt);
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const run = (): void => {
      this.scheduled = false;
      const batch = this.queue;
      this.queue = [];
      // held packets overtake nothing: they go after this batch (reordered behind later packets)
      const late = this.held;
      this.held = [];
      for (const p of batch) this.deliver(p);
      for (const p of late) this.deliver(p);
    };
    if (this.opts.delayMs) {
      const batch = this.queue;
      const late = this.held;
      this.queue = [];
      this.held = [];
      this.scheduled = false;
      setTimeout(() => {
        for (const p of batch) this.deliver(p);
        for (const p of late) this.deliver(p);
      }, this.opts.delayMs);
    } else {
      setImmediate(run);
    }
  }
}

export interface Pair {
  a: Connection;
  b: Connection;
  ab: Pipe;
  ba: Pipe;
  /** every stream opened or accepted on either side */
  streams: Stream[];
}

/** Closes both ends; streams still open then error with CONNECTION_RESET, which the test does not care about. */
export function closePair(p: Pair): void {
  for (const s of p.streams) s.on('error', () => {});
  for (const c of [p.a, p.b]) {
    c.removeAllListeners('stream');
    c.close();
  }
}

export function makePair(link: LinkOptions = {}, opts: Partial<ConnectionOptions> = {}, linkBack?: LinkOptions): Pair {
  const seed = link.seed ?? 1;
  const ab = new Pipe(link, seed);
  const ba = new Pipe(linkBack ?? link, seed + 7919);
  const a = new Connection({ role: 'low', sendPacket: (p) => ab.send(p), ...opts });
  const b = new Connection({ role: 'high', sendPacket: (p) => ba.send(p), ...opts });
  ab.deliver = (p) => b.receivePacket(p);
  ba.deliver = (p) => a.receivePacket(p);
  const streams: Stream[] = [];
  for (const c of [a, b]) {
    const open = c.openStream.bind(c);
    c.openStream = (dst: number, src?: number): Stream => {
      const s = open(dst, src);
      streams.push(s);
      return s;
    };
    c.prependListener('stream', (s: Stream) => streams.push(s));
  }
  return { a, b, ab, ba, streams };
}

/** Writes `total` random bytes in chunks honouring backpressure, then ends; resolves with their sha256. */
export async function writeRandom(s: Stream, total: number, chunk = 64 * 1024, seed = 1): Promise<string> {
  const h = crypto.createHash('sha256');
  const rand = prng(seed);
  let sent = 0;
  while (sent < total) {
    const n = Math.min(chunk, total - sent);
    const buf = Buffer.allocUnsafe(n);
    // cheap pseudo-random fill (crypto.randomBytes is too slow for 50 MiB in a test)
    for (let i = 0; i + 4 <= n; i += 4) buf.writeUInt32LE((rand() * 4294967296) >>> 0, i);
    for (let i = n - (n % 4); i < n; i++) buf[i] = (rand() * 256) | 0;
    h.update(buf);
    sent += n;
    if (!s.write(buf))
      await new Promise<void>((r, j) => {
        const onDrain = (): void => {
          s.off('error', onErr);
          r();
        };
        const onErr = (e: Error): void => {
          s.off('drain', onDrain);
          j(e);
        };
        s.once('drain', onDrain);
        s.once('error', onErr);
      });
  }
  s.end();
  return h.digest('hex');
}

/** Reads a stream to its end; resolves with sha256 and length. */
export function readAll(s: Stream): Promise<{ hash: string; length: number }> {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha256');
    let length = 0;
    s.on('data', (d: Buffer) => {
      h.update(d);
      length += d.length;
    });
    s.on('end', () => resolve({ hash: h.digest('hex'), length }));
    s.on('error', reject);
  });
}

export function nextStream(c: Connection): Promise<Stream> {
  return new Promise((r) => c.once('stream', r));
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, j) => {
      t = setTimeout(() => j(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}
