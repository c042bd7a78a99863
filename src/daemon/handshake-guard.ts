// The daemon's side of the handshake flood defence (the session layer does the
// cookies and per-source shares, src/crypto/session-manager.ts):
//  - who sent a message 1, for per-source limits and cookies (handshakeSource);
//  - the configured limits (handshakeLimits);
//  - PeerVerifier: the registry lookup that checks the key a message 1 claims
//    for its address. Without it every copy of a replayed (or forged-address)
//    message 1 that passes Noise cost one registry request: now lookups for one
//    claim are shared while in flight, a claim that did not check out is refused
//    from memory for a while, and lookups are rate-limited per claimed key and overall.
import { SourceBuckets } from '../crypto/rate-limit.ts';
import { addressKey, type Address } from '../wire/address.ts';
import type { Path } from '../nat/path.ts';
import type { DaemonConfig } from './config.ts';

/** Direct: limits count per IP, the cookie binds IP:port (and socket); relayed: the node the rendezvous authenticated. */
export function handshakeSource(path: Path): { bucket: string; cookie: string } {
  if (path.kind === 'direct') return { bucket: path.host, cookie: `${path.host}:${path.port}/${path.sock ?? 0}` };
  const k = path.from === undefined ? 'relay' : `relay:${addressKey(path.from)}`;
  return { bucket: k, cookie: k };
}

/** SessionManager options from the config keys (absent = the session layer's defaults). */
export function handshakeLimits(c: DaemonConfig): { maxInitsPerSecond?: number; underLoadInitsPerSecond?: number; sourceInitsPerSecond?: number } {
  return {
    ...(c.handshakeRate !== undefined ? { maxInitsPerSecond: c.handshakeRate } : {}),
    ...(c.handshakeLoadRate !== undefined ? { underLoadInitsPerSecond: c.handshakeLoadRate } : {}),
    ...(c.handshakeSourceRate !== undefined ? { sourceInitsPerSecond: c.handshakeSourceRate } : {}),
  };
}

export interface PeerVerifierOptions<R> {
  /** The registry record of `address` (rejects when the lookup fails). */
  lookup(address: Address): Promise<R>;
  now?: () => number;
  /** A claim (address, key) the registry contradicted is refused without a lookup for this long. */
  refusedTtlMs?: number;
  /** Lookups per second per claimed key (burst 2). */
  perKeyPerSecond?: number;
  /** Verification lookups per second, all keys together (the registry rate-limits us too). */
  maxPerSecond?: number;
  /** Bound of each table (refused claims, per-key buckets). */
  maxEntries?: number;
}

export interface PeerVerifierStats {
  lookups: number;
  /** Callers that shared a lookup already in flight for the same claim. */
  shared: number;
  /** Refused from memory (the registry contradicted the claim recently). */
  refusedCached: number;
  /** Refused because the claimed key or everyone together was over the lookup rate. */
  limited: number;
}

export class PeerVerifier<R extends { publicKey: Buffer }> {
  readonly stats: PeerVerifierStats = { lookups: 0, shared: 0, refusedCached: 0, limited: 0 };
  private readonly opts: PeerVerifierOptions<R>;
  private readonly now: () => number;
  private readonly refusedTtlMs: number;
  private readonly maxEntries: number;
  private readonly inFlight = new Map<string, Promise<R | undefined>>();
  /** claim -> refused until (insertion order = oldest first). */
  private readonly refused = new Map<string, number>();
  private readonly perKey: SourceBuckets;
  private readonly overall: SourceBuckets;

  constructor(opts: PeerVerifierOptions<R>) {
    this.opts = opts;
    this.now = opts.now ?? Date.now;
    this.refusedTtlMs = opts.refusedTtlMs ?? 10_000;
    this.maxEntries = opts.maxEntries ?? 4096;
    this.perKey = new SourceBuckets(opts.perKeyPerSecond ?? 0.5, 2, this.maxEntries);
    // 200/s: well within the rendezvous's per-IP request budget (500/s), so heartbeats and resolves still fit.
    const all = opts.maxPerSecond ?? 200;
    this.overall = new SourceBuckets(all, all, 1);
  }

  /** The registry record when it binds `publicKey` to `address`, else undefined. Never rejects. */
  verify(address: Address, publicKey: Buffer): Promise<R | undefined> {
    const keyId = publicKey.toString('base64');
    const claim = `${addressKey(address)}/${keyId}`;
    const shared = this.inFlight.get(claim);
    if (shared !== undefined) {
      this.stats.shared++;
      return shared;
    }
    const now = this.now();
    const until = this.refused.get(claim);
    if (until !== undefined) {
      if (now < until) {
        this.stats.refusedCached++;
        return Promise.resolve(undefined);
      }
      this.refused.delete(claim);
    }
    if (!this.perKey.allow(keyId, now) || !this.overall.allow('all', now)) {
      this.stats.limited++;
      return Promise.resolve(undefined);
    }
    this.stats.lookups++;
    const p = this.opts.lookup(address).then(
      (r) => {
        if (r.publicKey.equals(publicKey)) return r;
        this.refuse(claim); // the registry says otherwise: a forged or outdated claim
        return undefined;
      },
      () => undefined, // lookup failed: not cached (the per-key rate still bounds retries)
    );
    this.inFlight.set(claim, p);
    void p.then(() => this.inFlight.delete(claim));
    return p;
  }

  private refuse(claim: string): void {
    if (this.refused.size >= this.maxEntries) this.refused.delete(this.refused.keys().next().value!);
    this.refused.set(claim, this.now() + this.refusedTtlMs);
  }
}
