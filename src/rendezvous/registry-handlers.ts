// The signed registry methods. Each gets an already verified statement (the
// key in it is proven) and returns the JSON result, or throws a PilotError.
import * as v from 'valibot';
import { PilotError } from '../util/errors.ts';
import { formatAddress, parseAddress, type Address } from '../wire/address.ts';
import { normalizeHostname } from '../registry/hostname.ts';
import { ONLINE_MS, ParamSchemas, schemaError, type SignedMethod, type Statement } from '../registry/protocol.ts';
import type { NodeRecord, RegistryStore } from './store/store.ts';
import { isOnline, type OnlineIndex } from './online-index.ts';
import type { Link } from './link.ts';
import type { Cluster } from './cluster.ts';
import type { IdentityGuard } from './identity-guard.ts';
import { sourceKey } from './rate-limit.ts';
import { isNetworkMethod } from '../registry/network-protocol.ts';
import { dropEphemeralMemberships, runNetworkMethod, type NetworkState } from './network-handlers.ts';
import { releaseIfEphemeral, releaseNode } from './lifecycle.ts';
import { canSee, trustHandlers, type SignedStatement, type TrustHooks, type TrustState } from './trust-handlers.ts';
import { latestRotation, refuseRetired, rotateKey } from './rotation-handlers.ts';

/**
 * The networks both `a` and `b` are members of, with b's credential tags there: one indexed query,
 * whatever the size of the networks (the resolve answer carries them: fleets' per-peer hints).
 */
async function sharedNetworks(store: RegistryStore, a: Buffer, b: Buffer): Promise<{ net: number; tags: string[] }[]> {
  if (a.equals(b)) return [];
  return (await store.networks.sharedMemberships(a, b)).map((m) => ({ net: m.net, tags: m.tags }));
}

/** Heartbeats refresh the store's last_seen at most this often (the online index has the live value). */
const PERSIST_EVERY_MS = 5 * ONLINE_MS;

export interface HandlerContext {
  store: RegistryStore;
  online: OnlineIndex;
  trust: TrustState;
  /** Per-source limits on new identities and trust requests; hostname leases. */
  guard: IdentityGuard;
  /** Other instances sharing the registry (scale-out), if any. */
  cluster?: Cluster;
  /** Fleets (issue 18): server key for tickets, policy uploads, write limits. */
  net: NetworkState;
  hooks: TrustHooks & {
    /** A node's visibility changed or it left: cached relay decisions about it are stale. */
    nodeChanged(a: Address): void;
  };
}

/** `known`: the caller's record if the service already looked it up for this request (null: none), else undefined. */
type Handler = (
  ctx: HandlerContext,
  key: Buffer,
  // biome-ignore lint/suspicious/noExplicitAny: params were checked against the method's schema before dispatch; each handler reads its own fields.
  params: any,
  link: Link,
  now: number,
  signed: SignedStatement,
  known?: NodeRecord | null,
) => Promise<Record<string, unknown>>;

const notRegistered = () =>
  new PilotError('NOT_REGISTERED', 'this key is not registered with the rendezvous', 'register first (the daemon does this on start)');

function markSeen(ctx: HandlerContext, rec: NodeRecord, link: Link, now: number, persisted: boolean): void {
  ctx.online.seen({ address: rec.address, keyB64: rec.publicKey.toString('base64'), link, lanEndpoints: rec.lanEndpoints, now, persisted });
}

/** Tells the other instances the node is online here (before the answer, so they can find it at once). */
async function announce(ctx: HandlerContext, address: Address, lanEndpoints: string[], link: Link, now: number): Promise<void> {
  await ctx.cluster?.present({ address, observed: link.kind === 'udp' ? link.observed : null, lanEndpoints, now });
}

const handlers: Record<SignedMethod, Handler> = {
  async register(ctx, key, p, link, now, _signed, known) {
    const hostname = p.hostname === undefined ? undefined : normalizeHostname(p.hostname);
    const before = known === undefined ? await ctx.store.getByKey(key) : (known ?? undefined);
    // A key replaced by rotate-key must not come back as a new node (or take its old address):
    // the store refuses it as it inserts (KEY_ROTATED), with no lookup of its own.
    // A new identity costs its source part of a small allowance; a known key re-registers freely.
    if (!before) ctx.guard.admitNewIdentity(sourceKey(link.observed), now, p.invite);
    const input = {
      publicKey: key,
      email: p.email,
      hostname,
      public: p.public,
      lanEndpoints: p.lanEndpoints,
      observed: link.observed,
      ephemeral: p.ephemeral,
      now,
      known: before !== undefined,
    };
    const rec = hostname === undefined ? await ctx.store.register(input) : await ctx.guard.claimHostname(ctx.store, now, () => ctx.store.register(input));
    markSeen(ctx, rec, link, now, true);
    await announce(ctx, rec.address, rec.lanEndpoints, link, now);
    ctx.online.registrations++;
    if (before && (before.public !== rec.public || !before.active)) ctx.hooks.nodeChanged(rec.address);
    return { address: formatAddress(rec.address), observed: link.observed, hostname: rec.hostname, public: rec.public };
  },

  async heartbeat(ctx, key, p, link, now) {
    const keyB64 = key.toString('base64');
    const entry = ctx.online.getByKey(keyB64);
    const lan: string[] | undefined = p.lanEndpoints;
    const unchanged =
      entry !== undefined &&
      entry.link?.id === link.id &&
      (lan === undefined || JSON.stringify(lan) === JSON.stringify(entry.lanEndpoints)) &&
      now - entry.persistedAt < PERSIST_EVERY_MS;
    if (unchanged) {
      // Known, same path, recently persisted: memory only (spares an fsync per heartbeat).
      ctx.online.seen({ address: entry.address, keyB64, link, lanEndpoints: entry.lanEndpoints, now, persisted: false });
    } else {
      const rec = await ctx.store.touch(key, { observed: link.observed, lanEndpoints: lan, now }).catch(async (err) => {
        if (err instanceof PilotError && err.code === 'NOT_REGISTERED') {
          await refuseRetired(ctx, key);
          throw notRegistered();
        }
        throw err;
      });
      markSeen(ctx, rec, link, now, true);
    }
    const seen = ctx.online.getByKey(keyB64);
    if (seen) await announce(ctx, seen.address, seen.lanEndpoints, link, now);
    if (seen && (p.nat ?? p.paths ?? p.punches) !== undefined) ctx.online.report(seen, { nat: p.nat, paths: p.paths, punches: p.punches });
    return { observed: link.observed };
  },

  async set_hostname(ctx, key, p, link, now) {
    const h = normalizeHostname(p.hostname);
    const rec = await ctx.guard.claimHostname(ctx.store, now, () => ctx.store.setHostname(key, h));
    return { hostname: rec.hostname, observed: link.observed };
  },

  async clear_hostname(ctx, key, _p, link) {
    const rec = await ctx.store.setHostname(key, null);
    return { hostname: rec.hostname, observed: link.observed };
  },

  async set_visibility(ctx, key, p, link) {
    const rec = await ctx.store.setVisibility(key, p.public);
    ctx.hooks.nodeChanged(rec.address);
    return { public: rec.public, observed: link.observed };
  },

  async resolve(ctx, key, p, link, now, _signed, known) {
    // Each statement is a round trip to a shared database: a fleet's agents resolve all day. A
    // caller heard here lately is registered and active (see runNetworkMethod): its entry will do.
    const mine = ctx.online.getByKey(key.toString('base64'));
    let caller: Pick<NodeRecord, 'address' | 'publicKey'> | undefined;
    if (mine && isOnline(mine, now)) caller = { address: mine.address, publicKey: key };
    else {
      const rec = known === undefined ? await ctx.store.getByKey(key) : (known ?? undefined);
      if (rec?.active) caller = rec;
    }
    if (!caller) throw notRegistered();
    let rec: NodeRecord | undefined;
    let what: string;
    if (p.address !== undefined) {
      what = `address ${p.address}`;
      rec = await ctx.store.getByAddress(parseAddress(p.address));
    } else if (p.hostname !== undefined) {
      const h = normalizeHostname(p.hostname);
      what = `hostname ${h}`;
      rec = await ctx.store.getByHostname(h);
    } else {
      what = 'that public key';
      rec = await ctx.store.getByKey(Buffer.from(p.publicKey, 'base64'));
    }
    // A hostname lookup cannot tell "absent" from "private and not yours to see" (on
    // purpose: no enumeration), so its hint covers both, and names the way that works
    // for a private node: its address, which resolves to its key for anyone.
    const notFound = () =>
      new PilotError(
        'NOT_FOUND',
        p.hostname !== undefined ? `no node with ${what} visible to you` : `no node with ${what}`,
        p.hostname !== undefined
          ? 'the node may be private (its hostname resolves only for the nodes it trusts) or not registered: ' +
              'use its address instead (e.g. pilotctl handshake 0:0000.0000.002A), or check the spelling'
          : 'check the address; the node may not be registered (yet)',
      );
    if (!rec?.active) throw notFound();
    // A lapsed lease does not resolve even before the sweep releases it.
    if (p.hostname !== undefined && ctx.guard.leaseLapsed(Math.max(rec.lastSeen, ctx.online.getByKey(rec.publicKey.toString('base64'))?.lastSeen ?? 0), now))
      throw notFound();
    // Shared networks first: for co-members (the common case in a fleet) they decide visibility
    // and no trust-pair lookup is needed (canSee's order, one query fewer).
    const networks = await sharedNetworks(ctx.store, caller.publicKey, rec.publicKey);
    if (networks.length === 0 && !(await canSee(ctx.store, caller, rec))) {
      // Private node, caller not trusted: a hostname does not resolve (no
      // enumeration); an address or key gives the key only (needed to encrypt
      // to it) - no hostname, endpoints or presence.
      if (p.hostname !== undefined) throw notFound();
      return latestRotation(ctx, rec, {
        address: formatAddress(rec.address),
        publicKey: rec.publicKey.toString('base64'),
        hostname: null,
        public: false,
        endpoints: [],
        online: false,
        lastSeen: 0,
        observed: link.observed,
      });
    }
    const entry = ctx.online.getByKey(rec.publicKey.toString('base64'));
    const here = entry !== undefined && isOnline(entry, now);
    // Not online here: maybe at another instance sharing the registry.
    const there = !here && ctx.cluster ? await ctx.cluster.locate(rec.address, now) : undefined;
    const online = here || there !== undefined;
    // A node heard over TCP/WebSocket has no UDP endpoint worth probing (its TCP source is not one).
    const observed = there ? there.observed : entry?.link ? (entry.link.kind === 'udp' ? entry.link.observed : undefined) : rec.observed;
    const lan = there?.lanEndpoints ?? entry?.lanEndpoints ?? rec.lanEndpoints;
    const endpoints = [...new Set([...(observed ? [observed] : []), ...lan])];
    // A rotated node's answer carries the statement that bound its key (peers check it themselves).
    return latestRotation(ctx, rec, {
      address: formatAddress(rec.address),
      publicKey: rec.publicKey.toString('base64'),
      hostname: rec.hostname,
      public: rec.public,
      endpoints,
      online,
      lastSeen: Math.max(entry?.lastSeen ?? 0, there?.lastSeen ?? 0, rec.lastSeen),
      observed: link.observed,
      ...(networks.length > 0 ? { networks } : {}),
    });
  },

  async deregister(ctx, key, _p, link, now) {
    // An ephemeral node is removed: address, hostname, trust pairs, memberships (lifecycle.ts).
    // Tried first, with no lookup: a fleet's ephemeral agents are most of the deregistrations.
    if (await releaseIfEphemeral(ctx, key)) return { observed: link.observed, removed: true };
    const rec = await ctx.store.getByKey(key);
    if (rec?.ephemeral) {
      await releaseNode(ctx, rec);
      return { observed: link.observed, removed: true };
    }
    await ctx.store.deregister(key);
    await dropEphemeralMemberships(ctx, key, now);
    ctx.online.remove(key.toString('base64'));
    if (rec) {
      await ctx.cluster?.absent(rec.address);
      ctx.hooks.nodeChanged(rec.address);
    }
    return { observed: link.observed, removed: false };
  },

  /**
   * A clean stop (issue 18): offline at once, not after ONLINE_MS of silence. Presence only:
   * the record, address and hostname stay; the next register or heartbeat brings it back.
   */
  async offline(ctx, key, _p, link) {
    const rec = await ctx.store.getByKey(key);
    if (!rec?.active) throw notRegistered();
    const keyB64 = key.toString('base64');
    const e = ctx.online.getByKey(keyB64);
    // Heard on another link since: another copy of this identity is up (a copy of its home
    // elsewhere); this one's stop does not speak for it.
    if (e?.link && e.link.id !== link.id) return { observed: link.observed };
    ctx.online.remove(keyB64);
    await ctx.cluster?.absent(rec.address);
    ctx.hooks.nodeChanged(rec.address);
    return { observed: link.observed };
  },

  trust_request: (ctx, key, p, link, now, signed) => {
    // All keys behind one address share one allowance: throwaway keys do not multiply it.
    ctx.guard.admitTrustRequest(sourceKey(link.observed), now);
    return trustHandlers.trust_request(ctx, key, p, now, signed);
  },
  trust_pending: (ctx, key, p, _link, now, signed) => trustHandlers.trust_pending(ctx, key, p, now, signed),
  trust_approve: (ctx, key, p, _link, now, signed) => trustHandlers.trust_approve(ctx, key, p, now, signed),
  trust_reject: (ctx, key, p, _link, now, signed) => trustHandlers.trust_reject(ctx, key, p, now, signed),
  trust_revoke: (ctx, key, p, _link, now, signed) => trustHandlers.trust_revoke(ctx, key, p, now, signed),
  trust_list: (ctx, key, p, _link, now, signed) => trustHandlers.trust_list(ctx, key, p, now, signed),
  rotate_key: rotateKey,
};

/** `signed` is the verified envelope (statement text + signature): trust pairs keep it as proof. */
export async function runMethod(
  ctx: HandlerContext,
  stmt: Statement,
  link: Link,
  now: number,
  signed: SignedStatement,
  known?: NodeRecord | null,
): Promise<Record<string, unknown>> {
  // Fleet methods have their own table and (valibot) param schemas: network-handlers.ts.
  if (isNetworkMethod(stmt.method)) return runNetworkMethod(ctx, stmt, link, now, signed, known);
  if (!Object.hasOwn(handlers, stmt.method)) {
    throw new PilotError('BAD_REQUEST', `unknown method ${JSON.stringify(stmt.method)}`, `methods: hello, ${Object.keys(handlers).join(', ')}`);
  }
  const method = stmt.method as SignedMethod;
  const parsed = v.safeParse(ParamSchemas[method], stmt.params);
  if (!parsed.success) throw schemaError(parsed.issues, `${method} params`);
  return handlers[method](ctx, Buffer.from(stmt.key, 'base64'), parsed.output, link, now, signed, known);
}
