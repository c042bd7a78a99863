// Zero-trust handshakes, enforced at the registry. A trust pair exists only
// when BOTH nodes signed for it: one node's trust_request and the other's
// trust_approve (or a trust_request of its own, crossing the first). The pair
// record keeps both signed statements, so no single node - and no request
// forged, altered or replayed - can create one.
import * as v from 'valibot';
import { PilotError } from '../util/errors.ts';
import { addressEquals, formatAddress, parseAddress, type Address } from '../wire/address.ts';
import { verify } from '../registry/signing.ts';
import { StatementSchema } from '../registry/protocol.ts';
import type { NodeRecord, RegistryStore, TrustRequest } from './store/store.ts';
import { KeyedLimiter, type Rate } from './rate-limit.ts';
import { isOnline, type OnlineIndex } from './online-index.ts';

/** trust_request calls per requesting node: 10 a minute, bursts of 20. */
export const DEFAULT_TRUST_REQUEST_RATE: Rate = { perSec: 10 / 60, burst: 20 };
/** Unanswered requests expire after a week. */
export const DEFAULT_TRUST_REQUEST_TTL_MS = 7 * 24 * 3600 * 1000;
/** Unanswered requests a node may have out at once. */
export const MAX_OUTGOING_PENDING = 256;
/** Unanswered requests a node may have waiting for it (bounds what others can pile on it). */
export const MAX_INCOMING_PENDING = 1024;

/**
 * Budgets (bytes of the result or push data as it ends up inside the envelope:
 * JSON inside a JSON string, so escaped twice). The rest of the 1200-byte packet
 * is the envelope, the server signature, key, timestamp, nonce and observed endpoint.
 */
export const RESULT_BUDGET = 620;
export const PUSH_BUDGET = 760;

/** Per-server trust state shared by all requests. */
export class TrustState {
  readonly limiter: KeyedLimiter;
  readonly rate: Rate;
  /** Unanswered requests expire after this (ms): they stop counting against anyone's slots. */
  readonly requestTtlMs: number;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(rate: Rate = DEFAULT_TRUST_REQUEST_RATE, requestTtlMs = DEFAULT_TRUST_REQUEST_TTL_MS) {
    this.rate = rate;
    this.limiter = new KeyedLimiter(rate);
    this.requestTtlMs = requestTtlMs;
  }

  expired(req: TrustRequest, now: number): boolean {
    return req.created < now - this.requestTtlMs;
  }

  /**
   * Trust mutations run one at a time: two crossing requests must see each
   * other (mutual auto-approve), never both end up pending.
   */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => {});
    return run;
  }
}

/**
 * serial(), and with a store shared by several rendezvous processes also the
 * store's lock on the pair: crossing requests handled by two instances must
 * see each other too.
 */
function serialPair<T>(ctx: TrustContext, x: Address, y: Address, fn: () => Promise<T>): Promise<T> {
  const store = ctx.store;
  return ctx.trust.serial(store.withPairLock ? () => store.withPairLock!(x, y, fn) : fn);
}

export interface TrustHooks {
  /** Signed push to a node if it is online (best effort, never throws). */
  push(to: Address, event: string, data: Record<string, unknown>): void;
  /** A pair was created or deleted: cached relay decisions about it are stale. */
  pairChanged(x: Address, y: Address): void;
}

export interface TrustContext {
  store: RegistryStore;
  trust: TrustState;
  hooks: TrustHooks;
  /** Nodes heard here lately: a caller there needs no store lookup to be known (read-only methods). */
  online?: Pick<OnlineIndex, 'getByKey'>;
}

/** The verified request envelope: the exact statement text and its signature. */
export interface SignedStatement {
  text: string;
  sig: Buffer;
}

// biome-ignore lint/suspicious/noExplicitAny: params were checked against the method's schema before dispatch; each handler reads its own fields.
type TrustHandler = (ctx: TrustContext, key: Buffer, params: any, now: number, signed: SignedStatement) => Promise<Record<string, unknown>>;

const notRegistered = () =>
  new PilotError('NOT_REGISTERED', 'this key is not registered with the rendezvous', 'register first (the daemon does this on start)');

async function callerOf(ctx: TrustContext, key: Buffer): Promise<NodeRecord> {
  const me = await ctx.store.getByKey(key);
  if (!me?.active) throw notRegistered();
  return me;
}

/**
 * The caller's address for a read-only method: its online entry when it was heard here within
 * the online window (registered and active: deregister, removal and rotation take it out of
 * the index), else the store's record. Each lookup is a round trip to a shared database.
 */
async function callerAddress(ctx: TrustContext, key: Buffer, now: number): Promise<Address> {
  const e = ctx.online?.getByKey(key.toString('base64'));
  if (e && isOnline(e, now)) return e.address;
  return (await callerOf(ctx, key)).address;
}

async function activeNode(ctx: TrustContext, a: Address): Promise<NodeRecord | undefined> {
  const rec = await ctx.store.getByAddress(a);
  return rec?.active ? rec : undefined;
}

/** JSON size inside the envelope (stringified twice), in UTF-8 bytes. */
export function envelopeCost(v: unknown): number {
  return Buffer.byteLength(JSON.stringify(JSON.stringify(v)), 'utf8');
}

/**
 * Shortens `reason` (marking the cut with an ellipsis) until the object fits
 * `budget`. The full text stays in the store; only what one packet carries is cut.
 */
export function fitReason<T extends { reason: string | null }>(item: T, budget: number): T {
  if (envelopeCost(item) <= budget || !item.reason) return item;
  const chars = [...item.reason];
  let lo = 0;
  let hi = chars.length;
  // Largest prefix that fits (binary search over code points).
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (envelopeCost({ ...item, reason: chars.slice(0, mid).join('') + '…' }) <= budget) lo = mid;
    else hi = mid - 1;
  }
  return { ...item, reason: lo > 0 ? chars.slice(0, lo).join('') + '…' : '' };
}

/** Takes items from `offset` while the whole page fits the budget (always at least one). */
function page<T>(items: T[], offset: number, budget: number, shrink: (x: T, budget: number) => T): { taken: T[]; rest: number; used: number } {
  const taken: T[] = [];
  let used = 0;
  let i = offset;
  for (; i < items.length; i++) {
    let item: T = items[i] as T;
    if (taken.length === 0) item = shrink(item, budget);
    const c = envelopeCost(item) + 1; // the comma
    if (used + c > budget && taken.length > 0) break;
    taken.push(item);
    used += c;
  }
  return { taken, rest: items.length - i, used };
}

/**
 * Defence in depth before a pair is written: the stored statement must be
 * signed by `key`, be a `method` call, and name `peer` in `field`.
 */
function checkStatement(text: string, sig: Buffer, key: Buffer, method: string, field: string, peer: Address): boolean {
  try {
    if (!verify(Buffer.from(text, 'utf8'), sig, key)) return false;
    const s = v.safeParse(StatementSchema, JSON.parse(text));
    if (!s.success || s.output.method !== method || s.output.key !== key.toString('base64')) return false;
    const named = s.output.params[field];
    return typeof named === 'string' && addressEquals(parseAddress(named), peer);
  } catch {
    return false;
  }
}

function reasonOrNull(r: string): string | null {
  return r.length > 0 ? r : null;
}

function pushRequest(ctx: TrustContext, req: TrustRequest, from: NodeRecord): void {
  const data = fitReason({ from: formatAddress(req.from), hostname: from.hostname, reason: reasonOrNull(req.reason), created: req.created }, PUSH_BUDGET);
  ctx.hooks.push(req.to, 'trust_request', data);
}

async function createPair(
  ctx: TrustContext,
  req: TrustRequest,
  requester: NodeRecord,
  other: NodeRecord,
  otherStmt: SignedStatement,
  otherMethod: 'trust_request' | 'trust_approve',
  now: number,
): Promise<void> {
  const otherField = otherMethod === 'trust_request' ? 'to' : 'from';
  if (
    !checkStatement(req.statement, req.sig, requester.publicKey, 'trust_request', 'to', other.address) ||
    !checkStatement(otherStmt.text, otherStmt.sig, other.publicKey, otherMethod, otherField, requester.address)
  ) {
    // Cannot happen for requests that went through verifyRequest; a stored
    // request that does not verify (corrupt row) is dropped, not trusted.
    await ctx.store.deleteTrustRequest(req.from, req.to);
    throw new PilotError('INTERNAL', 'stored trust request does not verify', 'ask the peer to send its trust request again');
  }
  await ctx.store.putTrustPair({
    a: requester.address,
    stmtA: req.statement,
    sigA: req.sig,
    b: other.address,
    stmtB: otherStmt.text,
    sigB: otherStmt.sig,
    created: now,
  });
  await ctx.store.deleteTrustRequest(requester.address, other.address);
  await ctx.store.deleteTrustRequest(other.address, requester.address);
  ctx.hooks.pairChanged(requester.address, other.address);
}

/** The unexpired requests of a list; expired ones are deleted on the way (lazily: no sweep needed). */
async function live(ctx: TrustContext, reqs: TrustRequest[], now: number): Promise<TrustRequest[]> {
  const out: TrustRequest[] = [];
  for (const r of reqs) {
    if (!ctx.trust.expired(r, now)) out.push(r);
    else await ctx.store.deleteTrustRequest(r.from, r.to);
  }
  return out;
}

/** One request, or undefined when there is none or it expired (then it is deleted). */
async function liveRequest(ctx: TrustContext, from: Address, to: Address, now: number): Promise<TrustRequest | undefined> {
  const r = await ctx.store.getTrustRequest(from, to);
  return r ? (await live(ctx, [r], now))[0] : undefined;
}

function peerAddress(text: string): Address {
  return parseAddress(text); // BAD_ADDRESS with a hint on junk
}

export const trustHandlers: Record<'trust_request' | 'trust_pending' | 'trust_approve' | 'trust_reject' | 'trust_revoke' | 'trust_list', TrustHandler> = {
  async trust_request(ctx, key, p, now, signed) {
    const me = await callerOf(ctx, key);
    const to = peerAddress(p.to);
    if (addressEquals(to, me.address)) throw new PilotError('BAD_ARGUMENT', 'a node cannot ask itself for trust', 'name another node');
    const keyB64 = key.toString('base64');
    if (!ctx.trust.limiter.take(keyB64, 1, now)) {
      const wait = Math.max(1, Math.ceil(ctx.trust.limiter.waitMs(keyB64, 1, now) / 1000));
      throw new PilotError(
        'RATE_LIMITED',
        'too many trust requests from this node',
        `wait ${wait} s (at most ${ctx.trust.rate.burst} at once, then ${+(ctx.trust.rate.perSec * 60).toFixed(1)} a minute)`,
      );
    }
    return serialPair(ctx, me.address, to, async () => {
      const target = await activeNode(ctx, to);
      if (!target) throw new PilotError('NOT_FOUND', `no node with address ${formatAddress(to)}`, 'check the address; the node may not be registered');
      if (await ctx.store.getTrustPair(me.address, to)) {
        await ctx.store.deleteTrustRequest(me.address, to);
        return { status: 'trusted' };
      }
      const reverse = await liveRequest(ctx, to, me.address, now);
      if (reverse) {
        // Both asked: the target's signed request and ours make the pair.
        await createPair(ctx, reverse, target, me, signed, 'trust_request', now);
        ctx.hooks.push(target.address, 'trust_approved', { peer: formatAddress(me.address), hostname: me.hostname });
        ctx.hooks.push(me.address, 'trust_approved', { peer: formatAddress(target.address), hostname: target.hostname });
        return { status: 'trusted' };
      }
      if (!(await liveRequest(ctx, me.address, to, now))) {
        if ((await live(ctx, await ctx.store.listTrustRequestsFrom(me.address), now)).length >= MAX_OUTGOING_PENDING) {
          throw new PilotError(
            'RATE_LIMITED',
            `this node already has ${MAX_OUTGOING_PENDING} unanswered trust requests`,
            'wait for answers before asking more nodes',
          );
        }
        if ((await live(ctx, await ctx.store.listTrustRequestsTo(to), now)).length >= MAX_INCOMING_PENDING) {
          throw new PilotError('RATE_LIMITED', `${formatAddress(to)} has too many unanswered trust requests`, 'try again later');
        }
      }
      const req: TrustRequest = { from: me.address, to, reason: p.reason ?? '', statement: signed.text, sig: signed.sig, created: now };
      await ctx.store.putTrustRequest(req);
      pushRequest(ctx, req, me);
      return { status: 'pending' };
    });
  },

  async trust_pending(ctx, key, p, now) {
    const me = { address: await callerAddress(ctx, key, now) };
    const [to, from] = await Promise.all([ctx.store.listTrustRequestsTo(me.address), ctx.store.listTrustRequestsFrom(me.address)]);
    const incoming = await Promise.all(
      (await live(ctx, to, now)).map(async (r) => ({
        from: formatAddress(r.from),
        hostname: (await activeNode(ctx, r.from))?.hostname ?? null,
        reason: reasonOrNull(r.reason),
        created: r.created,
      })),
    );
    const outgoing = await Promise.all(
      (await live(ctx, from, now)).map(async (r) => {
        // A private target's hostname is not revealed to a node it has not trusted.
        const t = await activeNode(ctx, r.to);
        return { to: formatAddress(r.to), hostname: t?.public ? t.hostname : null, reason: reasonOrNull(r.reason), created: r.created };
      }),
    );
    // Incoming first, then outgoing, as many as fit one packet (at least one).
    const inc = incoming.slice(p.incomingOffset ?? 0);
    const out = outgoing.slice(p.outgoingOffset ?? 0);
    type Entry = { from?: string; to?: string; hostname: string | null; reason: string | null; created: number };
    const tagged: { inc: boolean; x: Entry }[] = [...inc.map((x) => ({ inc: true, x })), ...out.map((x) => ({ inc: false, x }))];
    const pg = page(tagged, 0, RESULT_BUDGET - 60, (t, budget) => ({ inc: t.inc, x: fitReason(t.x, budget - 24) }));
    const gotIn = pg.taken.filter((t) => t.inc).map((t) => t.x);
    const gotOut = pg.taken.filter((t) => !t.inc).map((t) => t.x);
    return { incoming: gotIn, outgoing: gotOut, more: pg.rest > 0 };
  },

  async trust_approve(ctx, key, p, now, signed) {
    const me = await callerOf(ctx, key);
    const from = peerAddress(p.from);
    return serialPair(ctx, from, me.address, async () => {
      const req = await liveRequest(ctx, from, me.address, now);
      if (!req) {
        if (await ctx.store.getTrustPair(from, me.address)) return { status: 'trusted' };
        throw new PilotError(
          'NOT_FOUND',
          `no pending trust request from ${formatAddress(from)}`,
          'list requests with trust_pending; only the node asked can approve',
        );
      }
      const requester = await activeNode(ctx, from);
      if (!requester) {
        await ctx.store.deleteTrustRequest(from, me.address);
        throw new PilotError('NOT_FOUND', `${formatAddress(from)} is no longer registered`, 'its request was dropped');
      }
      await createPair(ctx, req, requester, me, signed, 'trust_approve', now);
      ctx.hooks.push(from, 'trust_approved', { peer: formatAddress(me.address), hostname: me.hostname });
      return { status: 'trusted' };
    });
  },

  async trust_reject(ctx, key, p) {
    const me = await callerOf(ctx, key);
    const from = peerAddress(p.from);
    return serialPair(ctx, from, me.address, async () => {
      if (!(await ctx.store.deleteTrustRequest(from, me.address))) {
        throw new PilotError('NOT_FOUND', `no pending trust request from ${formatAddress(from)}`, 'list requests with trust_pending');
      }
      ctx.hooks.push(from, 'trust_rejected', fitReason({ peer: formatAddress(me.address), reason: (p.reason as string | undefined) || null }, PUSH_BUDGET));
      return { status: 'rejected' };
    });
  },

  async trust_revoke(ctx, key, p) {
    const me = await callerOf(ctx, key);
    const peer = peerAddress(p.peer);
    return serialPair(ctx, me.address, peer, async () => {
      if (!(await ctx.store.deleteTrustPair(me.address, peer))) {
        throw new PilotError('NOT_FOUND', `not trusted with ${formatAddress(peer)}`, 'list trusted peers with trust_list');
      }
      ctx.hooks.pairChanged(me.address, peer);
      ctx.hooks.push(peer, 'trust_revoked', { peer: formatAddress(me.address) });
      return { status: 'revoked' };
    });
  },

  async trust_list(ctx, key, p, now) {
    const me = { address: await callerAddress(ctx, key, now) };
    const pairs = await ctx.store.listTrustPairs(me.address);
    const all = await Promise.all(
      pairs.map(async (pair) => {
        const other = addressEquals(pair.a, me.address) ? pair.b : pair.a;
        return { peer: formatAddress(other), hostname: (await activeNode(ctx, other))?.hostname ?? null, since: pair.created, mutual: true as const };
      }),
    );
    const pg = page(all, p.offset ?? 0, RESULT_BUDGET - 40, (x) => x);
    return { trusted: pg.taken, more: pg.rest > 0 };
  },
};

/** May `caller` see `rec` in full? Public nodes: anyone registered; private ones: themselves, their trusted peers and their co-members. */
export async function canSee(store: RegistryStore, caller: Pick<NodeRecord, 'address' | 'publicKey'>, rec: NodeRecord): Promise<boolean> {
  if (rec.public || rec.publicKey.equals(caller.publicKey)) return true;
  if ((await store.getTrustPair(caller.address, rec.address)) !== undefined) return true;
  // Co-members of a network (issue 18) see each other's endpoints and presence, so they can punch.
  return store.networks.sharesNetwork(caller.address, rec.address);
}
