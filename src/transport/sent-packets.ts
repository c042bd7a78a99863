// What we remember about each packet sent until it is acked or declared lost:
// enough to requeue its stream byte ranges and control frames (never the packet
// itself) and to feed RTT / congestion control. Objects are pooled and kept in
// a ring indexed by packet number, so lookup and removal are O(1).
import type { Stream } from './stream.ts';

/** A stream byte range carried by a packet (only allocated for a packet's 2nd+ STREAM frame). */
export interface StreamFrag {
  stream: Stream;
  off: number;
  len: number;
  fin: boolean;
  open: boolean;
}

/** A frame that is repeated as-is when lost. */
export interface CtrlFrame {
  type: number; // Frame.ResetStream / Frame.StopSending
  id: number;
  code: number;
  finalSize: number;
}

export class SentPacket {
  pn = 0;
  time = 0;
  size = 0;
  ackEliciting = false;
  inFlight = false;
  // first STREAM frame inline (the common case: one per packet)
  stream: Stream | null = null;
  off = 0;
  len = 0;
  fin = false;
  open = false;
  more: StreamFrag[] | null = null;
  ctrl: CtrlFrame[] | null = null;
  /** carried MAX_DATA: on loss send the then-current value again */
  maxData = false;
  /** streams whose MAX_STREAM_DATA it carried */
  maxStreamData: Stream[] | null = null;
  /** largest packet number acked by the ACK frame it carried, -1 if none */
  ackLargest = -1;
  /** carried IMMEDIATE_ACK: the peer will not delay its ACK */
  immediate = false;
  /** a path MTU probe of this size (0: a regular packet): outside congestion control, its loss is no congestion signal */
  probeSize = 0;
  // delivery-rate stamps (delivery-rate.ts), written when sent
  delivered = 0;
  deliveredTime = 0;
  firstSentTime = 0;
  isAppLimited = false;
  txInFlight = 0;
  lostAtSend = 0;

  clear(): void {
    this.stream = null;
    this.more = null;
    this.ctrl = null;
    this.maxData = false;
    this.maxStreamData = null;
    this.ackLargest = -1;
    this.immediate = false;
    this.probeSize = 0;
    this.ackEliciting = false;
    this.inFlight = false;
    this.fin = false;
    this.open = false;
    this.len = 0;
  }
}

export class SentLog {
  private slots: (SentPacket | undefined)[] = new Array(1024);
  private mask = 1023;
  /** No packet below base is outstanding. */
  base = 0;
  /** Next packet number to be sent. */
  next = 0;
  /** Outstanding packets. */
  count = 0;
  private pool: SentPacket[] = [];

  alloc(): SentPacket {
    return this.pool.pop() ?? new SentPacket();
  }

  release(p: SentPacket): void {
    p.clear();
    if (this.pool.length < 4096) this.pool.push(p);
  }

  /** Records p under the next packet number (p.pn must equal next). */
  push(p: SentPacket): void {
    if (this.next - this.base >= this.slots.length) this.grow();
    this.slots[p.pn & this.mask] = p;
    this.next = p.pn + 1;
    this.count++;
  }

  get(pn: number): SentPacket | undefined {
    if (pn < this.base || pn >= this.next) return undefined;
    return this.slots[pn & this.mask];
  }

  remove(pn: number): void {
    const i = pn & this.mask;
    if (this.slots[i] === undefined || pn < this.base || pn >= this.next) return;
    this.slots[i] = undefined;
    this.count--;
    while (this.base < this.next && this.slots[this.base & this.mask] === undefined) this.base++;
  }

  private grow(): void {
    const old = this.slots;
    const oldMask = this.mask;
    this.slots = new Array(old.length * 2);
    this.mask = this.slots.length - 1;
    for (let pn = this.base; pn < this.next; pn++) this.slots[pn & this.mask] = old[pn & oldMask];
  }
}
