// Send side of one stream: the bytes the application wrote, kept (as the
// written Buffers, no copy) until the peer acknowledged them. Tracks what was
// never sent, what was lost and must be sent again (byte ranges, not packets),
// what was acked out of order, and the FIN.
import { RangeSet } from './range-set.ts';

export class SendBuffer {
  private chunks: Buffer[] = [];
  private starts: number[] = [];
  private head = 0;
  /** Chunk index that last served a copy (sequential sends hit it or the next one). */
  private cursor = 0;
  /** Every byte below is acked (and released). */
  ackedFloor = 0;
  /** End of the data written so far. */
  writeOffset = 0;
  /** Next byte never sent before. */
  sentOffset = 0;
  /** Acked ranges above ackedFloor. */
  private readonly acked = new RangeSet();
  /** Ranges to send again (lost). */
  readonly lost = new RangeSet();
  /** Stream length once end() was called, else -1. */
  finOffset = -1;
  /** FIN must be (re)sent. */
  finPending = false;
  finAcked = false;

  // result of peek()
  outOff = 0;
  outLen = 0;
  outFin = false;
  outNew = false;

  write(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.starts.push(this.writeOffset);
    this.writeOffset += chunk.length;
  }

  end(): void {
    if (this.finOffset >= 0) return;
    this.finOffset = this.writeOffset;
    this.finPending = true;
  }

  /** Bytes written but never sent. */
  unsent(): number {
    return this.writeOffset - this.sentOffset;
  }

  /** Something to send, given that new bytes may go up to limit (flow control)? */
  hasPending(limit: number): boolean {
    return !this.lost.isEmpty() || (this.sentOffset < this.writeOffset && this.sentOffset < limit) || (this.finPending && this.sentOffset === this.finOffset);
  }

  /** New bytes are waiting but flow control holds them back. */
  blockedAt(limit: number): boolean {
    return this.sentOffset < this.writeOffset && this.sentOffset >= limit;
  }

  /** All data and the FIN acknowledged. */
  done(): boolean {
    return this.finAcked && this.ackedFloor === this.finOffset;
  }

  /**
   * Chooses the next range (at most maxLen bytes; new bytes only below limit): lost data first,
   * then new data, then a bare FIN. Fills out*; false if there is nothing to send.
   */
  peek(maxLen: number, limit: number): boolean {
    if (!this.lost.isEmpty()) {
      const s = this.lost.start(0);
      const e = Math.min(this.lost.end(0), s + maxLen);
      this.outOff = s;
      this.outLen = e - s;
      this.outFin = e === this.finOffset && !this.finAcked;
      this.outNew = false;
      return e > s || this.outFin;
    }
    if (this.sentOffset < this.writeOffset && this.sentOffset < limit) {
      const s = this.sentOffset;
      const e = Math.min(this.writeOffset, limit, s + maxLen);
      this.outOff = s;
      this.outLen = e - s;
      this.outFin = e === this.finOffset;
      this.outNew = true;
      return e > s;
    }
    if (this.finPending && this.sentOffset === this.finOffset) {
      this.outOff = this.finOffset;
      this.outLen = 0;
      this.outFin = true;
      this.outNew = false;
      return true;
    }
    return false;
  }

  /** Marks the peeked range as sent; returns how many of its bytes were new (for connection flow control). */
  commit(): number {
    const s = this.outOff;
    const e = s + this.outLen;
    let fresh = 0;
    if (this.outNew) {
      fresh = e - this.sentOffset;
      this.sentOffset = e;
    } else if (this.outLen > 0) {
      this.lost.remove(s, e);
    }
    if (this.outFin) this.finPending = false;
    return fresh;
  }

  /** Copies bytes [off, off + len) into dst at pos. */
  copyOut(dst: Buffer, pos: number, off: number, len: number): void {
    let i = this.findChunk(off);
    const end = off + len;
    while (off < end) {
      const c = this.chunks[i]!;
      const cs = this.starts[i]!;
      const from = off - cs;
      const n = Math.min(c.length - from, end - off);
      c.copy(dst, pos, from, from + n);
      pos += n;
      off += n;
      if (off < end) i++;
    }
    this.cursor = i;
  }

  onAcked(off: number, len: number, fin: boolean): void {
    if (fin) this.finAcked = true;
    if (len === 0) return;
    const end = off + len;
    if (!this.lost.isEmpty()) this.lost.remove(off, end);
    if (end <= this.ackedFloor) return;
    if (off <= this.ackedFloor && this.acked.isEmpty()) {
      this.ackedFloor = end; // in-order fast path
    } else {
      this.acked.add(Math.max(off, this.ackedFloor), end);
      if (this.acked.min() <= this.ackedFloor) {
        this.ackedFloor = this.acked.end(0);
        this.acked.shift();
      }
    }
    this.release();
  }

  onLost(off: number, len: number, fin: boolean): void {
    if (fin && !this.finAcked) this.finPending = true;
    if (len === 0) return;
    const s = Math.max(off, this.ackedFloor);
    const e = off + len;
    if (e <= s) return;
    this.lost.add(s, e);
    // do not resend what a later copy already got acked
    const a = this.acked;
    for (let i = 0; i < a.size && a.start(i) < e; i++) {
      if (a.end(i) > s) this.lost.remove(a.start(i), a.end(i));
    }
  }

  /** Drops everything (stream reset): nothing more will be sent. */
  discard(): void {
    this.chunks = [];
    this.starts = [];
    this.head = 0;
    this.cursor = 0;
    this.lost.clear();
    this.acked.clear();
    this.finPending = false;
    this.writeOffset = this.sentOffset;
  }

  private release(): void {
    const floor = this.ackedFloor;
    let h = this.head;
    const n = this.chunks.length;
    while (h < n && this.starts[h]! + this.chunks[h]!.length <= floor) {
      (this.chunks as (Buffer | undefined)[])[h] = undefined; // let it be collected
      h++;
    }
    this.head = h;
    if (h > 64 && h * 2 > n) {
      this.chunks = this.chunks.slice(h);
      this.starts = this.starts.slice(h);
      this.cursor = Math.max(0, this.cursor - h);
      this.head = 0;
    }
  }

  private findChunk(off: number): number {
    const starts = this.starts;
    let c = this.cursor;
    if (c < this.head) c = this.head;
    if (c < starts.length && starts[c]! <= off) {
      // sequential: this chunk or one of the next few
      while (c + 1 < starts.length && starts[c + 1]! <= off) {
        c++;
        if (c - this.cursor > 8) return this.search(off);
      }
      return c;
    }
    return this.search(off);
  }

  private search(off: number): number {
    const starts = this.starts;
    let lo = this.head;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= off) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}
