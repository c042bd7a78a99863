// TCP framing for the rendezvous: [u32 BE length][packet], same packets as UDP.
import { PilotError } from '../util/errors.ts';

export const DEFAULT_MAX_FRAME = 4096;

export function encodeFrame(pkt: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + pkt.length);
  out.writeUInt32BE(pkt.length, 0);
  pkt.copy(out, 4);
  return out;
}

/** Incremental decoder. push() throws FRAME_TOO_LARGE as soon as a header announces an oversized frame. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly maxFrame: number;
  constructor(maxFrame = DEFAULT_MAX_FRAME) {
    this.maxFrame = maxFrame;
  }

  push(data: Buffer): Buffer[] {
    this.chunks.push(data);
    this.buffered += data.length;
    const frames: Buffer[] = [];
    let buf = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    let off = 0;
    while (buf.length - off >= 4) {
      const len = buf.readUInt32BE(off);
      if (len > this.maxFrame) throw new PilotError('FRAME_TOO_LARGE', `frame of ${len} bytes exceeds ${this.maxFrame}`);
      if (buf.length - off - 4 < len) break;
      frames.push(Buffer.from(buf.subarray(off + 4, off + 4 + len)));
      off += 4 + len;
    }
    buf = buf.subarray(off);
    this.chunks = buf.length > 0 ? [buf] : [];
    this.buffered = buf.length;
    return frames;
  }
}
