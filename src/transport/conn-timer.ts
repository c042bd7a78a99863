// The connection's one timer. The connection computes the earliest deadline
// (loss/probe timeout, delayed ACK, pacing, idle check) after every flush and
// arms this with it. Re-arming is cheap when nothing changed: a timer that
// fires early enough is kept (the connection re-evaluates when it fires), and
// with nothing to wait for the timer is left pending but unref'd instead of
// cleared, since request/response traffic would otherwise clear and set one per
// round trip.
//
// Keeping the process alive: data in flight does (like a socket with pending
// writes); an idle check alone does not.

export interface TimerHandle {
  ref(): unknown;
  unref(): unknown;
  hasRef(): boolean;
}

/** setTimeout / clearTimeout (injectable for tests). */
export interface TimerApi {
  set(cb: () => void, ms: number): TimerHandle;
  clear(h: TimerHandle): void;
}

const nodeTimers: TimerApi = {
  set: (cb, ms) => setTimeout(cb, ms),
  clear: (h) => clearTimeout(h as NodeJS.Timeout),
};

export class ConnectionTimer {
  private handle: TimerHandle | null = null;
  /** When the pending timer fires (Infinity: none). */
  private at = Infinity;
  private readonly onFire: () => void;
  private readonly api: TimerApi;
  private readonly fire = (): void => {
    this.handle = null;
    this.at = Infinity;
    this.onFire();
  };

  constructor(onFire: () => void, api: TimerApi = nodeTimers) {
    this.onFire = onFire;
    this.api = api;
  }

  /** Is a timer pending (for tests and stats)? */
  get pending(): boolean {
    return this.handle !== null;
  }

  /**
   * Fire at `deadline` (ms on the connection's clock, `now` is that clock now) or earlier.
   * `idleOnly`: the deadline is only the idle check, which must not keep the process alive.
   */
  arm(now: number, deadline: number, idleOnly: boolean): void {
    const h = this.handle;
    if (deadline === Infinity) {
      if (h !== null) h.unref();
      return;
    }
    if (h !== null && this.at <= deadline) {
      if (!idleOnly && !h.hasRef()) h.ref();
      return;
    }
    if (h !== null) this.api.clear(h);
    this.at = deadline;
    const next = this.api.set(this.fire, Math.max(0, Math.ceil(deadline - now)));
    this.handle = next;
    if (idleOnly) next.unref();
  }

  stop(): void {
    if (this.handle !== null) this.api.clear(this.handle);
    this.handle = null;
    this.at = Infinity;
  }
}
