// Reusable fixed-size memory for stream data waiting for its ACK (src/transport/send-buffer.ts).
//
// Why: a stream keeps what it sent until the peer acknowledges it. Kept as the Buffers the
// application wrote (a TCP socket's 64 KiB reads through the gateway, IPC chunks), each one
// outlived the daemon's 1 MiB young generation (src/os-service/daemon-command.ts) often enough to
// be promoted, and the old generation then filled with dead 64 KiB ArrayBuffers: a sending daemon
// spent ~13% of its CPU in V8's major collections (perf, NAT lab, issue 20). Copying the bytes
// into slabs that are handed back here once acknowledged leaves the application's Buffers to die
// young, and the slabs themselves are never garbage. The copy costs ~3 us per 64 KiB.
//
// Bounded: at most MAX_FREE slabs wait here (1 MiB); the rest go to the collector.
export const SLAB_BYTES = 64 * 1024;
const MAX_FREE = 16;

export class SlabPool {
  private readonly free: Buffer[] = [];

  /** A slab of SLAB_BYTES (contents undefined). */
  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(SLAB_BYTES);
  }

  /** A slab nobody reads any more. */
  give(slab: Buffer): void {
    if (this.free.length < MAX_FREE && slab.length === SLAB_BYTES) this.free.push(slab);
  }

  /** Slabs waiting for reuse (tests, metrics). */
  get idle(): number {
    return this.free.length;
  }
}

/** One pool per process: a daemon's streams take turns with the same few slabs. */
export const slabs = new SlabPool();
