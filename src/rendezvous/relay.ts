// Relay: [0x20][dst addr][inner] from a registered node becomes
// [0x21][src addr][inner] to the destination. The sender is authenticated by
// arriving on the link its last verified register/heartbeat came from; the
// inner packet is end-to-end encrypted and never looked into beyond its type.
import { PacketType } from '../wire/packet-types.ts';
import { ADDRESS_BYTES, readAddress, writeAddress } from '../wire/address.ts';
import { KeyedLimiter, type Rate } from './rate-limit.ts';
import { isOnline, type OnlineIndex } from './online-index.ts';
import type { Link } from './link.ts';

export interface RelayCounters {
  forwarded: number;
  forwardedBytes: number;
  droppedMalformed: number;
  droppedUnknownSource: number;
  droppedUnknownDestination: number;
  droppedRateLimited: number;
  droppedSendFailed: number;
}

/** Only session packets may be relayed: nothing that could pass for a registry message. */
const RELAYABLE = new Set<number>([PacketType.HandshakeInit, PacketType.HandshakeResp, PacketType.Data, PacketType.SessionUnknown]);

export const DEFAULT_RELAY_RATE: Rate = { perSec: 2_000_000, burst: 1_000_000 }; // bytes per node

export class Relay {
  readonly counters: RelayCounters = {
    forwarded: 0,
    forwardedBytes: 0,
    droppedMalformed: 0,
    droppedUnknownSource: 0,
    droppedUnknownDestination: 0,
    droppedRateLimited: 0,
    droppedSendFailed: 0,
  };
  private readonly online: OnlineIndex;
  private readonly limiter: KeyedLimiter;

  constructor(online: OnlineIndex, rate: Rate = DEFAULT_RELAY_RATE) {
    this.online = online;
    this.limiter = new KeyedLimiter(rate);
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
    const dst = this.online.getByAddress(readAddress(pkt, 1));
    if (!dst || !isOnline(dst, now) || !dst.link) {
      c.droppedUnknownDestination++;
      return;
    }
    if (!this.limiter.take(src.keyB64, pkt.length, now)) {
      c.droppedRateLimited++;
      return;
    }
    // Same length as the input: only the type byte and the address change.
    const out = Buffer.from(pkt);
    out[0] = PacketType.RelayDeliver;
    writeAddress(out, 1, src.address);
    if (!dst.link.send(out)) {
      c.droppedSendFailed++;
      return;
    }
    c.forwarded++;
    c.forwardedBytes += out.length;
  }

  prune(now = Date.now()): void {
    this.limiter.prune(now);
  }
}
