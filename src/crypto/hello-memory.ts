// Replay protection of message 1 (the Noise IK hello carries a timestamp): a
// responder refuses a message 1 whose timestamp is not newer than the newest
// one it accepted from that static key, and our own hellos carry strictly
// increasing timestamps so two handshakes in one millisecond are not taken for
// replays. Timestamps of message 2s count too (see session-manager.ts: that is
// what keeps two crossing handshakes from both completing).
import type { Address } from '../wire/address.ts';
import type { Hello } from './handshake.ts';

/** Static keys whose newest hello timestamp is remembered (about 100 bytes each). */
export const MAX_HELLO_KEYS = 65_536;

export interface HelloMemoryOptions {
  localAddress: Address;
  bootId: Buffer;
  now: () => number;
  /** Static keys remembered at most (default MAX_HELLO_KEYS). */
  maxKeys?: number;
}

export class HelloMemory {
  private readonly opts: HelloMemoryOptions;
  /**
   * Newest hello timestamp seen from each static key, least recently updated
   * first. Bounded: past maxKeys the key not heard from for longest is
   * forgotten. A replay of such a key's old message 1 finds no session to
   * disturb (we have not talked to it for a long time), costs a message 2
   * smaller than what was sent and one rate-limited registry check, and nothing more.
   */
  private readonly newest = new Map<string, number>();
  private lastOwnTs = 0;

  constructor(opts: HelloMemoryOptions) {
    this.opts = opts;
  }

  /** Our hello for a new message 1 or 2. */
  own(): Hello {
    this.lastOwnTs = Math.max(this.opts.now(), this.lastOwnTs + 1);
    return { address: this.opts.localAddress, bootId: this.opts.bootId, timestamp: this.lastOwnTs };
  }

  /** Is `timestamp` newer than every hello accepted from `keyId` (base64 static key)? */
  fresh(keyId: string, timestamp: number): boolean {
    return timestamp > (this.newest.get(keyId) ?? -1);
  }

  /** Remember `timestamp` as the newest from `keyId`. */
  note(keyId: string, timestamp: number): void {
    this.newest.delete(keyId); // re-inserted last: Map order is recency
    this.newest.set(keyId, timestamp);
    if (this.newest.size > (this.opts.maxKeys ?? MAX_HELLO_KEYS)) this.newest.delete(this.newest.keys().next().value!);
  }

  /** Static keys remembered now. */
  get size(): number {
    return this.newest.size;
  }
}
