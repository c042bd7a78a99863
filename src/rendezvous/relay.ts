// Relay: [0x20][dst addr][inner] from a registered node becomes
// [0x21][src addr][inner] to the destination. The sender is authenticated by
// arriving on the link its last verified register/heartbeat came from; the
// inner packet is end-to-end encrypted and never looked into beyond its type.
//
// Zero trust: a packet is forwarded only between nodes with a trust pair or a
// shared network (fleets), or to a public node (anyone may ping it) - and then, for a while, the public
// node's replies back to that sender. Decisions come from the store, cached
// briefly and dropped as soon as a pair or a node's visibility changes.
import { PacketType } from '../wire/packet-types.ts';
import { ADDRESS_BYTES, addressKey, readAddress, writeAddress, type Address } from '../wire/address.ts';
import type { RegistryStore } from './store/store.ts';
import { KeyedLimiter, type Rate } from './rate-limit.ts';
import { isOnline, type OnlineIndex } from './online-index.ts';
import type { Link } from './link.ts';
import type { Cluster, RelayTarget } from './cluster.ts';
import { PairMap } from './pair-map.ts';

export interface RelayCounters {
  forwarded: number;
  forwardedBytes: number;
  droppedMalformed: number;
  droppedUnknownSource: number;
  droppedUnknownDestination: number;
  droppedRateLimited: number;
  droppedSendFailed: number;
  /** Refused: no trust pair and the destination is not public (nor answering a sender that contacted it). */
  droppedNotTrusted: number;
  /** Scale-out: packets handed to / received from other rendezvous instances. */
  toPeers: number;
  fromPeers: number;
  /** RelayForward packets whose tag did not verify. */
  droppedForged: number;
}

/** May `src` send to `dst` through the relay? */
export type RelayPolicy = (src: Address, dst: Address) => Promise<boolean>;

/** Trusted pair, members of one network (fleets), or a public (active) destination. */
export function storeRelayPolicy(store: RegistryStore): RelayPolicy {
  // Joins, leaves and kicks call nodeChanged, which drops the cached decisions about the node.
  return (src, dst) => store.mayRelay(src, dst);
}

/** How long a decision is cached (explicit invalidation makes it exact on one server). */
const DECISION_MS = 10_000;
/** How long a public node may answer a node that sent to it. */
const REPLY_MS = 60_000;
/** A reply permission is renewed by the traffic that keeps it alive, at most this often. */
const REPLY_RENEW_MS = 1_000;
const MAX_CACHED = 100_000;

/** Only session packets may be relayed: nothing that could pass for a registry message. */
const RELAYABLE = new Set<number>([PacketType.HandshakeInit, PacketType.HandshakeResp, PacketType.Data, PacketType.SessionUnknown, PacketType.HandshakeCookie]);

export const DEFAULT_RELAY_RATE: Rate = { perSec: 2_000_000, burst: 1_000_000 }; // bytes per node

/** addressKey() of a RelaySend's destination (bytes 1-6: u16 network, u32 node), read in place. */
function destinationKey(pkt: Buffer): number {
  return pkt.readUInt16BE(1) * 0x100000000 + pkt.readUInt32BE(3);
}

export class Relay {
  readonly counters: RelayCounters = {
    forwarded: 0,
    forwardedBytes: 0,
    droppedMalformed: 0,
    droppedUnknownSource: 0,
    droppedUnknownDestination: 0,
    droppedRateLimited: 0,
    droppedSendFailed: 0,
    droppedNotTrusted: 0,
    toPeers: 0,
    fromPeers: 0,
    droppedForged: 0,
  };
  private readonly online: OnlineIndex;
  private readonly limiter: KeyedLimiter;
  private readonly policy: RelayPolicy;
  /** (src, dst) -> decision. */
  private readonly decisions = new PairMap<{ allowed: boolean; expires: number }>();
  /** (src, dst) -> lookup in flight (shared by the packets waiting on it). */
  private readonly lookups = new PairMap<Promise<boolean>>();
  /** (public, sender) -> until when the public node may answer the sender. */
  private readonly replies = new PairMap<number>();
  /** Bumped by every invalidation: a lookup started before it must not be cached. */
  private generation = 0;
  /** Other instances sharing the registry: destinations online there are reached through them. */
  private readonly cluster: Cluster | undefined;

  constructor(online: OnlineIndex, rate: Rate = DEFAULT_RELAY_RATE, policy: RelayPolicy, cluster?: Cluster) {
    this.online = online;
    this.limiter = new KeyedLimiter(rate);
    this.policy = policy;
    this.cluster = cluster;
  }

  handle(pkt: Buffer, from: Link, now = Date.now()): void {
    const c = this.counters;
    if (pkt.length < 1 + ADDRESS_BYTES + 1 || !RELAYABLE.has(pkt[1 + ADDRESS_BYTES]!)) {
      c.droppedMalformed++;
      return;
    }
    const src = this.online.getByLink(from.id, now);
    if (!src) {
      c.droppedUnknownSource++;
      return;
    }
    // The destination's addressKey() straight from its six bytes: no Address object per packet
    // (one is made below only when the policy has to be asked).
    const dk = destinationKey(pkt);
    const dst = this.online.getByAddressKey(dk);
    // Not here: with a cluster it may be online at another instance (forward() finds out).
    if ((!dst || !isOnline(dst, now) || !dst.link) && !this.cluster) {
      c.droppedUnknownDestination++;
      return;
    }
    if (!this.limiter.take(src.keyB64, pkt.length, now)) {
      c.droppedRateLimited++;
      return;
    }
    const srcAddr = src.address;
    const sk = addressKey(srcAddr);
    const reply = this.replies.get(sk, dk);
    if (reply !== undefined && reply > now) {
      this.forward(pkt, srcAddr, sk, dk, now);
      return;
    }
    const d = this.decisions.get(sk, dk);
    if (d && d.expires > now) {
      if (d.allowed) this.forward(pkt, srcAddr, sk, dk, now);
      else c.droppedNotTrusted++;
      return;
    }
    let lookup = this.lookups.get(sk, dk);
    if (!lookup) {
      const gen = this.generation;
      lookup = this.policy(srcAddr, readAddress(pkt, 1))
        .catch(() => false)
        .then((allowed) => {
          if (this.lookups.get(sk, dk) === lookup) this.lookups.delete(sk, dk);
          if (gen === this.generation) {
            if (this.decisions.size >= MAX_CACHED) this.decisions.clear();
            this.decisions.set(sk, dk, { allowed, expires: Date.now() + DECISION_MS });
          }
          return allowed;
        });
      this.lookups.set(sk, dk, lookup);
    }
    void lookup.then((allowed) => {
      if (allowed) this.forward(pkt, srcAddr, sk, dk, Date.now());
      else c.droppedNotTrusted++;
    });
  }

  /** `pkt` is a RelaySend (its bytes 1-6 name the destination, key `dk`); `sk` is addressKey(srcAddr). */
  private forward(pkt: Buffer, srcAddr: Address, sk: number, dk: number, now: number): void {
    const c = this.counters;
    // Looked up again: after an asynchronous decision the destination may have moved or left.
    const dst = this.online.getByAddressKey(dk);
    if (!dst || !isOnline(dst, now) || !dst.link) {
      if (this.cluster) this.forwardToPeer(pkt, srcAddr, readAddress(pkt, 1), now);
      else c.droppedUnknownDestination++;
      return;
    }
    // Rewritten in place, not copied: the packet is ours (a datagram or a frame read for us
    // alone) and the same length goes out; only the type byte and the address change.
    const out = pkt;
    out[0] = PacketType.RelayDeliver;
    writeAddress(out, 1, srcAddr);
    if (!dst.link.send(out)) {
      c.droppedSendFailed++;
      return;
    }
    c.forwarded++;
    c.forwardedBytes += out.length;
    // The destination may answer (e.g. a public node pinged by a stranger). Renewed once a
    // second at most, not written for every packet of a bulk transfer.
    const until = this.replies.get(dk, sk);
    if (until !== undefined && until - now > REPLY_MS - REPLY_RENEW_MS) return;
    if (this.replies.size >= MAX_CACHED) this.replies.clear();
    this.replies.set(dk, sk, now + REPLY_MS);
  }

  /** The destination is online at another instance (or nowhere): hand the packet over as it is. */
  private forwardToPeer(pkt: Buffer, srcAddr: Address, dstAddr: Address, now: number): void {
    const cluster = this.cluster!;
    const send = (t: RelayTarget | undefined): void => {
      if (!t) {
        this.counters.droppedUnknownDestination++;
        return;
      }
      cluster.sendRelay(t, srcAddr, pkt);
      this.counters.toPeers++;
      this.counters.forwarded++;
      this.counters.forwardedBytes += pkt.length;
    };
    const t = cluster.relayTarget(dstAddr, now);
    if (t instanceof Promise) void t.then(send);
    else send(t);
  }

  /**
   * A RelayForward from another instance: that instance authenticated the
   * source and applied the policy; here it is delivered like a local packet
   * (which also lets a public destination answer the sender).
   */
  handleFromPeer(pkt: Buffer, now = Date.now()): void {
    const got = this.cluster?.receiveRelay(pkt);
    if (!got) {
      this.counters.droppedForged++;
      return;
    }
    const inner = got.relaySend;
    if (inner.length < 1 + ADDRESS_BYTES + 1 || !RELAYABLE.has(inner[1 + ADDRESS_BYTES]!)) {
      this.counters.droppedMalformed++;
      return;
    }
    const dk = destinationKey(inner);
    const dst = this.online.getByAddressKey(dk);
    // Never bounced on to a third instance: a stale presence row must not make a loop.
    if (!dst || !isOnline(dst, now) || !dst.link) {
      this.counters.droppedUnknownDestination++;
      return;
    }
    this.counters.fromPeers++;
    this.forward(inner, got.src, addressKey(got.src), dk, now);
  }

  /** A trust pair was created or deleted. */
  invalidatePair(x: Address, y: Address): void {
    this.generation++;
    const kx = addressKey(x);
    const ky = addressKey(y);
    for (const [s, d] of [
      [kx, ky],
      [ky, kx],
    ] as const) {
      this.decisions.delete(s, d);
      this.lookups.delete(s, d);
      this.replies.delete(s, d);
    }
  }

  /** A node's visibility changed (or it left): every decision about it is stale. */
  invalidateNode(a: Address): void {
    this.generation++;
    const k = addressKey(a);
    this.decisions.deleteNode(k);
    this.lookups.deleteNode(k);
    this.replies.deleteNode(k);
  }

  prune(now = Date.now()): void {
    this.limiter.prune(now);
    this.decisions.sweep((d) => d.expires <= now);
    this.replies.sweep((until) => until <= now);
  }
}
