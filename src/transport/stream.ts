// One reliable, ordered, flow-controlled byte stream as a node Duplex.
// Backpressure both ways: write() reports false once more than `sendAhead`
// bytes wait unsent (the callback is held until the connection sends), and the
// peer only gets more credit (MAX_STREAM_DATA) while push() keeps accepting,
// so a reader that stops reading stops its own stream and nothing else.
// Half-close: end() sends FIN; the peer's FIN ends our readable side only.
// A splice (src/gateway/splice.ts) may bypass both stream buffers: attachSink()
// takes the incoming bytes straight from the receive buffer and writeDirect()
// puts bytes straight into the send buffer, with the same credit and backpressure.
import { Duplex } from 'node:stream';
import { AppCode, codeForError, errorForCode } from './codes.ts';
import { Frame } from './frames.ts';
import { RecvBuffer, type RecvSink } from './recv-buffer.ts';
import { SendBuffer } from './send-buffer.ts';

/** Credit each side may use on a new stream before any MAX_STREAM_DATA (a protocol constant). */
export const INITIAL_STREAM_CREDIT = 256 * 1024;

/** What a stream needs from its connection. */
export interface StreamHost {
  now(): number;
  srttMs(): number;
  /** The stream has something to send (idempotent). */
  streamWantsSend(s: Stream): void;
  /** Like streamWantsSend, after an application write: the host may send at once (a lone request) rather than at the end of the turn. */
  streamWritten(s: Stream): void;
  /** Queue a RESET_STREAM / STOP_SENDING. */
  streamControl(type: number, id: number, code: number, finalSize: number): void;
  /** Queue a MAX_STREAM_DATA for this stream (idempotent). */
  streamCredit(s: Stream): void;
  /** Bytes handed to (or discarded for) the application: connection-level credit comes back. */
  streamConsumed(bytes: number): void;
  /** Send or receive side (or the Duplex) changed state: maybe forget the stream. */
  streamUpdated(s: Stream): void;
}

/**
 * A direct consumer of a stream's bytes, in place of the Duplex's Readable and Writable buffering:
 * one call per in-order chunk instead of push() -> Readable -> 'data' -> pipe -> the consumer's
 * write(). What the gateway's splice needs per packet and nothing else.
 */
export interface StreamSink {
  /** In-order bytes (a view into the received packet). false: the consumer is full; no more credit until resumeSink(). */
  onData(chunk: Buffer): boolean;
  /** The peer's FIN: every byte was delivered. */
  onEnd(): void;
  /** writeDirect() said false and the unsent backlog has fallen to half the limit since. */
  onWritable(): void;
}

export interface StreamConfig {
  window: number;
  maxWindow: number;
  sendAhead: number;
}

/** Process-wide stream numbers: `pilotctl connections` names a stream by one, whichever peer it is with. */
let nextSerial = 1;

export class Stream extends Duplex implements RecvSink {
  readonly id: number;
  readonly localPort: number;
  readonly remotePort: number;
  /** Unique in this process, never reused (ids restart per connection and after a reset). */
  readonly serial = nextSerial++;
  /** We opened it (dial); false: the peer did. */
  readonly local: boolean;
  /** Host clock (ms) when it was created. */
  readonly openedAt: number;

  // ---- internal state, driven by the Connection ----
  readonly sendBuf = new SendBuffer();
  readonly recvBuf: RecvBuffer;
  /** Send credit the peer gave us (offset limit). */
  peerMaxStreamData = INITIAL_STREAM_CREDIT;
  /** Receive limit we granted. */
  localMaxStreamData = INITIAL_STREAM_CREDIT;
  /** The next STREAM frame must carry the open info (ports). */
  needOpen: boolean;
  /** The peer has acknowledged a frame with the open info. */
  openAcked: boolean;
  /** In the connection's send queue. */
  queued = false;
  /** A MAX_STREAM_DATA is queued. */
  creditQueued = false;
  /** In the connection's list of streams whose held write callback may be released. */
  writerQueued = false;
  sendDone = false;
  recvDone = false;
  /** We sent STOP_SENDING: incoming data is counted and dropped. */
  stopSent = false;
  lastActivity: number;

  private window: number;
  private readonly maxWindow: number;
  private readonly sendAhead: number;
  private lastCreditAt = -Infinity;
  private readPaused = false;
  private writeCb: ((err?: Error | null) => void) | null = null;
  /** attachSink(): incoming bytes go here instead of push(). */
  private sink: StreamSink | null = null;
  /** writeDirect() returned false: tell the sink when there is room again. */
  private directBlocked = false;
  private finalCb: ((err?: Error | null) => void) | null = null;
  private readonly host: StreamHost;

  constructor(host: StreamHost, id: number, localPort: number, remotePort: number, local: boolean, cfg: StreamConfig) {
    super({ allowHalfOpen: true, readableHighWaterMark: 256 * 1024, writableHighWaterMark: 256 * 1024 });
    this.host = host;
    this.id = id;
    this.localPort = localPort;
    this.remotePort = remotePort;
    this.local = local;
    this.needOpen = local;
    this.openAcked = !local;
    this.window = cfg.window;
    this.maxWindow = cfg.maxWindow;
    this.sendAhead = cfg.sendAhead;
    this.recvBuf = new RecvBuffer(this);
    this.lastActivity = host.now();
    this.openedAt = this.lastActivity;
  }

  /** Bytes the peer acknowledged, in order: a sender's progress (services/stall.ts). */
  get bytesAcked(): number {
    return this.sendBuf.ackedFloor;
  }

  /**
   * Bytes handed to the application, in order. Not named `bytesRead`: with a getter of that name
   * the reset test in test/transport/connection.test.ts hangs (the getter is never called; an
   * `in` check somewhere in Node's stream code, presumably, taking it for a socket: not traced).
   */
  get bytesDelivered(): number {
    return this.recvBuf.readOffset;
  }

  /** Bytes the application wrote, including those still queued in the Writable. */
  get bytesWrittenTotal(): number {
    return this.sendBuf.writeOffset + this.writableLength;
  }

  /** Has something to put in a packet, given the connection-level limit for new bytes. */
  wantsSend(connLimit: number): boolean {
    if (this.sendDone) return false;
    return this.needOpen || this.sendBuf.hasPending(Math.min(this.peerMaxStreamData, connLimit));
  }

  // ---------- Duplex implementation ----------

  // ---------- direct path (a splice) ----------

  /**
   * Incoming bytes go to `sink` from now on, not through the Readable side, and the sink may write
   * with writeDirect(). Bytes the Readable already holds go to the sink first (in order), and a FIN
   * that came before reaches it too. The Readable still ends ('end', then 'close' once both sides are
   * done) and errors as before. Refused (false, nothing changed) while someone else reads the stream
   * or the Writable holds bytes that writeDirect() would overtake.
   */
  attachSink(sink: StreamSink): boolean {
    if (this.sink !== null || this.destroyed || this.readableFlowing === true || this.listenerCount('data') > 0 || this.listenerCount('readable') > 0)
      return false;
    if (this.writableLength > 0 || this.writeCb !== null || this.writableEnded) return false;
    this.sink = sink; // first: read() below calls _read(), which must not grant credit the sink has not taken
    const held = this.readableLength > 0 ? (this.read() as Buffer | null) : null;
    this.resume(); // the Readable flows empty: its 'end' comes right after push(null)
    if (held !== null && held.length > 0 && !sink.onData(held)) this.readPaused = true;
    else this.resumeSink();
    if (this.recvBuf.ended && !this.stopSent) sink.onEnd();
    return true;
  }

  /**
   * The sink's bytes straight into the send buffer (kept, not copied). false: `sendAhead` bytes wait
   * unsent; stop writing until the sink's onWritable() (at half that). After end(), a reset or destroy() the bytes
   * are dropped (the stream is finished or failing: its 'error' / 'close' tells the writer).
   */
  writeDirect(chunk: Buffer): boolean {
    if (this.sendDone || this.sendBuf.finOffset >= 0 || this.destroyed) return true;
    this.sendBuf.write(chunk);
    this.written();
    if (this.sendBuf.unsent() < this.sendAhead) return true;
    this.directBlocked = true;
    return false;
  }

  /** The sink has room again after onData() said false: credit flows again. */
  resumeSink(): void {
    if (this.readPaused) {
      this.readPaused = false;
      this.maybeCredit();
    }
  }

  // ---------- Duplex implementation ----------

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.sendDone) return cb(errorForCode(AppCode.Reset, true));
    this.sendBuf.write(chunk);
    this.afterWrite(cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    if (this.sendDone) return cb(errorForCode(AppCode.Reset, true));
    for (let i = 0; i < chunks.length; i++) this.sendBuf.write(chunks[i]!.chunk);
    this.afterWrite(cb);
  }

  private afterWrite(cb: (err?: Error | null) => void): void {
    this.written();
    if (this.sendBuf.unsent() < this.sendAhead) cb();
    else this.writeCb = cb;
  }

  private written(): void {
    this.lastActivity = this.host.now();
    // only on an established stream: a new one's opening goes out with the rest of this turn (end(), destroy())
    if (this.openAcked) this.host.streamWritten(this);
    else this.host.streamWantsSend(this);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.sendDone) return cb();
    this.sendBuf.end();
    this.finalCb = cb;
    this.host.streamWantsSend(this);
  }

  override _read(): void {
    // with a sink the Readable flows empty: only the sink's resumeSink() may lift its pause
    if (this.readPaused && this.sink === null) {
      this.readPaused = false;
      this.maybeCredit();
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.sendDone) {
      // graceful only if every written byte reached us (end() done, nothing left in the Writable's buffer);
      // a FIN after a truncated stream would pass a cut-off message off as complete
      if (!err && (this.sendBuf.finOffset >= 0 || (this.writableEnded && this.writableLength === 0))) {
        // keep delivering what was written, then the FIN
        this.sendBuf.end();
        this.host.streamWantsSend(this);
      } else {
        this.resetSend(err ? codeForError(err) : AppCode.Reset);
      }
    }
    if (!this.recvDone && !this.stopSent) this.stopReceiving(err ? codeForError(err) : AppCode.NoError);
    this.writeCb = null;
    this.finalCb = null;
    this.host.streamUpdated(this);
    cb(err);
  }

  // ---------- RecvSink ----------

  deliver(data: Buffer): void {
    this.host.streamConsumed(data.length);
    if (this.destroyed) return;
    const sink = this.sink;
    if (sink !== null ? !sink.onData(data) : !this.push(data)) this.readPaused = true;
    else this.maybeCredit();
  }

  deliverEnd(): void {
    this.recvDone = true;
    if (!this.stopSent && !this.destroyed) {
      this.push(null);
      this.sink?.onEnd();
    }
    this.host.streamUpdated(this);
  }

  release(bytes: number): void {
    this.host.streamConsumed(bytes);
  }

  // ---------- called by the connection ----------

  /** New bytes of this stream went out: release a held write callback if there is room again. */
  onSent(): void {
    if (this.sendBuf.unsent() >= this.sendAhead) return;
    if (this.writeCb !== null) {
      const cb = this.writeCb;
      this.writeCb = null;
      cb();
    }
    // half the limit, not just under it: a socket paused and resumed per packet sent costs a
    // readStop/readStart pair and a short read each time
    if (this.directBlocked && this.sendBuf.unsent() <= this.sendAhead / 2) {
      this.directBlocked = false;
      if (!this.destroyed) this.sink?.onWritable();
    }
  }

  /** Data (or the FIN) of this stream was acknowledged. */
  onAcked(off: number, len: number, fin: boolean, open: boolean): void {
    if (open && !this.openAcked) {
      this.openAcked = true;
      this.needOpen = false;
      this.emit('open-acked'); // a dial waits for this (sdk_dial), see whenOpened()
    }
    if (this.sendDone) return;
    this.sendBuf.onAcked(off, len, fin);
    this.lastActivity = this.host.now();
    if (this.sendBuf.done()) {
      this.sendDone = true;
      const cb = this.finalCb;
      this.finalCb = null;
      if (cb) cb();
      this.host.streamUpdated(this);
    }
  }

  onLost(off: number, len: number, fin: boolean, open: boolean): void {
    if (open && !this.openAcked) this.needOpen = true;
    if (this.sendDone) return;
    this.sendBuf.onLost(off, len, fin);
    this.host.streamWantsSend(this);
  }

  /** Peer raised our send credit. */
  onMaxStreamData(max: number): void {
    if (max <= this.peerMaxStreamData) return;
    this.peerMaxStreamData = max;
    if (!this.sendDone) this.host.streamWantsSend(this);
  }

  /** Peer sent RESET_STREAM (already validated against the final size). */
  onPeerReset(code: number): void {
    if (this.recvDone) return;
    this.recvDone = true;
    this.host.streamConsumed(this.recvBuf.discard());
    if (!this.destroyed) this.destroy(errorForCode(code, false));
    this.host.streamUpdated(this);
  }

  /** Peer sent STOP_SENDING: it will not read what we send. */
  onPeerStopSending(code: number): void {
    if (this.sendDone) return;
    this.resetSend(code);
    if (!this.destroyed) this.destroy(errorForCode(code, true));
    this.host.streamUpdated(this);
  }

  /** Idle timer or connection teardown. */
  abort(err: Error, notifyPeer: boolean): void {
    if (!notifyPeer) {
      this.sendDone = true;
      this.recvDone = true;
    }
    if (!this.destroyed) this.destroy(err);
    this.sendDone = true;
    this.recvDone = true;
    this.host.streamUpdated(this);
  }

  /** A peer STREAM_DATA_BLOCKED: repeat our credit if we have any to give. */
  onPeerBlocked(): void {
    if (!this.readPaused && !this.recvDone && !this.stopSent) this.host.streamCredit(this);
  }

  private resetSend(code: number): void {
    this.sendDone = true;
    const finalSize = this.sendBuf.sentOffset;
    this.sendBuf.discard();
    // a stream the peer never heard of needs no reset unless it may have heard (open sent)
    this.host.streamControl(Frame.ResetStream, this.id, code, finalSize);
  }

  private stopReceiving(code: number): void {
    this.stopSent = true;
    this.host.streamConsumed(this.recvBuf.discard());
    // the peer already sent everything (final size known): it will not answer with a reset
    if (this.recvBuf.finalSize >= 0) this.recvDone = true;
    this.host.streamControl(Frame.StopSending, this.id, code, 0);
  }

  /** Grant more receive credit when half the window is used and the reader keeps up (auto-tuned). */
  private maybeCredit(): void {
    if (this.recvDone || this.stopSent || this.readPaused) return;
    const consumed = this.recvBuf.readOffset;
    if (this.localMaxStreamData - consumed >= this.window / 2) return;
    const now = this.host.now();
    // credit used up within two RTTs: the window limits throughput, so double it
    if (now - this.lastCreditAt < 2 * this.host.srttMs() && this.window < this.maxWindow) {
      this.window = Math.min(this.window * 2, this.maxWindow);
    }
    this.lastCreditAt = now;
    this.localMaxStreamData = consumed + this.window;
    this.host.streamCredit(this);
  }

  /** Right after a peer opened the stream: raise the protocol's initial credit to our window. */
  grantInitialCredit(): void {
    this.maybeCredit();
  }
}
