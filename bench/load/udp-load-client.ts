// Many simulated registry clients on a few UDP sockets, each socket bound to its
// own 127.x.y.z source (all of 127/8 is loopback on Linux), so the rendezvous's
// per-IP request limit sees many hosts instead of being switched off. Requests
// are the real thing: signed with each node's Ed25519 key (buildRequest), and
// every answer is verified against the pinned server key (openServerMessage)
// and its result schema, as RegistryClient does. Unanswered requests are
// retransmitted byte-identically (the server answers those from its cache).
import dgram from 'node:dgram';
import * as v from 'valibot';
import { buildRequest, openServerMessage } from '../../src/registry/envelope.ts';
import type { Identity } from '../../src/crypto/identity.ts';

export interface Answer<T = unknown> {
  ok: boolean;
  result?: T;
  /** Error code (from the server, or TIMEOUT / BAD_RESULT). */
  code?: string;
  /** From the first send to the verified answer, retransmissions included. */
  ms: number;
}

interface Pending {
  pkt: Buffer;
  sock: dgram.Socket;
  t0: number;
  lastSend: number;
  attempts: number;
  schema: v.GenericSchema;
  resolve: (a: Answer) => void;
}

export interface LoadClientOptions {
  host: string;
  port: number;
  serverKey: Buffer;
  timeoutMs?: number;
  retries?: number;
}

export class UdpLoadClient {
  readonly counters = { sent: 0, retransmits: 0, answers: 0, timeouts: 0, unverified: 0 };
  private readonly opts: Required<LoadClientOptions>;
  private readonly pending = new Map<string, Pending>();
  private readonly sockets: dgram.Socket[] = [];
  private readonly sweeper: NodeJS.Timeout;

  constructor(opts: LoadClientOptions) {
    this.opts = { timeoutMs: 1000, retries: 4, ...opts };
    this.sweeper = setInterval(() => this.retransmit(), 50);
  }

  /** A socket bound to `sourceIp` (ephemeral port); answers arriving on it are matched by request nonce. */
  async socket(sourceIp: string): Promise<dgram.Socket> {
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(0, sourceIp, () => (s.off('error', reject), resolve()));
    });
    s.on('message', (pkt) => this.onPacket(pkt));
    s.on('error', () => {}); // a send error shows up as a timeout
    this.sockets.push(s);
    return s;
  }

  request<S extends v.GenericSchema>(
    id: Identity,
    sock: dgram.Socket,
    method: string,
    params: Record<string, unknown>,
    schema: S,
  ): Promise<Answer<v.InferOutput<S>>> {
    const req = buildRequest(id, this.opts.serverKey, method, params);
    return new Promise((resolve) => {
      const now = performance.now();
      this.pending.set(req.nonce, { pkt: req.packet, sock, t0: now, lastSend: now, attempts: 1, schema, resolve: resolve as (a: Answer) => void });
      this.send(sock, req.packet);
    });
  }

  get inFlight(): number {
    return this.pending.size;
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const [nonce, p] of this.pending) {
      this.pending.delete(nonce);
      p.resolve({ ok: false, code: 'CLOSED', ms: performance.now() - p.t0 });
    }
    for (const s of this.sockets) s.close();
  }

  private send(sock: dgram.Socket, pkt: Buffer): void {
    this.counters.sent++;
    sock.send(pkt, this.opts.port, this.opts.host);
  }

  private onPacket(pkt: Buffer): void {
    const opened = openServerMessage(pkt, this.opts.serverKey);
    if (!opened || 'badKey' in opened || opened.msg.type !== 'response') {
      this.counters.unverified++;
      return;
    }
    const s = opened.msg.stmt;
    const p = s.reqNonce ? this.pending.get(s.reqNonce) : undefined;
    if (!p) return; // a late answer to a retransmitted request
    this.pending.delete(s.reqNonce!);
    this.counters.answers++;
    const ms = performance.now() - p.t0;
    if (!s.ok) return p.resolve({ ok: false, code: s.error.code, ms });
    const r = v.safeParse(p.schema, s.result);
    p.resolve(r.success ? { ok: true, result: r.output, ms } : { ok: false, code: 'BAD_RESULT', ms });
  }

  private retransmit(): void {
    const now = performance.now();
    for (const [nonce, p] of this.pending) {
      if (now - p.lastSend < this.opts.timeoutMs) continue;
      if (p.attempts > this.opts.retries) {
        this.pending.delete(nonce);
        this.counters.timeouts++;
        p.resolve({ ok: false, code: 'TIMEOUT', ms: now - p.t0 });
        continue;
      }
      p.attempts++;
      p.lastSend = now;
      this.counters.retransmits++;
      this.send(p.sock, p.pkt);
    }
  }
}

/** The i-th of `count` loopback source addresses: 127.77.0.1, 127.77.0.2, … */
export function sourceIp(i: number): string {
  const n = i + 1;
  return `127.77.${(n >> 8) & 255}.${n & 255}`;
}
