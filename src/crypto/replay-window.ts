// Sliding anti-replay window (RFC 6479 bitmap of 64 x 32 bits). check() and
// commit() are separate so the window only moves once a packet authenticated:
// a forged packet with a huge counter cannot push real traffic out of the window.
const WORDS = 64;
const BITS = WORDS * 32;
export const REPLAY_WINDOW = BITS - 32; // usable span

export class ReplayWindow {
  private readonly words = new Uint32Array(WORDS);
  private max = -1;

  check(n: number): boolean {
    if (!Number.isSafeInteger(n) || n < 0) return false;
    if (n > this.max) return true;
    if (this.max - n >= REPLAY_WINDOW) return false;
    return (this.words[Math.floor(n / 32) % WORDS]! & (1 << n % 32)) === 0;
  }

  commit(n: number): void {
    if (n > this.max) {
      const oldWord = this.max < 0 ? -1 : Math.floor(this.max / 32);
      const newWord = Math.floor(n / 32);
      const clear = Math.min(newWord - oldWord, WORDS);
      for (let i = 1; i <= clear; i++) this.words[(oldWord + i) % WORDS] = 0;
      this.max = n;
    }
    this.words[Math.floor(n / 32) % WORDS]! |= 1 << n % 32;
  }

  get highest(): number {
    return this.max;
  }
}
