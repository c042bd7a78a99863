// A map keyed by an ordered pair of node addresses (their numeric addressKey), for the
// relay's per-pair decisions. Two levels of Map<number, ...> instead of one keyed by a
// "src>dst" string: the relay looks a pair up for every packet it forwards, and a string
// built per packet was an allocation and a hash of fresh text each time. Bounded: `size`
// counts entries across both levels, and the caller clears it at its cap.

export class PairMap<V> {
  private readonly bySrc = new Map<number, Map<number, V>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(src: number, dst: number): V | undefined {
    return this.bySrc.get(src)?.get(dst);
  }

  set(src: number, dst: number, v: V): void {
    let inner = this.bySrc.get(src);
    if (inner === undefined) {
      inner = new Map();
      this.bySrc.set(src, inner);
    }
    const before = inner.size;
    inner.set(dst, v);
    this.count += inner.size - before;
  }

  delete(src: number, dst: number): void {
    const inner = this.bySrc.get(src);
    if (inner === undefined || !inner.delete(dst)) return;
    this.count--;
    if (inner.size === 0) this.bySrc.delete(src);
  }

  /** Every pair with `node` on either side. */
  deleteNode(node: number): void {
    const inner = this.bySrc.get(node);
    if (inner !== undefined) {
      this.count -= inner.size;
      this.bySrc.delete(node);
    }
    for (const [src, m] of this.bySrc) {
      if (!m.delete(node)) continue;
      this.count--;
      if (m.size === 0) this.bySrc.delete(src);
    }
  }

  /** Drops the pairs for which `drop` says so. */
  sweep(drop: (v: V) => boolean): void {
    for (const [src, m] of this.bySrc) {
      for (const [dst, v] of m) {
        if (!drop(v)) continue;
        m.delete(dst);
        this.count--;
      }
      if (m.size === 0) this.bySrc.delete(src);
    }
  }

  clear(): void {
    this.bySrc.clear();
    this.count = 0;
  }
}
