// In-memory liveness: which registered node was last heard on which link.
// The store holds identities; this holds where to reach them right now.
import { addressKey, type Address } from '../wire/address.ts';
import { ONLINE_MS, type NodeReport } from '../registry/protocol.ts';
import type { Link } from './link.ts';

export interface OnlineEntry {
  address: Address;
  keyB64: string;
  link: Link | undefined; // undefined once its TCP connection closed
  lanEndpoints: string[];
  lastSeen: number;
  /** When lastSeen was last written to the store (heartbeats are not all persisted). */
  persistedAt: number;
  /** Last self-report from a heartbeat (NAT class, paths, punches): metrics only. */
  report?: NodeReport;
}

/** Punch totals by the reporting node's NAT class, accumulated from heartbeat deltas. */
export type PunchTotals = Record<string, { tried: number; succeeded: number }>;

/** Entries silent for this long are forgotten (they are long offline). */
const FORGET_MS = 10 * ONLINE_MS;

export class OnlineIndex {
  private readonly byKey = new Map<string, OnlineEntry>();
  private readonly byAddr = new Map<number, OnlineEntry>();
  private readonly byLink = new Map<string, OnlineEntry>();
  /** Successful registers (metrics). */
  registrations = 0;
  readonly punchTotals: PunchTotals = {};

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

  /** Stores a heartbeat self-report; punch counters are cumulative per daemon, so only their growth is added. */
  report(entry: OnlineEntry, r: NodeReport): void {
    const prev = entry.report;
    const nat = r.nat ?? prev?.nat ?? 'unknown';
    if (r.punches) {
      // A smaller value than last time: the daemon restarted and counts from zero again.
      const grow = (now: number, was: number | undefined) => (was === undefined || now < was ? now : now - was);
      const t = (this.punchTotals[nat] ??= { tried: 0, succeeded: 0 });
      t.tried += grow(r.punches.tried, prev?.punches?.tried);
      t.succeeded += grow(r.punches.succeeded, prev?.punches?.succeeded);
    }
    const paths = r.paths ?? prev?.paths;
    const punches = r.punches ?? prev?.punches;
    entry.report = { nat, ...(paths ? { paths } : {}), ...(punches ? { punches } : {}) };
  }

  entries(): IterableIterator<OnlineEntry> {
    return this.byKey.values();
  }

  getByKey(keyB64: string): OnlineEntry | undefined {
    return this.byKey.get(keyB64);
  }

  getByAddress(a: Address): OnlineEntry | undefined {
    return this.byAddr.get(addressKey(a));
  }

  /** By addressKey() (the relay reads it straight from a packet's address bytes). */
  getByAddressKey(key: number): OnlineEntry | undefined {
    return this.byAddr.get(key);
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
