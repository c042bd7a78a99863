// A sender whose receiver stopped reading must not wait forever (or for the
// connection's 5-minute idle timeout: the peer's transport keeps acknowledging
// packets and answering probes, it just stops granting flow-control credit).
// Progress is the peer acknowledging our bytes (a transport stream exposes
// bytesAcked), else our writes draining. No progress for `stallMs` while we
// still have bytes outstanding cuts the stream with TIMEOUT. Waiting for an
// answer once everything is acknowledged is the caller's (separate) timeout.
import type { ServiceStream } from './host.ts';
import { PilotError } from '../util/errors.ts';

export const DEFAULT_STALL_TIMEOUT_MS = 30_000;

export class StallGuard {
  private readonly stream: ServiceStream;
  private readonly stallMs: number;
  private readonly what: string;
  private readonly timer: NodeJS.Timeout;
  private last: number;
  private lastProgress = -1;
  private drains = 0;
  private readonly onDrain = (): void => {
    this.drains++;
  };

  constructor(stream: ServiceStream, stallMs: number, what: string) {
    this.stream = stream;
    this.stallMs = stallMs;
    this.what = what;
    this.last = Date.now();
    stream.on('drain', this.onDrain);
    this.timer = setInterval(() => this.check(), Math.max(50, Math.min(1000, Math.floor(stallMs / 4))));
    this.timer.unref();
  }

  private progress(): number {
    const acked = this.stream.bytesAcked;
    return typeof acked === 'number' ? acked : this.drains;
  }

  /** Bytes written that the peer has not acknowledged yet (or still queued here). */
  private outstanding(): boolean {
    const acked = this.stream.bytesAcked;
    const written = this.stream.bytesWrittenTotal;
    if (typeof acked === 'number' && typeof written === 'number') return written > acked;
    return this.stream.writableLength > 0 || this.stream.writableNeedDrain;
  }

  private check(): void {
    const now = Date.now();
    const p = this.progress();
    if (p !== this.lastProgress || !this.outstanding()) {
      this.lastProgress = p;
      this.last = now;
      return;
    }
    if (now - this.last < this.stallMs) return;
    this.stop();
    const secs = Math.round(this.stallMs / 100) / 10;
    this.stream.destroy(
      new PilotError(
        'TIMEOUT',
        `the receiver took no byte of ${this.what} for ${secs} s (it stopped reading)`,
        `the peer is hung, overloaded or refusing to read; try again later. The limit is stallTimeoutMs in $PILOT_HOME/services.json (default ${DEFAULT_STALL_TIMEOUT_MS} ms)`,
      ),
    );
  }

  stop(): void {
    clearInterval(this.timer);
    this.stream.off('drain', this.onDrain);
  }
}
