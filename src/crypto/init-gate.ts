// The responder's handshake flood defence (WireGuard §5.4): what a message 1
// must get past before the Noise DH work (two X25519 operations, ~0.2 ms, done
// before we know anything about the sender) is spent on it.
//
// Cheapest checks first: under load, a message 1 without a cookie can only earn
// a cookie reply, so its source's share of those is checked before any hashing
// (a flood then costs a map lookup per packet); then mac1 (one hash), the
// cookie (mac2), the per-source share, and only then the global budget.
import type { SessionStats } from './session-stats.ts';
import { CookieChecker, MAC_BYTES } from './cookie.ts';
import { LoadMeter, SourceBuckets } from './rate-limit.ts';

/**
 * Cap on message 1s read per second, so a flood of junk handshakes cannot eat
 * the CPU the data path needs. Real peers need ~1 per rekey.
 */
export const DEFAULT_MAX_INITS_PER_SECOND = 500;
/** Above this rate of message 1s we are under load: cookies required. */
export const DEFAULT_UNDER_LOAD_INITS_PER_SECOND = 100;
/** Message 1s one source may have read per second, and its burst (WireGuard: 20/s, burst 5, per IP). */
export const DEFAULT_SOURCE_INITS_PER_SECOND = 20;
const SOURCE_BURST = 5;
/** Message 1s waiting on an async verifyPeer: beyond this they are dropped. */
export const MAX_VERIFYING = 256;

/**
 * Who sent a packet, as far as the underlay can tell: `bucket` is what the
 * per-source limits count by (an IP, or a relayed node's address), `cookie`
 * what a cookie is bound to (IP:port, or that node's address).
 */
export interface HandshakeSource {
  bucket: string;
  cookie: string;
}

export interface InitGateHost<P> {
  sourceOf(path: P): HandshakeSource;
  /** Send a cookie reply back on `path`; absent: no replies are made (nor counted). */
  sendCookie?(reply: Buffer, path: P): void;
  now(): number;
}

export interface InitGateOptions {
  /** Our static public key (mac1 is keyed by it). */
  publicKey: Buffer;
  maxInitsPerSecond: number;
  underLoadInitsPerSecond: number;
  /** Per source; the burst is a quarter of it, at least 5. Cookie replies per source are capped the same way. */
  sourceInitsPerSecond: number;
}

/** The counters this part owns. */
export type InitGateStats = Pick<SessionStats, 'dropMac1' | 'dropSourceLimited' | 'dropBusy' | 'cookieRepliesSent' | 'cookieRepliesLimited'>;

export class InitGate<P> {
  private readonly host: InitGateHost<P>;
  private readonly stats: InitGateStats;
  private readonly maxInitsPerSecond: number;
  private cookies: CookieChecker;
  private readonly load: LoadMeter;
  private readonly sourceInits: SourceBuckets;
  private readonly sourceCookies: SourceBuckets;
  private initWindowStart = -Infinity;
  private initWindowCount = 0;
  /** Message 1s admitted and now waiting on an async peer check. */
  private verifying = 0;

  constructor(host: InitGateHost<P>, opts: InitGateOptions, stats: InitGateStats) {
    this.host = host;
    this.stats = stats;
    this.maxInitsPerSecond = opts.maxInitsPerSecond;
    this.cookies = new CookieChecker(opts.publicKey, () => host.now());
    this.load = new LoadMeter(opts.underLoadInitsPerSecond);
    const burst = Math.max(SOURCE_BURST, Math.ceil(opts.sourceInitsPerSecond / 4)); // a quarter second's worth, 5 at the default
    this.sourceInits = new SourceBuckets(opts.sourceInitsPerSecond, burst);
    this.sourceCookies = new SourceBuckets(opts.sourceInitsPerSecond, burst);
  }

  /** Our static key changed (key rotation): mac1/cookies are keyed by the new one from now on. */
  rekey(publicKey: Buffer): void {
    this.cookies = new CookieChecker(publicKey, () => this.host.now());
  }

  /**
   * May the Noise work be done for this message 1 (of the right size)? If not,
   * the reason is counted in stats, and under load a cookie reply may have gone back.
   */
  admit(pkt: Buffer, path: P): boolean {
    const now = this.host.now();
    const loaded = this.load.note(now, this.verifying >= MAX_VERIFYING / 2);
    const src = this.host.sourceOf(path);
    if (loaded && !hasMac2(pkt)) {
      if (!this.sourceCookies.allow(src.bucket, now)) {
        this.stats.cookieRepliesLimited++;
        return false;
      }
      if (!this.cookies.mac1Ok(pkt)) {
        this.stats.dropMac1++;
        return false;
      }
      this.sendCookie(pkt, src, path);
      return false;
    }
    if (!this.cookies.mac1Ok(pkt)) {
      this.stats.dropMac1++;
      return false;
    }
    if (loaded && !this.cookies.mac2Ok(pkt, src.cookie)) {
      if (this.sourceCookies.allow(src.bucket, now)) this.sendCookie(pkt, src, path);
      else this.stats.cookieRepliesLimited++;
      return false;
    }
    if (!this.sourceInits.allow(src.bucket, now)) {
      this.stats.dropSourceLimited++;
      return false;
    }
    if (this.verifying >= MAX_VERIFYING || !this.initBudget(now)) {
      this.stats.dropBusy++;
      return false;
    }
    return true;
  }

  /** An admitted message 1 waits on an async peer check (half the queue in use counts as load). */
  verifyStarted(): void {
    this.verifying++;
  }

  verifyDone(): void {
    this.verifying--;
  }

  /** Forget the per-source entries that have refilled (bounds memory between floods). */
  sweep(now: number): void {
    this.sourceInits.sweep(now);
    this.sourceCookies.sweep(now);
  }

  /** Under load: prove your source first. The reply is smaller than `pkt` (no amplification). */
  private sendCookie(pkt: Buffer, src: HandshakeSource, path: P): void {
    if (this.host.sendCookie === undefined) return;
    this.stats.cookieRepliesSent++;
    this.host.sendCookie(this.cookies.reply(pkt, src.cookie), path);
  }

  /** One more message 1 within this second's budget? */
  private initBudget(now: number): boolean {
    if (now - this.initWindowStart >= 1000) {
      this.initWindowStart = now;
      this.initWindowCount = 0;
    }
    return this.initWindowCount++ < this.maxInitsPerSecond;
  }
}

/** Does a message 1 carry a cookie MAC at all (nonzero mac2)? No hashing: the cheap first question under load. */
function hasMac2(pkt: Buffer): boolean {
  for (let i = pkt.length - MAC_BYTES; i < pkt.length; i++) if (pkt[i] !== 0) return true;
  return false;
}
