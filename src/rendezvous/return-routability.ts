// Return routability for UDP sources (QUIC RFC 9000 §8.1 address validation,
// WireGuard cookie replies): a UDP source address is only believed once the
// requester has shown it receives what we send there. We hand out a cookie =
// HMAC(rotating secret, source ip:port) in hello answers and in small 0x04
// cookie replies; a signed request over UDP is executed only when its signed
// statement echoes a cookie valid for the address it arrived from. Stateless:
// nothing is kept per source, so a spoofing flood costs one HMAC per packet.
//
// Before validation we never send more bytes toward a source than it sent us
// (QUIC allows 3x; we hold 1x): the cookie reply is 41 bytes and is only sent
// in answer to a signed request (several hundred bytes).
import crypto from 'node:crypto';
import { encodeCookieReply } from '../registry/envelope.ts';
import { COOKIE_BYTES } from '../registry/protocol.ts';
import type { Link } from './link.ts';

/** Default secret lifetime: cookies are accepted for one to two of these (WireGuard: 2 minutes). */
export const DEFAULT_COOKIE_ROTATE_MS = 120_000;

export interface ReturnRoutabilityCounters {
  /** Signed UDP requests refused for a missing/invalid cookie (answered with a cookie reply). */
  cookieReplies: number;
  /** Cookie replies withheld because they would have been larger than the request. */
  cookieRepliesWithheld: number;
  /** Requests that echoed a valid cookie. */
  validated: number;
}

export type CookieCheck = { ok: true; refresh?: string } | { ok: false };

export class ReturnRoutability {
  readonly counters: ReturnRoutabilityCounters = { cookieReplies: 0, cookieRepliesWithheld: 0, validated: 0 };
  private readonly rotateMs: number;
  // KeyObjects, not Buffers: an HMAC from a raw key prepares the key on every call (a third of
  // the cookie's cost, and the cookie is checked on every registry request).
  private current = crypto.createSecretKey(crypto.randomBytes(32));
  private previous = crypto.createSecretKey(crypto.randomBytes(32));
  private rotatedAt: number;

  constructor(rotateMs = DEFAULT_COOKIE_ROTATE_MS, now = Date.now()) {
    this.rotateMs = rotateMs;
    this.rotatedAt = now;
  }

  /** The cookie for this source, under the current secret (only meaningful for UDP links). */
  cookieFor(link: Link, now = Date.now()): string {
    this.rotate(now);
    return mac(this.current, link.observed);
  }

  /**
   * Is `link` return-routable? TCP/WebSocket links are (the TCP handshake
   * proved it). A UDP source must echo a cookie minted for exactly this
   * ip:port. A cookie under the previous secret is still good, and the answer
   * should carry a fresh one (`refresh`) so a live client never needs an extra
   * round trip because of rotation.
   */
  check(link: Link, cookie: string | undefined, now = Date.now()): CookieCheck {
    if (link.kind !== 'udp') return { ok: true };
    if (cookie === undefined) return { ok: false };
    this.rotate(now);
    const got = Buffer.from(cookie, 'base64');
    if (got.length !== COOKIE_BYTES) return { ok: false };
    if (crypto.timingSafeEqual(got, macBytes(this.current, link.observed))) {
      this.counters.validated++;
      return { ok: true };
    }
    if (crypto.timingSafeEqual(got, macBytes(this.previous, link.observed))) {
      this.counters.validated++;
      return { ok: true, refresh: mac(this.current, link.observed) };
    }
    return { ok: false };
  }

  /**
   * Answers an unvalidated signed request with a cookie reply, never larger
   * than the request (1x before validation).
   */
  sendCookieReply(link: Link, reqNonce: string, requestBytes: number, now = Date.now()): void {
    const pkt = encodeCookieReply(Buffer.from(this.cookieFor(link, now), 'base64'), reqNonce);
    if (pkt.length > requestBytes) {
      this.counters.cookieRepliesWithheld++;
      return;
    }
    this.counters.cookieReplies++;
    link.send(pkt);
  }

  private rotate(now: number): void {
    if (now - this.rotatedAt < this.rotateMs) return;
    // Idle for two periods or more: both secrets are stale.
    this.previous = now - this.rotatedAt >= 2 * this.rotateMs ? crypto.createSecretKey(crypto.randomBytes(32)) : this.current;
    this.current = crypto.createSecretKey(crypto.randomBytes(32));
    this.rotatedAt = now;
  }
}

function macBytes(secret: crypto.KeyObject, observed: string): Buffer {
  return crypto.createHmac('sha256', secret).update('pilot-cookie\0').update(observed).digest().subarray(0, COOKIE_BYTES);
}

function mac(secret: crypto.KeyObject, observed: string): string {
  return macBytes(secret, observed).toString('base64');
}
