// A set of integers kept as sorted, disjoint, non-adjacent half-open ranges
// [start, end) in one flat number array. Used for received packet numbers,
// acked / to-retransmit stream bytes and retired stream ids. The common case
// (appending just above the highest range) is O(1); the rest is a binary
// search plus a splice over what are, in practice, short arrays.
export class RangeSet {
  /** [start0, end0, start1, end1, ...] ascending */
  readonly r: number[] = [];

  get size(): number {
    return this.r.length >> 1;
  }

  isEmpty(): boolean {
    return this.r.length === 0;
  }

  clear(): void {
    this.r.length = 0;
  }

  start(i: number): number {
    return this.r[2 * i]!;
  }

  end(i: number): number {
    return this.r[2 * i + 1]!;
  }

  /** Lowest value in the set (undefined behaviour when empty). */
  min(): number {
    return this.r[0]!;
  }

  /** One past the highest value in the set. */
  max(): number {
    return this.r[this.r.length - 1]!;
  }

  has(x: number): boolean {
    const r = this.r;
    const n = r.length;
    if (n === 0 || x < r[0]! || x >= r[n - 1]!) return false;
    // last range first: lookups are mostly near the top
    if (x >= r[n - 2]!) return true;
    const i = this.findFirstEndAbove(x);
    return i < n && r[i]! <= x;
  }

  /** Adds [s, e). Returns how many values were not already present. */
  add(s: number, e: number): number {
    if (e <= s) return 0;
    const r = this.r;
    const n = r.length;
    if (n === 0 || s > r[n - 1]!) {
      r.push(s, e);
      return e - s;
    }
    if (s >= r[n - 2]!) {
      // overlaps or touches the top range
      if (e <= r[n - 1]!) return 0;
      const added = e - r[n - 1]!;
      r[n - 1] = e;
      return added;
    }
    // general case: find the first range whose end >= s (touching counts)
    const i = this.findFirstEndAtLeast(s);
    if (i >= n || e < r[i]!) {
      r.splice(i, 0, s, e);
      return e - s;
    }
    // merge ranges i.. that overlap or touch [s, e)
    let j = i;
    let present = 0;
    while (j < n && r[j]! <= e) {
      present += Math.max(0, Math.min(r[j + 1]!, e) - Math.max(r[j]!, s));
      j += 2;
    }
    const ns = Math.min(s, r[i]!);
    const ne = Math.max(e, r[j - 1]!);
    r.splice(i, j - i, ns, ne);
    return e - s - present;
  }

  /** Removes [s, e). */
  remove(s: number, e: number): void {
    if (e <= s) return;
    const r = this.r;
    const i = this.findFirstEndAbove(s);
    if (i >= r.length || r[i]! >= e) return;
    const out: number[] = [];
    if (r[i]! < s) out.push(r[i]!, s);
    let j = i;
    while (j < r.length && r[j]! < e) j += 2;
    const lastEnd = r[j - 1]!;
    if (lastEnd > e) out.push(e, lastEnd);
    r.splice(i, j - i, ...out);
  }

  /** Drops the lowest range. */
  shift(): void {
    this.r.splice(0, 2);
  }

  /** Index (even, into r) of the first range whose end > x. */
  private findFirstEndAbove(x: number): number {
    const r = this.r;
    let lo = 0;
    let hi = r.length >> 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (r[2 * mid + 1]! > x) hi = mid;
      else lo = mid + 1;
    }
    return 2 * lo;
  }

  /** Index (even) of the first range whose end >= x. */
  private findFirstEndAtLeast(x: number): number {
    const r = this.r;
    let lo = 0;
    let hi = r.length >> 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (r[2 * mid + 1]! >= x) hi = mid;
      else lo = mid + 1;
    }
    return 2 * lo;
  }
}
