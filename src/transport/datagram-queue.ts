// Unreliable datagrams waiting for the next packet. Bounded in count and bytes:
// a sender faster than the congestion window gets `false` (the datagram is
// dropped at once) instead of an ever-growing queue of stale messages.
import { Deque } from './deque.ts';

export const MAX_QUEUED_DATAGRAMS = 128;
export const MAX_QUEUED_DATAGRAM_BYTES = 256 * 1024;

export interface QueuedDatagram {
  srcPort: number;
  dstPort: number;
  data: Buffer;
}

export class DatagramQueue {
  private readonly q = new Deque<QueuedDatagram>();
  /** Payload bytes queued. */
  bytes = 0;

  get length(): number {
    return this.q.length;
  }

  /** Queues a copy of `data` (the caller may reuse its buffer before the next flush); false if the queue is full. */
  push(srcPort: number, dstPort: number, data: Buffer): boolean {
    if (this.q.length >= MAX_QUEUED_DATAGRAMS || this.bytes + data.length > MAX_QUEUED_DATAGRAM_BYTES) return false;
    this.q.push({ srcPort, dstPort, data: Buffer.from(data) });
    this.bytes += data.length;
    return true;
  }

  peek(): QueuedDatagram | undefined {
    return this.q.peek();
  }

  /** Removes the head (sent, or too big for the packet size now). */
  shift(): void {
    const d = this.q.shift();
    if (d !== undefined) this.bytes -= d.data.length;
  }

  clear(): void {
    this.q.clear();
    this.bytes = 0;
  }
}
