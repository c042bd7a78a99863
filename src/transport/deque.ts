// Growable ring-buffer FIFO: O(1) push / shift without Array#shift's copying.
export class Deque<T> {
  private items: (T | undefined)[] = new Array(16);
  private head = 0;
  private n = 0;

  get length(): number {
    return this.n;
  }

  push(v: T): void {
    if (this.n === this.items.length) this.grow();
    this.items[(this.head + this.n) & (this.items.length - 1)] = v;
    this.n++;
  }

  peek(): T | undefined {
    return this.n === 0 ? undefined : this.items[this.head];
  }

  shift(): T | undefined {
    if (this.n === 0) return undefined;
    const v = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) & (this.items.length - 1);
    this.n--;
    return v;
  }

  clear(): void {
    this.items = new Array(16);
    this.head = 0;
    this.n = 0;
  }

  private grow(): void {
    const old = this.items;
    const next: (T | undefined)[] = new Array(old.length * 2);
    for (let i = 0; i < this.n; i++) next[i] = old[(this.head + i) & (old.length - 1)];
    this.items = next;
    this.head = 0;
  }
}
