// Makes identities cost something and their claims expire (issue 15, hole 7):
// new identities are rate limited per source address, hostnames are leases
// that lapse after a long silence, and trust requests are limited per source
// and expire. Like Tailscale's coordination server, the registry, not the
// client, decides what a key may claim; like QUIC's address validation, a
// source gets a small allowance before it has proven anything.
import crypto from 'node:crypto';
import { PilotError } from '../util/errors.ts';
import type { RegistryStore } from './store/store.ts';
import { KeyedLimiter } from './rate-limit.ts';
import type { RegistryLimits } from './registry-limits.ts';

/** The lapsed-hostname sweep runs at most this often (ms). */
const SWEEP_EVERY_MS = 60_000;

export class IdentityGuard {
  private readonly limits: RegistryLimits;
  private readonly registrations: KeyedLimiter;
  private readonly trustRequests: KeyedLimiter;
  private lastSweep = 0;
  /** Digests of the invitation tokens: compared in constant time, whatever their length. */
  private readonly invites: Buffer[];

  constructor(limits: RegistryLimits) {
    this.limits = limits;
    this.invites = limits.inviteTokens.map(digest);
    this.registrations = new KeyedLimiter(limits.registrationRate);
    this.trustRequests = new KeyedLimiter(limits.trustRequestSourceRate);
  }

  /**
   * A key registering for the first time, from `source`: throws
   * PERMISSION_DENIED without a valid invitation (when invitations are
   * required), RATE_LIMITED over the source's allowance.
   */
  admitNewIdentity(source: string, now: number, invite?: string): void {
    if (this.invites.length > 0 && !this.validInvite(invite)) {
      throw new PilotError(
        'PERMISSION_DENIED',
        invite === undefined ? 'this rendezvous admits new nodes by invitation only' : 'invitation token not accepted',
        'ask the rendezvous operator for an invitation token, then: pilotctl daemon start --invite TOKEN (config key "invite")',
      );
    }
    if (this.registrations.take(source, 1, now)) return;
    const r = this.limits.registrationRate;
    const wait = Math.max(1, Math.ceil(this.registrations.waitMs(source, 1, now) / 1000));
    throw new PilotError(
      'RATE_LIMITED',
      'too many new identities registered from your address',
      `wait ${wait} s (at most ${r.burst} new keys at once per address, then ${+(r.perSec * 60).toFixed(2)} a minute); an existing key re-registers freely`,
    );
  }

  private validInvite(invite: string | undefined): boolean {
    if (invite === undefined) return false;
    const d = digest(invite);
    let ok = false;
    for (const t of this.invites) ok = crypto.timingSafeEqual(t, d) || ok;
    return ok;
  }

  /** A trust_request from `source`, whatever key signed it. */
  admitTrustRequest(source: string, now: number): void {
    if (this.trustRequests.take(source, 1, now)) return;
    const wait = Math.max(1, Math.ceil(this.trustRequests.waitMs(source, 1, now) / 1000));
    throw new PilotError('RATE_LIMITED', 'too many trust requests from your address', `wait ${wait} s`);
  }

  /** Has a hostname lease lapsed, for a node last seen at `lastSeen`? */
  leaseLapsed(lastSeen: number, now: number): boolean {
    return this.limits.hostnameLeaseMs > 0 && lastSeen < now - this.limits.hostnameLeaseMs;
  }

  /** Requests created before this are expired (ignored and dropped). */
  trustRequestCutoff(now: number): number {
    return now - this.limits.trustRequestTtlMs;
  }

  /**
   * Runs `claim` (a register or set_hostname that names a hostname); if the
   * name is taken, releases the lapsed leases and tries once more.
   */
  async claimHostname<T>(store: RegistryStore, now: number, claim: () => Promise<T>): Promise<T> {
    try {
      return await claim();
    } catch (err) {
      if (!(err instanceof PilotError) || err.code !== 'HOSTNAME_TAKEN' || this.limits.hostnameLeaseMs <= 0) throw err;
      if ((await store.releaseLapsedHostnames(now - this.limits.hostnameLeaseMs)) === 0) throw err;
      return claim();
    }
  }

  /** Periodic: forgets idle buckets, releases lapsed hostnames (at most once a minute). */
  async sweep(store: RegistryStore, now: number): Promise<number> {
    this.registrations.prune(now);
    this.trustRequests.prune(now);
    if (this.limits.hostnameLeaseMs <= 0 || now - this.lastSweep < SWEEP_EVERY_MS) return 0;
    this.lastSweep = now;
    return store.releaseLapsedHostnames(now - this.limits.hostnameLeaseMs);
  }
}

function digest(token: string): Buffer {
  return crypto.createHash('sha256').update(token, 'utf8').digest();
}
