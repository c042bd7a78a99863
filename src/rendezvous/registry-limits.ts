// What the registry lets one key, one source address or everybody together
// cost it (issue 15: the registry under abuse). One place for the defaults, so
// the server, the CLI flags and the docs (docs/CONFIG.md) agree.
import fs from 'node:fs';
import { PilotError } from '../util/errors.ts';
import type { Rate } from './rate-limit.ts';

export interface RegistryLimits {
  /** Nonces remembered in total, all keys together. */
  replayCacheSize: number;
  /** Nonces remembered per signing key (its own window: other keys cannot evict them). */
  replayPerKey: number;
  /** Not yet registered keys with replay state, per source address (IPv6: per /64). */
  unregisteredKeysPerSource: number;
  /** Not yet registered keys with replay state, in total. */
  maxUnregisteredKeys: number;
  /** Requests per source from keys that are not registered (charged before the signature is checked). */
  unregisteredRate: Rate;
  /** New identities (first registration of a key) per source. */
  registrationRate: Rate;
  /** A hostname lapses after its node was not heard from for this long (ms; 0 = never). The address stays with the key. */
  hostnameLeaseMs: number;
  /** An unanswered trust request is dropped after this (ms). */
  trustRequestTtlMs: number;
  /** trust_request calls per source address (all its keys together). */
  trustRequestSourceRate: Rate;
  /** Non-empty: a new identity must present one of these invitation tokens (a public rendezvous that is not open to all). */
  inviteTokens: string[];
  /** An ephemeral node (or member) silent this long (ms) is removed, its address and hostname released (issue 18). */
  ephemeralTimeoutMs: number;
  /** Fleets: networks one admin key may administer; members of one network. */
  networksPerAdmin: number;
  membersPerNetwork: number;
}

const DAY = 24 * 3600 * 1000;

export const DEFAULT_REGISTRY_LIMITS: RegistryLimits = {
  replayCacheSize: 50_000,
  replayPerKey: 256,
  unregisteredKeysPerSource: 64,
  maxUnregisteredKeys: 10_000,
  unregisteredRate: { perSec: 20, burst: 100 },
  // 64 new identities at once (a host starting a fleet of agents), then two a minute.
  registrationRate: { perSec: 2 / 60, burst: 64 },
  hostnameLeaseMs: 30 * DAY,
  trustRequestTtlMs: 7 * DAY,
  trustRequestSourceRate: { perSec: 1, burst: 60 },
  inviteTokens: [],
  ephemeralTimeoutMs: 120_000,
  networksPerAdmin: 16,
  membersPerNetwork: 10_000,
};

export function registryLimits(over: Partial<RegistryLimits> = {}): RegistryLimits {
  const out = { ...DEFAULT_REGISTRY_LIMITS };
  for (const [k, v] of Object.entries(over)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/** pilot-rendezvous flags (strings as commander gives them) to limits; throws BAD_ARGUMENT with the flag's name. */
export interface LimitFlags {
  replayCacheSize?: string;
  replayPerKey?: string;
  unregisteredPerSource?: string;
  maxUnregisteredKeys?: string;
  unregisteredRate?: string;
  registrationRate?: string;
  registrationBurst?: string;
  hostnameLease?: string;
  trustRequestTtl?: string;
  sourceTrustRate?: string;
  /** Comma-separated tokens, or @FILE with one token a line. */
  inviteTokens?: string;
  ephemeralTimeout?: string;
  networksPerAdmin?: string;
  membersPerNetwork?: string;
}

function num(flag: string, v: string | undefined, min: number, unit: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new PilotError('BAD_ARGUMENT', `bad --${flag} ${v}`, `${unit}, at least ${min}`);
  return n;
}

function int(flag: string, v: string | undefined, min: number, unit: string): number | undefined {
  const n = num(flag, v, min, unit);
  if (n !== undefined && !Number.isInteger(n)) throw new PilotError('BAD_ARGUMENT', `bad --${flag} ${v}`, `a whole number of ${unit}, at least ${min}`);
  return n;
}

export function limitsFromFlags(f: LimitFlags): Partial<RegistryLimits> {
  const out: Partial<RegistryLimits> = {};
  const set = <K extends keyof RegistryLimits>(k: K, v: RegistryLimits[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('replayCacheSize', num('replay-cache-size', f.replayCacheSize, 1000, 'nonces'));
  set('replayPerKey', num('replay-per-key', f.replayPerKey, 16, 'nonces per key'));
  set('unregisteredKeysPerSource', num('unregistered-per-source', f.unregisteredPerSource, 1, 'keys per source address'));
  set('maxUnregisteredKeys', num('max-unregistered-keys', f.maxUnregisteredKeys, 1, 'keys'));
  const ur = num('unregistered-rate', f.unregisteredRate, 1, 'requests per second per source address');
  if (ur !== undefined) set('unregisteredRate', { perSec: ur, burst: 5 * ur });
  const rr = num('registration-rate', f.registrationRate, 0.01, 'new identities per minute per source address');
  const rb = num('registration-burst', f.registrationBurst, 1, 'new identities at once per source address');
  if (rr !== undefined || rb !== undefined) {
    const d = DEFAULT_REGISTRY_LIMITS.registrationRate;
    set('registrationRate', { perSec: rr !== undefined ? rr / 60 : d.perSec, burst: rb ?? d.burst });
  }
  const lease = num('hostname-lease', f.hostnameLease, 0, 'days (0 = hostnames never lapse)');
  if (lease !== undefined) set('hostnameLeaseMs', lease * DAY);
  const ttl = num('trust-request-ttl', f.trustRequestTtl, 0.001, 'days');
  if (ttl !== undefined) set('trustRequestTtlMs', ttl * DAY);
  const st = num('source-trust-rate', f.sourceTrustRate, 1, 'trust requests per minute per source address');
  if (st !== undefined) set('trustRequestSourceRate', { perSec: st / 60, burst: st });
  if (f.inviteTokens !== undefined) set('inviteTokens', parseInviteTokens(f.inviteTokens));
  const eph = num('ephemeral-timeout', f.ephemeralTimeout, 1, 'seconds');
  if (eph !== undefined) set('ephemeralTimeoutMs', eph * 1000);
  set('networksPerAdmin', int('networks-per-admin', f.networksPerAdmin, 1, 'networks per admin key'));
  set('membersPerNetwork', int('members-per-network', f.membersPerNetwork, 1, 'members per network'));
  return out;
}

function parseInviteTokens(v: string): string[] {
  let text = v;
  if (v.startsWith('@')) {
    try {
      text = fs.readFileSync(v.slice(1), 'utf8');
    } catch (err) {
      throw new PilotError('BAD_ARGUMENT', `cannot read --invite-tokens file ${v.slice(1)}: ${(err as Error).message}`, 'one token a line');
    }
  }
  const tokens = text
    .split(/[,\n]/)
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
  if (tokens.length === 0 || tokens.some((t) => t.length > 128))
    throw new PilotError('BAD_ARGUMENT', 'bad --invite-tokens', 'one or more tokens of 1-128 characters, comma separated or @FILE with one a line');
  return tokens;
}
