// In-memory liveness: which registered node was last heard on which link.
// The store holds identities; this holds where to reach them right now.
import { addressKey, type Address } from '../wire/address.ts';
import { ONLINE_MS } from '../registry/protocol.ts';
import type { Link } from './link.ts';

export interface OnlineEntry {
  address: Address;
  keyB64: string;
  link: Link | undefined; // undefined once its TCP connection closed
  lanEndpoints: string[];
  lastSeen: number;
  /** When lastSeen was last written to the store (heartbeats are not all persisted). */
  persistedAt: number;
}

/** Entries silent for this long are forgotten (they are long offline). */
const FORGET_MS = 10 * ONLINE_MS;

export class OnlineIndex {
  private readonly byKey = new Map<string, OnlineEntry>();
  private readonly byAddr = new Map<number, OnlineEntry>();
  private readonly byLink = new Map<string, OnlineEntry>();

  /** Records that the node was heard on `link` (after a verified register/heartbeat). */
  seen(e: { address: Address; keyB64: string; link: Link; lanEndpoints: string[]; now: number; persisted: boolean }): OnlineEntry {
    let entry = this.byKey.get(e.keyB64);
    if (!entry) {
      entry = { address: e.address, keyB64: e.keyB64, link: undefined, lanEndpoints: [], lastSeen: 0, persistedAt: 0 };
      this.byKey.set(e.keyB64, entry);
      this.byAddr.set(addressKey(e.address), entry);
    }
    if (entry.link && entry.link.id !== e.link.id && this.byLink.get(entry.link.id) === entry) this.byLink.delete(entry.link.id);
    entry.link = e.link;
    entry.lanEndpoints = e.lanEndpoints;
    entry.lastSeen = e.now;
    if (e.persisted) entry.persistedAt = e.now;
    // The newest node heard on a link owns it (relay source authentication).
    this.byLink.set(e.link.id, entry);
    return entry;
  }

  getByKey(keyB64: string): OnlineEntry | undefined {
    return this.byKey.get(keyB64);
  }

  getByAddress(a: Address): OnlineEntry | undefined {
    return this.byAddr.get(addressKey(a));
  }

  /** The node that owns this link, if it is online. */
  getByLink(linkId: string, now = Date.now()): OnlineEntry | undefined {
    const e = this.byLink.get(linkId);
    return e && isOnline(e, now) ? e : undefined;
  }

  remove(keyB64: string): void {
    const e = this.byKey.get(keyB64);
    if (!e) return;
    this.byKey.delete(keyB64);
    this.byAddr.delete(addressKey(e.address));
    if (e.link && this.byLink.get(e.link.id) === e) this.byLink.delete(e.link.id);
  }

  /** A TCP connection closed: nodes reached over it are offline until they talk again. */
  linkClosed(linkId: string): void {
    const e = this.byLink.get(linkId);
    if (!e) return;
    this.byLink.delete(linkId);
    if (e.link?.id === linkId) e.link = undefined;
  }

  prune(now = Date.now()): void {
    for (const e of [...this.byKey.values()]) if (now - e.lastSeen > FORGET_MS) this.remove(e.keyB64);
  }

  get size(): number {
    return this.byKey.size;
  }
}

export function isOnline(e: OnlineEntry, now = Date.now()): boolean {
  return e.link !== undefined && now - e.lastSeen <= ONLINE_MS;
}
