// Receive side of one stream: reassembles STREAM frames into order. In-order
// data (the common case) goes straight to the sink as the packet's own view, no
// copy; out-of-order pieces are held (trimmed against each other) until the gap
// fills. Enforces the final-size rules of RFC 9000 §4.5.

export interface RecvSink {
  /** In-order bytes (a view into a received packet). */
  deliver(data: Buffer): void;
  /** Every byte up to the final size has been delivered (or, once discarding, the final size is known). */
  deliverEnd(): void;
  /** Bytes received while discarding: flow-control credit to give back. */
  release(bytes: number): void;
}

export const RecvError = {
  None: 0,
  /** Data beyond the final size, or a final size that contradicts an earlier one / data already received. */
  FinalSize: 1,
} as const;

export class RecvBuffer {
  /** Next offset to deliver. */
  readOffset = 0;
  /** Highest offset + 1 received (flow-control accounting). */
  highest = 0;
  /** Known stream length, or -1. */
  finalSize = -1;
  /** deliverEnd() has been called. */
  ended = false;
  /** After discard(): data is counted for flow control, then dropped. */
  discarding = false;
  /** Bytes held out of order. */
  buffered = 0;
  private offs: number[] = [];
  private bufs: Buffer[] = [];
  private readonly sink: RecvSink;

  constructor(sink: RecvSink) {
    this.sink = sink;
  }

  /** Checks a frame against the final-size rules without applying it. */
  check(off: number, len: number, fin: boolean): number {
    const end = off + len;
    if (this.finalSize >= 0) {
      if (end > this.finalSize || (fin && end !== this.finalSize)) return RecvError.FinalSize;
    } else if (fin && end < this.highest) {
      return RecvError.FinalSize;
    }
    return RecvError.None;
  }

  /** Applies a checked frame. Returns the growth of `highest` (new flow-control credit used). */
  insert(off: number, data: Buffer, fin: boolean): number {
    const end = off + data.length;
    const grown = end > this.highest ? end - this.highest : 0;
    if (grown > 0) this.highest = end;
    if (fin) this.finalSize = end;
    if (this.discarding) {
      this.readOffset = this.highest;
      if (grown > 0) this.sink.release(grown);
      if (fin && !this.ended) {
        this.ended = true;
        this.sink.deliverEnd();
      }
      return grown;
    }
    if (end > this.readOffset && !this.ended) {
      if (off <= this.readOffset) {
        const view = off === this.readOffset ? data : data.subarray(this.readOffset - off);
        this.readOffset = end;
        this.sink.deliver(view);
        if (this.offs.length > 0) this.drain();
      } else {
        this.hold(off, data);
      }
    }
    if (this.finalSize >= 0 && this.readOffset === this.finalSize && !this.ended) {
      this.ended = true;
      this.sink.deliverEnd();
    }
    return grown;
  }

  /**
   * Forgets held data (reset / stop): nothing more is delivered. Returns the bytes
   * received but never delivered, whose flow-control credit goes back now.
   */
  discard(): number {
    const released = this.highest - this.readOffset;
    this.readOffset = this.highest;
    this.offs = [];
    this.bufs = [];
    this.buffered = 0;
    this.discarding = true;
    return released;
  }

  /** Delivers held pieces that now continue the in-order data. */
  private drain(): void {
    let i = 0;
    const offs = this.offs;
    const bufs = this.bufs;
    while (i < offs.length && offs[i]! <= this.readOffset) {
      const o = offs[i]!;
      const b = bufs[i]!;
      this.buffered -= b.length;
      const e = o + b.length;
      if (e > this.readOffset) {
        const view = o === this.readOffset ? b : b.subarray(this.readOffset - o);
        this.readOffset = e;
        this.sink.deliver(view);
      }
      i++;
    }
    if (i > 0) {
      offs.splice(0, i);
      bufs.splice(0, i);
    }
  }

  /** Stores [off, off+len) minus what is already held; pieces stay sorted and disjoint. */
  private hold(off: number, data: Buffer): void {
    const offs = this.offs;
    const bufs = this.bufs;
    const end = off + data.length;
    // first held piece that ends after off
    let lo = 0;
    let hi = offs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (offs[mid]! + bufs[mid]!.length > off) hi = mid;
      else lo = mid + 1;
    }
    let i = lo;
    let cur = off;
    while (cur < end) {
      if (i >= offs.length || offs[i]! >= end) {
        this.insertAt(i, cur, data.subarray(cur - off));
        break;
      }
      const ps = offs[i]!;
      const pe = ps + bufs[i]!.length;
      if (ps > cur) {
        this.insertAt(i, cur, data.subarray(cur - off, ps - off));
        i++;
      }
      if (pe > cur) cur = pe;
      i++;
    }
  }

  private insertAt(i: number, off: number, piece: Buffer): void {
    if (piece.length === 0) return;
    this.offs.splice(i, 0, off);
    this.bufs.splice(i, 0, piece);
    this.buffered += piece.length;
  }
}
