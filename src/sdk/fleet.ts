// Capability discovery for fleets (issue 18): which member to dial for "a
// tag:worker of network fleet", and failing over to the next one when the
// first cannot take the stream. Kept free of I/O (the dialer, the members and
// the peers are given), so the choice and the fail-over are unit-tested with a
// fake dialer and the same code runs in node.dialAny().
import { PilotError, asPilotError, type ErrorCode } from '../util/errors.ts';
import { parseAddress } from '../wire/address.ts';
import type { NetworkMemberInfo, PeerInfo } from '../ipc/api-types.ts';

export interface DiscoverQuery {
  /** The network (id or name); this node must be a member or its admin. */
  network: string | number;
  /** A credential tag (from the invite) or a self-declared one (setTags). */
  tag: string;
  /** Only members online now (default true). */
  online?: boolean;
}

export interface DialAnyOptions {
  /** Per attempt: how long one member may take to accept the stream (default 5 s). */
  timeoutMs?: number;
  /** How many members to try at most (default 3). */
  attempts?: number;
  /** Members to pick from (a discover() result) instead of asking the rendezvous again. */
  members?: NetworkMemberInfo[];
}

/** One member that did not take the stream, and why. */
export interface DialAttempt {
  address: string;
  hostname: string | null;
  code: ErrorCode;
  message: string;
}

/**
 * Errors another member could fix: this one is gone or slow (UNREACHABLE,
 * TIMEOUT, CONNECTION_RESET), does not serve the port (CONNECTION_REFUSED),
 * does not let us in (PERMISSION_DENIED by the policy, NOT_TRUSTED: its view
 * of our membership lags), left (NOT_FOUND) or sheds load (RATE_LIMITED).
 * Anything else (a bad port, a closed handle, no daemon) fails the same on
 * every member, so it is thrown at once.
 */
export const FAILOVER_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'UNREACHABLE',
  'TIMEOUT',
  'CONNECTION_RESET',
  'CONNECTION_REFUSED',
  'PERMISSION_DENIED',
  'NOT_TRUSTED',
  'NOT_FOUND',
  'RATE_LIMITED',
]);

/** dialAny found no member that took the stream: `attempts` says what each one answered. */
export class DialAnyError extends PilotError {
  readonly attempts: DialAttempt[];
  constructor(code: ErrorCode, message: string, hint: string, attempts: DialAttempt[]) {
    super(code, message, hint);
    this.attempts = attempts;
  }
}

/** A node id shared by all of a node's addresses (0:… and N:… name the same node). */
function nodeId(address: string): number | undefined {
  try {
    return parseAddress(address).node;
  } catch {
    return undefined;
  }
}

/**
 * RTTs in one bucket count as equal, so members on one LAN share the load instead of the
 * fastest taking it all: under 5 ms is one bucket, then each doubling (5-10, 10-20, ...).
 */
function rttBucket(ms: number): number {
  return ms < 5 ? 0 : 1 + Math.floor(Math.log2(ms / 5));
}

/** Codes that say the member itself is gone (not just this port): remembered a while by FailureMemory. */
const NODE_DOWN: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['UNREACHABLE', 'TIMEOUT', 'NOT_FOUND']);

/**
 * Members that just timed out or were unreachable, so the next dialAny tries them last:
 * a stopped member can stay listed online (and keep its session here) for a while, and
 * each try costs a whole timeout. Bounded (oldest forgotten first) and expiring; a
 * member that answers is forgotten at once.
 */
export class FailureMemory {
  private readonly ttlMs: number;
  private readonly max: number;
  private readonly until = new Map<number, number>();

  constructor(ttlMs = 30_000, max = 1024) {
    this.ttlMs = ttlMs;
    this.max = max;
  }

  failed(address: string, code: ErrorCode, now = Date.now()): void {
    const id = nodeId(address);
    if (id === undefined || !NODE_DOWN.has(code)) return;
    this.until.delete(id); // re-inserted last: the Map's order is the eviction order
    this.until.set(id, now + this.ttlMs);
    for (const k of this.until.keys()) {
      if (this.until.size <= this.max) break;
      this.until.delete(k);
    }
  }

  answered(address: string): void {
    const id = nodeId(address);
    if (id !== undefined) this.until.delete(id);
  }

  /** Did this node fail lately? */
  has(id: number, now = Date.now()): boolean {
    const t = this.until.get(id);
    if (t === undefined) return false;
    if (t > now) return true;
    this.until.delete(id);
    return false;
  }

  get size(): number {
    return this.until.size;
  }
}

/**
 * The order to try members in: online ones only; first those we already have a
 * session with (no hole punching, no rendezvous round trip), nearer first by
 * RTT bucket; then the others. Ties are broken at random so that many callers
 * spread over the members. Members that failed lately (`memory`) come after
 * those, and this node itself, if it has the tag, comes last.
 */
export function orderMembers(
  members: readonly NetworkMemberInfo[],
  peers: readonly PeerInfo[],
  self: string | undefined,
  random: () => number = Math.random,
  memory?: FailureMemory,
): NetworkMemberInfo[] {
  const rtt = new Map<number, number>();
  for (const p of peers) {
    const id = nodeId(p.address);
    if (id !== undefined && Number.isFinite(p.rttMs)) rtt.set(id, Math.min(rtt.get(id) ?? Infinity, p.rttMs));
  }
  const me = self === undefined ? undefined : nodeId(self);
  const seen = new Set<number>();
  const ranked: { m: NetworkMemberInfo; rank: number; tie: number }[] = [];
  for (const m of members) {
    if (!m.online) continue;
    const id = nodeId(m.address);
    if (id === undefined || seen.has(id)) continue;
    seen.add(id);
    const r = rtt.get(id);
    // rank: 0.. sessions by RTT bucket, then every member without one, then those that failed lately, then ourselves
    const rank =
      id === me ? Number.MAX_SAFE_INTEGER : memory?.has(id) ? Number.MAX_SAFE_INTEGER - 1 : r === undefined ? Number.MAX_SAFE_INTEGER - 2 : rttBucket(r);
    ranked.push({ m, rank, tie: random() });
  }
  ranked.sort((a, b) => a.rank - b.rank || a.tie - b.tie);
  return ranked.map((x) => x.m);
}

export function checkAttempts(attempts: number): number {
  if (!Number.isInteger(attempts) || attempts < 1)
    throw new PilotError('BAD_ARGUMENT', `attempts must be a whole number >= 1, got ${attempts}`, 'e.g. { attempts: 3 }');
  return attempts;
}

/** Describes the request in errors: "tag:worker in network fleet, port 80". */
export interface DialAnyTarget {
  network: string | number;
  tag: string;
  port: number;
}

/**
 * Try `dial` on the members in order until one takes the stream; errors another
 * member could fix move on to the next (at most `attempts` tries); others are
 * thrown as they are. Resolves with the value and the member that answered.
 */
export async function dialFirst<T>(
  ordered: readonly NetworkMemberInfo[],
  dial: (member: NetworkMemberInfo) => Promise<T>,
  target: DialAnyTarget,
  attempts = 3,
  memory?: FailureMemory,
): Promise<{ value: T; member: NetworkMemberInfo; failed: DialAttempt[] }> {
  checkAttempts(attempts);
  const what = `tag:${target.tag} in network ${target.network}`;
  if (ordered.length === 0) {
    throw new DialAnyError(
      'NOT_FOUND',
      `no online member with ${what}`,
      `check the tag and that such members run: node.discover({ network: ${JSON.stringify(String(target.network))}, tag: ${JSON.stringify(target.tag)}, online: false }) lists them all; members get credential tags from their invite`,
      [],
    );
  }
  const failed: DialAttempt[] = [];
  for (const member of ordered.slice(0, attempts)) {
    try {
      const value = await dial(member);
      memory?.answered(member.address);
      return { value, member, failed };
    } catch (err) {
      const e = asPilotError(err);
      if (!FAILOVER_CODES.has(e.code)) throw e;
      memory?.failed(member.address, e.code);
      failed.push({ address: member.address, hostname: member.hostname, code: e.code, message: e.message });
    }
  }
  const codes = new Set(failed.map((f) => f.code));
  const code: ErrorCode = codes.size === 1 ? failed[0]!.code : 'UNREACHABLE';
  const tried = failed.map((f) => `${f.address}${f.hostname ? ` (${f.hostname})` : ''}: ${f.code} ${f.message}`).join('; ');
  const more = ordered.length > failed.length ? ` (${ordered.length - failed.length} more online not tried: raise attempts)` : '';
  throw new DialAnyError(
    code,
    `no member with ${what} took port ${target.port}; tried ${failed.length}${more}: ${tried}`,
    hintFor(code, codes.size > 1, target),
    failed,
  );
}

function hintFor(code: ErrorCode, mixed: boolean, t: DialAnyTarget): string {
  if (mixed) return 'each member failed differently (see the list); retry, or raise timeoutMs / attempts';
  const net = JSON.stringify(String(t.network));
  switch (code) {
    case 'PERMISSION_DENIED':
      return `the policy of network ${t.network} does not let this node's tags reach tag:${t.tag} on port ${t.port}: see node.networks.policy(${net}) (the admin sets it)`;
    case 'CONNECTION_REFUSED':
      return `nothing listens on port ${t.port} on those members: start the service there (node.listen(${t.port}))`;
    case 'NOT_TRUSTED':
      return 'those members do not (yet) see this node as a member: check node.networks.list() (are we a member?) and retry in a few seconds';
    case 'NOT_FOUND':
      return `this node must be a member of network ${t.network} to reach its members (the admin is not one by itself: it joins with an invite, node.networks.join(token)); or they just left`;
    case 'TIMEOUT':
      return 'those members listed as online did not answer in time: they may have just stopped; retry, or raise timeoutMs / attempts';
    default:
      return 'those members could not be reached (no path, or they just stopped): retry, or raise attempts';
  }
}
