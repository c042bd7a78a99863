// QUIC variable-length integers (RFC 9000 §16): the top two bits of the first
// byte give the length (1, 2, 4 or 8 bytes), the rest is the big-endian value.
// Values are JS numbers, so anything above 2^53-1 is refused rather than
// silently rounded (a peer sending such a value is malformed for us).

/** Largest value we encode or accept (JS safe integer; QUIC itself allows 2^62-1). */
export const VARINT_MAX = Number.MAX_SAFE_INTEGER;

export function varintLen(v: number): number {
  if (v < 0x40) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x40000000) return 4;
  return 8;
}

/** Writes v at pos and returns the position after it. The caller guarantees room. */
export function writeVarint(buf: Buffer, pos: number, v: number): number {
  if (v < 0x40) {
    buf[pos] = v;
    return pos + 1;
  }
  if (v < 0x4000) {
    buf[pos] = 0x40 | (v >>> 8);
    buf[pos + 1] = v & 0xff;
    return pos + 2;
  }
  if (v < 0x40000000) {
    buf[pos] = 0x80 | (v >>> 24);
    buf[pos + 1] = (v >>> 16) & 0xff;
    buf[pos + 2] = (v >>> 8) & 0xff;
    buf[pos + 3] = v & 0xff;
    return pos + 4;
  }
  if (!(v <= VARINT_MAX) || v !== Math.floor(v)) throw new RangeError(`varint out of range: ${v}`);
  const hi = Math.floor(v / 0x100000000);
  const lo = v >>> 0;
  buf[pos] = 0xc0 | (hi >>> 24);
  buf[pos + 1] = (hi >>> 16) & 0xff;
  buf[pos + 2] = (hi >>> 8) & 0xff;
  buf[pos + 3] = hi & 0xff;
  buf[pos + 4] = lo >>> 24;
  buf[pos + 5] = (lo >>> 16) & 0xff;
  buf[pos + 6] = (lo >>> 8) & 0xff;
  buf[pos + 7] = lo & 0xff;
  return pos + 8;
}

/** Writes v as a 2-byte varint (v < 16384): lets us reserve a length field before knowing it. */
export function writeVarint2(buf: Buffer, pos: number, v: number): number {
  buf[pos] = 0x40 | (v >>> 8);
  buf[pos + 1] = v & 0xff;
  return pos + 2;
}

/**
 * Bounds-checked cursor over untrusted bytes. Reads never throw: on any
 * overrun or overflow `ok` turns false and the read returns 0, so a parser
 * can read a whole frame and check `ok` once (no exceptions on the hot path).
 */
export class Reader {
  buf: Buffer = Buffer.alloc(0);
  pos = 0;
  end = 0;
  ok = true;

  reset(buf: Buffer, pos: number, end: number): void {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
    this.ok = true;
  }

  remaining(): number {
    return this.end - this.pos;
  }

  u8(): number {
    if (this.pos >= this.end) return this.fail();
    return this.buf[this.pos++]!;
  }

  u16(): number {
    if (this.pos + 2 > this.end) return this.fail();
    const b = this.buf;
    const v = (b[this.pos]! << 8) | b[this.pos + 1]!;
    this.pos += 2;
    return v;
  }

  varint(): number {
    const b = this.buf;
    const p = this.pos;
    if (p >= this.end) return this.fail();
    const first = b[p]!;
    const len = 1 << (first >>> 6);
    if (p + len > this.end) return this.fail();
    this.pos = p + len;
    switch (len) {
      case 1:
        return first & 0x3f;
      case 2:
        return ((first & 0x3f) << 8) | b[p + 1]!;
      case 4:
        return (((first & 0x3f) << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
      default: {
        const hi = (((first & 0x3f) << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
        if (hi > 0x1fffff) return this.fail(); // > 2^53-1: would lose precision
        const lo = ((b[p + 4]! << 24) | (b[p + 5]! << 16) | (b[p + 6]! << 8) | b[p + 7]!) >>> 0;
        return hi * 0x100000000 + lo;
      }
    }
  }

  /** A view (no copy) of the next n bytes. */
  bytes(n: number): Buffer {
    if (n < 0 || this.pos + n > this.end) {
      this.fail();
      return EMPTY;
    }
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  private fail(): number {
    this.ok = false;
    this.pos = this.end;
    return 0;
  }
}

const EMPTY = Buffer.alloc(0);
