// What trusted peers may put on this node's disk. Trust says who may talk to
// us, not how much: one peer (buggy or compromised) must not fill the disk or
// crowd out the others. Two rules, checked before any byte is accepted:
//
//  - a global free-space floor: Pilot never writes the disk below it (counting
//    the bytes already promised to transfers in flight), so the node, its
//    logs and its trust file keep working whatever peers send;
//  - a per-peer disk quota: what one peer has on our disk (received files not
//    yet cleared, partial transfers, inbox messages, open tasks) plus what it
//    has reserved for transfers in flight.
//
// A file transfer reserves its announced size up front (begin), and gives the
// reservation back when it ends; two concurrent transfers can therefore never
// both pass a check that only one of them fits (the hole this closes).
import fs from 'node:fs';
import { PilotError } from '../util/errors.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Default floor: 5% of the filesystem (ext4 keeps the same share for root), at most 1 GiB (plenty for logs and state on a big disk). */
export function defaultFloor(totalBytes: number): number {
  return Math.min(Math.floor(totalBytes * 0.05), GiB);
}

/** Default per-peer quota: half of the filesystem, so one peer can never hold more than the others together. */
export function defaultPeerQuota(totalBytes: number): number {
  return Math.floor(totalBytes / 2);
}

export interface DiskSpace {
  total: number;
  free: number;
}

export interface DiskBudgetOptions {
  /** A directory on the filesystem to watch ($PILOT_HOME). */
  dir: string;
  /** undefined: defaultFloor() of the filesystem's size. */
  floorBytes?: number | undefined;
  /** undefined: defaultPeerQuota() of the filesystem's size. */
  peerQuotaBytes?: number | undefined;
  /** For tests: what statfs says. */
  statfs?: (dir: string) => DiskSpace | undefined;
}

/** Bytes a peer has on our disk right now, as one service counts them. */
export type UsageSource = (peer: string) => number;

export class Reservation {
  readonly peer: string;
  readonly bytes: number;
  private written = 0;
  private released = false;
  private readonly budget: DiskBudget;

  constructor(budget: DiskBudget, peer: string, bytes: number) {
    this.budget = budget;
    this.peer = peer;
    this.bytes = bytes;
  }

  /** Bytes promised but not yet on the disk (what statfs does not show yet). */
  get outstanding(): number {
    return this.released ? 0 : Math.max(0, this.bytes - this.written);
  }

  get active(): boolean {
    return !this.released;
  }

  /** `n` more bytes reached the disk. */
  wrote(n: number): void {
    this.written += n;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.budget.forget(this);
  }
}

export class DiskBudget {
  private readonly dir: string;
  private readonly floorOpt: number | undefined;
  private readonly quotaOpt: number | undefined;
  private readonly statfs: (dir: string) => DiskSpace | undefined;
  private readonly reservations = new Set<Reservation>();
  private readonly sources: UsageSource[] = [];

  constructor(opts: DiskBudgetOptions) {
    this.dir = opts.dir;
    this.floorOpt = opts.floorBytes;
    this.quotaOpt = opts.peerQuotaBytes;
    this.statfs = opts.statfs ?? statfsOf;
  }

  /** A service reports what each peer holds on disk through this. */
  addUsage(source: UsageSource): void {
    this.sources.push(source);
  }

  /** Bytes of this peer on disk (all services) plus its reservations in flight. */
  usage(peer: string): number {
    let n = 0;
    for (const s of this.sources) n += s(peer);
    for (const r of this.reservations) if (r.peer === peer) n += r.bytes;
    return n;
  }

  limits(): { floor: number; peerQuota: number; total: number; free: number } | undefined {
    const s = this.statfs(this.dir);
    if (!s) return undefined;
    return { floor: this.floorOpt ?? defaultFloor(s.total), peerQuota: this.quotaOpt ?? defaultPeerQuota(s.total), total: s.total, free: s.free };
  }

  private outstanding(): number {
    let n = 0;
    for (const r of this.reservations) n += r.outstanding;
    return n;
  }

  /**
   * May `peer` put `bytes` more on the disk? Throws QUOTA_EXCEEDED (its own
   * share is used up) or NO_SPACE (the disk would go below the floor).
   * `already`: bytes of it that are on the disk already (a resumed partial,
   * counted by a usage source): they count once for the quota and need no
   * new space.
   */
  check(peer: string, bytes: number, what: string, already = 0): void {
    const l = this.limits();
    // statfs unavailable (odd platforms): the write itself still fails cleanly on ENOSPC
    if (!l) return;
    // too big to ever fit, whatever gets cleared: a size limit, like maxFileBytes
    if (bytes > l.peerQuota || bytes - already > l.total - l.floor) {
      throw new PilotError(
        'FRAME_TOO_LARGE',
        `the receiver is out of space for you: ${what} of ${bytes} bytes can never fit (your quota there ${l.peerQuota} bytes, its disk ${l.total} bytes with a floor of ${l.floor})`,
        'send something smaller, or the receiver raises peerDiskQuotaBytes in services.json',
      );
    }
    const used = Math.max(0, this.usage(peer) - already);
    if (used + bytes > l.peerQuota) {
      throw new PilotError(
        'QUOTA_EXCEEDED',
        `the receiver is out of space for you: ${what} of ${bytes} bytes would bring your share of its disk to ${used + bytes} bytes (quota ${l.peerQuota})`,
        'the receiver must clear what you sent (pilotctl received --clear, inbox --clear) or raise peerDiskQuotaBytes in services.json',
      );
    }
    const left = l.free - this.outstanding() - (bytes - already);
    if (left < l.floor) {
      throw new PilotError(
        'NO_SPACE',
        `the receiver is out of disk space: ${what} of ${bytes} bytes would leave ${Math.max(0, left)} bytes free, below its floor of ${l.floor}`,
        'the receiver must free disk space (or lower diskFloorBytes in services.json); retry later',
      );
    }
  }

  /** check(), then hold `bytes` for `peer` until release(). */
  reserve(peer: string, bytes: number, what: string, already = 0): Reservation {
    this.check(peer, bytes, what, already);
    const r = new Reservation(this, peer, bytes);
    r.wrote(already);
    this.reservations.add(r);
    return r;
  }

  /** Called by Reservation.release(). */
  forget(r: Reservation): void {
    this.reservations.delete(r);
  }

  get reserved(): number {
    let n = 0;
    for (const r of this.reservations) n += r.bytes;
    return n;
  }
}

function statfsOf(dir: string): DiskSpace | undefined {
  try {
    const s = fs.statfsSync(dir);
    return { total: s.blocks * s.bsize, free: s.bavail * s.bsize };
  } catch {
    return undefined;
  }
}

/** A peer address as a file-name fragment (0:0000.0000.0001 -> 0-0000-0000-0001). */
export function peerTag(peer: string): string {
  return peer.replace(/[^0-9A-Za-z]/g, '-').slice(0, 64);
}
