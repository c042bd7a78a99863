// PilotSocket: one overlay stream as a Duplex that behaves like a net.Socket,
// so http, undici and anything written for sockets can use it. It relays an
// inner stream (the IPC byte pipe, or the transport stream of an embedded
// node) keeping its backpressure (write() false until the inner drains, the
// inner paused while our reader does not read) and half-close (end() ends only
// our direction), and turns failures into PilotErrors with codes.
import { Duplex } from 'node:stream';
import { PilotError, asPilotError } from '../util/errors.ts';
import type { PipeControl } from './backend.ts';

export interface PilotSocketInfo {
  /** The peer's virtual address (N:XXXX.YYYY.YYYY). */
  remoteAddress: string;
  remoteHostname: string | null;
  /** The peer's virtual port. */
  remotePort: number;
  /** This node's virtual address. */
  localAddress: string;
  localPort: number;
}

const HIGH_WATER = 256 * 1024;

export class PilotSocket extends Duplex {
  readonly remoteAddress: string;
  readonly remoteHostname: string | null;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteFamily = 'pilot';
  readonly connecting = false;
  readonly pending = false;
  timeout: number | undefined;
  bytesRead = 0;
  private written = 0;
  private readonly inner: Duplex;
  /** For IPC pipes, which carry only bytes: why the stream failed, and resetting it. */
  private readonly control: PipeControl | undefined;
  private innerEnded = false;
  private failing = false;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(inner: Duplex, info: PilotSocketInfo, control?: PipeControl) {
    super({ allowHalfOpen: true, readableHighWaterMark: HIGH_WATER, writableHighWaterMark: HIGH_WATER });
    this.inner = inner;
    this.control = control;
    this.remoteAddress = info.remoteAddress;
    this.remoteHostname = info.remoteHostname;
    this.remotePort = info.remotePort;
    this.localAddress = info.localAddress;
    this.localPort = info.localPort;
    inner.on('data', (chunk: Buffer) => {
      this.bytesRead += chunk.length;
      this.touch();
      if (!this.push(chunk)) inner.pause();
    });
    inner.on('end', () => {
      this.innerEnded = true;
      // An IPC pipe ends the same way whether the peer sent FIN or the stream failed: ask.
      if (!this.control) return void this.push(null);
      void this.control.explain().then((err) => {
        if (err) this.fail(err);
        else if (!this.destroyed) this.push(null);
      });
    });
    inner.on('error', (err: Error) => this.fail(err));
    inner.on('close', () => {
      if (!this.innerEnded || !inner.writableFinished) this.fail(undefined);
    });
    inner.resume();
  }

  get bytesWritten(): number {
    return this.written;
  }

  get readyState(): 'open' | 'readOnly' | 'writeOnly' | 'closed' {
    if (this.destroyed) return 'closed';
    const r = !this.readableEnded;
    const w = !this.writableEnded;
    return r && w ? 'open' : r ? 'readOnly' : w ? 'writeOnly' : 'closed';
  }

  /** The inner stream failed (or closed early): tell the application why, with a code. */
  private fail(err: Error | undefined): void {
    if (this.failing || this.destroyed) return;
    this.failing = true;
    const fallback = (): PilotError => {
      if (err instanceof PilotError) return err;
      const code = (err as { code?: string } | undefined)?.code;
      if (err === undefined || code === 'ECONNRESET' || code === 'EPIPE')
        return new PilotError('CONNECTION_RESET', 'the stream was reset', 'the peer went away or the daemon closed the stream');
      return asPilotError(err);
    };
    if (!this.control || err instanceof PilotError) return void this.destroy(fallback());
    void this.control.explain().then((why) => this.destroy(why ?? fallback()));
  }

  override _read(): void {
    this.inner.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.written += chunk.length;
    this.touch();
    if (this.inner.write(chunk)) return cb();
    const done = (): void => {
      this.inner.off('drain', done);
      this.inner.off('close', done);
      cb();
    };
    this.inner.on('drain', done);
    this.inner.on('close', done);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.inner.writableFinished) return cb();
    this.inner.end();
    const done = (): void => {
      this.inner.off('finish', done);
      this.inner.off('close', done);
      cb();
    };
    this.inner.on('finish', done);
    this.inner.on('close', done);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    // Both directions ended in order: the inner closes by itself (nothing may be cut short).
    const orderly = !err && this.innerEnded && this.inner.writableFinished;
    if (orderly || this.inner.destroyed) return cb(err);
    // Over IPC, closing the pipe would read as a clean end: reset the stream first.
    if (this.control && !this.failing) {
      void this.control.reset(err).then(() => {
        this.inner.destroy();
        cb(err);
      });
      return;
    }
    this.inner.destroy(err ?? undefined);
    cb(err);
  }

  // ---- the net.Socket surface that http, undici and friends use ----

  /** Emit 'timeout' after `ms` without reads or writes (0 disables), like net.Socket. */
  setTimeout(ms: number, cb?: () => void): this {
    this.timeout = ms;
    if (cb) this.once('timeout', cb);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (ms > 0) {
      this.idleTimer = setTimeout(() => this.emit('timeout'), ms);
      this.idleTimer.unref();
    }
    return this;
  }

  private touch(): void {
    this.idleTimer?.refresh();
  }

  setNoDelay(_noDelay?: boolean): this {
    return this; // the overlay sends at once already
  }

  setKeepAlive(_enable?: boolean, _delay?: number): this {
    return this; // the daemon keeps the path alive
  }

  address(): { address: string; port: number; family: string } {
    return { address: this.localAddress, port: this.localPort, family: 'pilot' };
  }

  ref(): this {
    (this.inner as Duplex & { ref?: () => void }).ref?.();
    return this;
  }

  unref(): this {
    (this.inner as Duplex & { unref?: () => void }).unref?.();
    return this;
  }

  destroySoon(): void {
    if (this.writableFinished) this.destroy();
    else this.end(() => this.destroy());
  }

  resetAndDestroy(): this {
    return this.destroy(new PilotError('CONNECTION_RESET', 'reset by the application'));
  }
}
