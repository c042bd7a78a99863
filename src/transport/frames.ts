// Transport packet = [packet number varint][frame]...; frames after RFC 9000 §19
// (same type numbers where they exist). All integers are QUIC varints unless
// noted. Parsing fills a reusable ParsedPacket (no allocation per frame) and
// validates the whole packet before anything is applied, so a malformed packet
// is dropped as a unit and never half-processed.
import { Reader, VARINT_MAX, varintLen, writeVarint } from './varint.ts';

export const Frame = {
  /** [0x00] */
  Padding: 0x00,
  /** [0x01] */
  Ping: 0x01,
  /** [0x02][largest][ack delay µs >> 3][range count][first range]{[gap][range]}* */
  Ack: 0x02,
  /** [0x04][stream id][app error code][final size] */
  ResetStream: 0x04,
  /** [0x05][stream id][app error code] */
  StopSending: 0x05,
  /** [0x08|OFF|LEN|FIN][stream id][offset if OFF][length if LEN][data]; without LEN data runs to the end of the packet */
  Stream: 0x08,
  /** [0x10][maximum data] */
  MaxData: 0x10,
  /** [0x11][stream id][maximum stream data] */
  MaxStreamData: 0x11,
  /** [0x14][limit] */
  DataBlocked: 0x14,
  /** [0x15][stream id][limit] */
  StreamDataBlocked: 0x15,
  /** [0x1c][error code][reason length][reason utf-8] */
  ConnectionClose: 0x1c,
  /** [0x1f] ack this packet at once (IMMEDIATE_ACK of the QUIC ack-frequency draft): marks the end of a flight */
  ImmediateAck: 0x1f,
  /** STREAM with OPEN bit: [0x28|OFF|LEN|FIN][stream id][u16 dst port][u16 src port]...; sent until the peer acked one */
  StreamOpen: 0x28,
  /** [0x30][u16 src port][u16 dst port][data to end of packet] */
  DatagramToEnd: 0x30,
  /** [0x31][length][u16 src port][u16 dst port][data] */
  Datagram: 0x31,
} as const;

export const STREAM_FIN = 0x01;
export const STREAM_LEN = 0x02;
export const STREAM_OFF = 0x04;
export const STREAM_OPEN = 0x20;
/** Ack delay is sent in units of 2^3 µs (QUIC's default ack_delay_exponent). */
export const ACK_DELAY_EXPONENT = 3;

/** Frame kinds after parsing (STREAM and STREAM-with-open both become Stream). */
export const Kind = {
  Ping: 1,
  Ack: 2,
  ResetStream: 3,
  StopSending: 4,
  Stream: 5,
  MaxData: 6,
  MaxStreamData: 7,
  DataBlocked: 8,
  StreamDataBlocked: 9,
  ConnectionClose: 10,
  Datagram: 11,
  ImmediateAck: 12,
} as const;

/** One parsed frame; fields are reused between packets, only those of its kind are meaningful. */
export class ParsedFrame {
  kind = 0;
  /** stream id */
  id = 0;
  /** STREAM offset; RESET final size; MAX_* / *_BLOCKED value; ACK largest */
  offset = 0;
  /** STREAM length */
  length = 0;
  /** app / connection error code; ACK delay in µs */
  code = 0;
  fin = false;
  open = false;
  dstPort = 0;
  srcPort = 0;
  /** STREAM / DATAGRAM payload, CONNECTION_CLOSE reason: a view into the packet */
  data: Buffer | null = null;
  /** ACK: index into ParsedPacket.ackRanges of the first [hi, lo] pair, and the pair count */
  rangeStart = 0;
  rangeCount = 0;
}

export class ParsedPacket {
  pn = 0;
  count = 0;
  ackEliciting = false;
  readonly frames: ParsedFrame[] = [];
  /** ACK ranges of every ACK frame, as absolute [hi, lo] pairs, highest first. */
  readonly ackRanges: number[] = [];
  /** Carried IMMEDIATE_ACK. */
  immediateAck = false;
  private readonly r = new Reader();

  /** Parses the whole packet (from `start`: no view made per packet); false (and nothing usable) if anything is malformed. */
  parse(buf: Buffer, start = 0): boolean {
    const r = this.r;
    r.reset(buf, start, buf.length);
    this.count = 0;
    this.ackEliciting = false;
    this.ackRanges.length = 0;
    this.immediateAck = false;
    this.pn = r.varint();
    if (!r.ok || r.pos >= r.end) return false; // a packet carries at least one frame
    while (r.pos < r.end) {
      const type = r.u8();
      if (type === Frame.Padding) continue;
      const f = this.next();
      if (!parseFrame(type, r, f, this.ackRanges)) return false;
      if (f.kind !== Kind.Ack && f.kind !== Kind.ConnectionClose) this.ackEliciting = true;
      if (f.kind === Kind.ImmediateAck) this.immediateAck = true;
    }
    return true;
  }

  private next(): ParsedFrame {
    let f = this.frames[this.count];
    if (f === undefined) {
      f = new ParsedFrame();
      this.frames.push(f);
    }
    this.count++;
    f.data = null;
    return f;
  }
}

function parseFrame(type: number, r: Reader, f: ParsedFrame, ranges: number[]): boolean {
  if ((type & 0xd8) === 0x08) {
    // 0x08..0x0f and 0x28..0x2f: STREAM with flag bits
    f.kind = Kind.Stream;
    f.id = r.varint();
    f.open = (type & STREAM_OPEN) !== 0;
    if (f.open) {
      f.dstPort = r.u16();
      f.srcPort = r.u16();
    }
    f.offset = type & STREAM_OFF ? r.varint() : 0;
    f.length = type & STREAM_LEN ? r.varint() : r.remaining();
    f.fin = (type & STREAM_FIN) !== 0;
    if (!r.ok || f.offset + f.length > VARINT_MAX) return false;
    f.data = r.bytes(f.length);
    return r.ok;
  }
  switch (type) {
    case Frame.Ping:
      f.kind = Kind.Ping;
      return true;
    case Frame.ImmediateAck:
      f.kind = Kind.ImmediateAck;
      return true;
    case Frame.Ack:
      return parseAck(r, f, ranges);
    case Frame.ResetStream:
      f.kind = Kind.ResetStream;
      f.id = r.varint();
      f.code = r.varint();
      f.offset = r.varint();
      return r.ok;
    case Frame.StopSending:
      f.kind = Kind.StopSending;
      f.id = r.varint();
      f.code = r.varint();
      return r.ok;
    case Frame.MaxData:
    case Frame.DataBlocked:
      f.kind = type === Frame.MaxData ? Kind.MaxData : Kind.DataBlocked;
      f.offset = r.varint();
      return r.ok;
    case Frame.MaxStreamData:
    case Frame.StreamDataBlocked:
      f.kind = type === Frame.MaxStreamData ? Kind.MaxStreamData : Kind.StreamDataBlocked;
      f.id = r.varint();
      f.offset = r.varint();
      return r.ok;
    case Frame.ConnectionClose: {
      f.kind = Kind.ConnectionClose;
      f.code = r.varint();
      const n = r.varint();
      if (!r.ok) return false;
      f.data = r.bytes(n);
      return r.ok;
    }
    case Frame.Datagram:
    case Frame.DatagramToEnd: {
      f.kind = Kind.Datagram;
      const n = type === Frame.Datagram ? r.varint() : r.remaining();
      if (!r.ok || n < 4) return false;
      f.srcPort = r.u16();
      f.dstPort = r.u16();
      f.data = r.bytes(n - 4);
      return r.ok;
    }
    default:
      return false;
  }
}

function parseAck(r: Reader, f: ParsedFrame, ranges: number[]): boolean {
  f.kind = Kind.Ack;
  const largest = r.varint();
  const delay = r.varint();
  const count = r.varint();
  const first = r.varint();
  if (!r.ok || first > largest || count > r.remaining() / 2) return false;
  f.offset = largest;
  f.code = delay * (1 << ACK_DELAY_EXPONENT);
  f.rangeStart = ranges.length;
  f.rangeCount = count + 1;
  let lo = largest - first;
  ranges.push(largest, lo);
  for (let i = 0; i < count; i++) {
    const gap = r.varint();
    const len = r.varint();
    if (!r.ok) return false;
    const hi = lo - gap - 2;
    lo = hi - len;
    if (lo < 0) return false;
    ranges.push(hi, lo);
  }
  return true;
}

// ---------- writers: each writes at pos and returns the new position; callers size the room ----------

export function streamHeaderLen(id: number, offset: number, length: number, open: boolean, withLen: boolean): number {
  return 1 + varintLen(id) + (open ? 4 : 0) + (offset > 0 ? varintLen(offset) : 0) + (withLen ? varintLen(length) : 0);
}

export function writeStreamHeader(
  buf: Buffer,
  pos: number,
  id: number,
  offset: number,
  length: number,
  fin: boolean,
  open: boolean,
  dstPort: number,
  srcPort: number,
  withLen: boolean,
): number {
  const type = Frame.Stream | (fin ? STREAM_FIN : 0) | (withLen ? STREAM_LEN : 0) | (offset > 0 ? STREAM_OFF : 0) | (open ? STREAM_OPEN : 0);
  buf[pos++] = type;
  pos = writeVarint(buf, pos, id);
  if (open) {
    buf.writeUInt16BE(dstPort, pos);
    buf.writeUInt16BE(srcPort, pos + 2);
    pos += 4;
  }
  if (offset > 0) pos = writeVarint(buf, pos, offset);
  if (withLen) pos = writeVarint(buf, pos, length);
  return pos;
}

export function writeResetStream(buf: Buffer, pos: number, id: number, code: number, finalSize: number): number {
  buf[pos++] = Frame.ResetStream;
  pos = writeVarint(buf, pos, id);
  pos = writeVarint(buf, pos, code);
  return writeVarint(buf, pos, finalSize);
}

export function writeStopSending(buf: Buffer, pos: number, id: number, code: number): number {
  buf[pos++] = Frame.StopSending;
  pos = writeVarint(buf, pos, id);
  return writeVarint(buf, pos, code);
}

/** MAX_DATA or DATA_BLOCKED (one varint argument). */
export function writeConnValue(buf: Buffer, pos: number, type: number, value: number): number {
  buf[pos++] = type;
  return writeVarint(buf, pos, value);
}

/** MAX_STREAM_DATA or STREAM_DATA_BLOCKED (stream id + value). */
export function writeStreamValue(buf: Buffer, pos: number, type: number, id: number, value: number): number {
  buf[pos++] = type;
  pos = writeVarint(buf, pos, id);
  return writeVarint(buf, pos, value);
}

export function writeConnectionClose(buf: Buffer, pos: number, code: number, reason: Buffer): number {
  buf[pos++] = Frame.ConnectionClose;
  pos = writeVarint(buf, pos, code);
  pos = writeVarint(buf, pos, reason.length);
  reason.copy(buf, pos);
  return pos + reason.length;
}

export function datagramFrameLen(dataLen: number): number {
  return 1 + varintLen(dataLen + 4) + 4 + dataLen;
}

export function writeDatagram(buf: Buffer, pos: number, srcPort: number, dstPort: number, data: Buffer): number {
  buf[pos++] = Frame.Datagram;
  pos = writeVarint(buf, pos, data.length + 4);
  buf.writeUInt16BE(srcPort, pos);
  buf.writeUInt16BE(dstPort, pos + 2);
  data.copy(buf, pos + 4);
  return pos + 4 + data.length;
}
