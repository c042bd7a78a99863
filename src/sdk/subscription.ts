// A live service subscription (pub/sub events, stdio lines) as an async
// iterable: items as the daemon streams them, until `count` items, the
// timeout, cancel() (or leaving a for-await loop), the abort signal, or an
// error (thrown by the iterator and by `done`).
import { asPilotError, type PilotError } from '../util/errors.ts';
import type { EventsOf, ParamsIn } from '../ipc/api.ts';
import type { Backend, Subscription } from './backend.ts';
import type { SubscriptionEnd } from './service-types.ts';

/** The service methods that stream items until a count, a timeout or cancel. */
type ItemMethod = 'subscribe' | 'stdio_recv';

export interface SubscriptionOptions<T> {
  /** End after this many items (default 0: until the timeout or cancel()). */
  count?: number;
  /** End after this long (default 0: no timeout). */
  timeoutMs?: number;
  /** cancel() when this aborts. */
  signal?: AbortSignal;
  /** Hand each item to this callback instead of queueing it for the iterator. */
  onItem?: (item: T) => void;
}

export class ServiceSubscription<T> implements AsyncIterable<T> {
  /** Resolves when the subscription ended; rejects with a PilotError if it failed. */
  readonly done: Promise<SubscriptionEnd>;
  private readonly sub: Subscription;
  private readonly onItem: ((item: T) => void) | undefined;
  private items: T[] = [];
  private wake: (() => void) | undefined;
  private n = 0;
  private cancelled = false;
  private ended = false;
  private failure: PilotError | undefined;

  /** Resolves when the daemon reports the subscription live (may happen while the constructor runs). */
  private readonly ready: Promise<void>;

  /** `start` subscribes with the given event callback; `itemEvent`'s data are the T items. */
  private constructor(
    start: (onEvent: (event: string, data: unknown) => void) => Subscription<unknown>,
    itemEvent: string,
    readyEvent: string,
    onItem: ((item: T) => void) | undefined,
  ) {
    this.onItem = onItem;
    let markReady!: () => void;
    this.ready = new Promise<void>((r) => (markReady = r));
    this.sub = start((event, data) => {
      if (event === itemEvent) this.push(data as T);
      else if (event === readyEvent) markReady();
    });
    this.done = this.sub.done.then(
      (answer) => {
        // over IPC a cancelled request has no answer
        this.finish();
        return { received: this.n, cancelled: this.cancelled || answer == null };
      },
      (err: unknown) => {
        const e = asPilotError(err);
        this.finish(e);
        throw e;
      },
    );
    this.done.catch(() => {}); // the iterator reports it too: never an unhandled rejection
  }

  /**
   * Start `method` on the daemon; resolves once it reports `readyEvent` (the
   * subscription is live) or ended without error, rejects if it failed first.
   */
  static async open<M extends ItemMethod, E extends keyof EventsOf<M> & string>(
    backend: Backend,
    method: M,
    params: ParamsIn<M>,
    itemEvent: E,
    readyEvent: keyof EventsOf<M> & string,
    opts: SubscriptionOptions<EventsOf<M>[E]>,
  ): Promise<ServiceSubscription<EventsOf<M>[E]>> {
    const s = new ServiceSubscription<EventsOf<M>[E]>(
      (onEvent) => backend.subscribe(method, { ...params, count: opts.count ?? 0, timeoutMs: opts.timeoutMs ?? 0 }, onEvent),
      itemEvent,
      readyEvent,
      opts.onItem,
    );
    const signal = opts.signal;
    if (signal) {
      const stop = (): void => s.cancel();
      if (signal.aborted) stop();
      else {
        signal.addEventListener('abort', stop, { once: true });
        void s.done.catch(() => {}).finally(() => signal.removeEventListener('abort', stop));
      }
    }
    await Promise.race([s.ready, s.done]);
    return s;
  }

  /** Items received so far (queued for the iterator or handed to onItem). */
  get received(): number {
    return this.n;
  }

  /** End the subscription (the daemon lets go of it); the iterator ends after the queued items. */
  cancel(): void {
    if (this.ended || this.cancelled) return;
    this.cancelled = true;
    this.sub.cancel();
  }

  private push(item: T): void {
    if (this.ended || this.cancelled) return;
    this.n++;
    if (this.onItem) return this.onItem(item);
    this.items.push(item);
    this.signalWaiter();
  }

  private finish(err?: PilotError): void {
    this.ended = true;
    this.failure = err;
    this.signalWaiter();
  }

  private signalWaiter(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    try {
      for (;;) {
        if (this.items.length > 0) {
          yield this.items.shift()!;
          continue;
        }
        if (this.ended) {
          if (this.failure) throw this.failure;
          return;
        }
        await new Promise<void>((r) => (this.wake = r));
      }
    } finally {
      // break / return / throw in the loop body: stop the daemon side too
      this.cancel();
    }
  }
}
