// Sliding anti-replay window after RFC 6479: a ring of 32-bit words, one spare
// word so the full 2048-counter span always fits. check() and commit() are
// separate so the window only moves once a packet has authenticated: a forged
// packet with a huge counter cannot push real traffic out of the window.
export const REPLAY_WINDOW = 2048;
const WORD_BITS = 32;
const WORDS = REPLAY_WINDOW / WORD_BITS + 1;

export class ReplayWindow {
  private readonly words = new Uint32Array(WORDS);
  private max = -1;

  /** Would `n` be accepted (new and not too old)? Does not change the window. */
  check(n: number): boolean {
    if (!Number.isSafeInteger(n) || n < 0) return false;
    if (n > this.max) return true;
    if (this.max - n >= REPLAY_WINDOW) return false;
    // `n & 31` is exact for any safe integer (2^32 is a multiple of 32).
    return (this.words[Math.floor(n / WORD_BITS) % WORDS]! & (1 << (n & 31))) === 0;
  }

  /** Mark `n` as seen; call only after check(n) and after the packet authenticated. */
  commit(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) return;
    if (n > this.max) {
      const newWord = Math.floor(n / WORD_BITS);
      const oldWord = this.max < 0 ? -1 : Math.floor(this.max / WORD_BITS);
      // Words the window slides into hold bits of counters a full ring ago: clear them.
      const clear = Math.min(newWord - oldWord, WORDS);
      for (let i = 1; i <= clear; i++) this.words[(oldWord + i) % WORDS] = 0;
      this.max = n;
    } else if (this.max - n >= REPLAY_WINDOW) {
      return;
    }
    this.words[Math.floor(n / WORD_BITS) % WORDS]! |= 1 << (n & 31);
  }

  /** Highest committed counter, -1 before the first. */
  get highest(): number {
    return this.max;
  }
}
