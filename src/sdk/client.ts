// The SDK over the daemon's unix socket: requests share one connection,
// subscriptions and byte pipes get their own.
import { IpcClient, openPipe, type AnyEventHandler, type ParamsArg } from '../ipc/client.ts';
import type { Method, ParamsIn, PipeMethod, ResultOf } from '../ipc/api.ts';
import { socketPath } from '../ipc/protocol.ts';
import { PilotError } from '../util/errors.ts';
import type { Backend, EventCallback, OpenedPipe, PipeControl, Subscription } from './backend.ts';
import { SDK_CONNECT, subscribe } from './ipc-wire.ts';

export class IpcBackend implements Backend {
  readonly kind = 'ipc' as const;
  readonly path: string;
  private readonly client: IpcClient;
  private readonly subs = new Set<Subscription>();
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(path?: string) {
    this.path = socketPath(path);
    this.client = new IpcClient(this.path, { hint: SDK_CONNECT.hint });
  }

  call<M extends Method>(method: M, ...params: ParamsArg<M>): Promise<ResultOf<M>> {
    if (this.closed) return Promise.reject(closedError());
    return this.client.call(method, ...params);
  }

  subscribe<M extends Method>(method: M, params: ParamsIn<M>, onEvent: EventCallback<M>): Subscription<ResultOf<M> | undefined> {
    if (this.closed) return { done: Promise.reject(closedError()), cancel: () => {} };
    let token: string | undefined;
    // Events off the wire are the contract's events of `method`.
    const deliver = onEvent as AnyEventHandler;
    const sub = subscribe(this.path, method, params, (event, data) => {
      // the first event of an SDK subscription carries the token that stops it
      const t = (data as { cancel?: unknown } | null)?.cancel;
      if (typeof t === 'string') token = t;
      if (event !== 'alive') deliver(event, data);
    });
    const wrapped: Subscription<ResultOf<M> | undefined> = {
      done: sub.done,
      // A cancelled handler answers, so done resolves once the daemon let go
      // (a listener's port is free again); closing the connection is the fallback.
      cancel: () => {
        if (token === undefined) return sub.cancel();
        const fallback = setTimeout(() => sub.cancel(), 2000);
        void sub.done.catch(() => {}).finally(() => clearTimeout(fallback));
        this.client.call('sdk_cancel', { token }).catch(() => sub.cancel());
      },
    };
    this.subs.add(wrapped);
    void sub.done.catch(() => {}).finally(() => this.subs.delete(wrapped));
    return wrapped;
  }

  async pipe<M extends PipeMethod>(method: M, params: ParamsIn<M>): Promise<OpenedPipe<ResultOf<M>>> {
    if (this.closed) throw closedError();
    const { socket, result } = await openPipe(method, params, this.path, SDK_CONNECT);
    return { stream: socket, result };
  }

  pipeControl(pipe: string): PipeControl {
    return {
      explain: async () => {
        if (this.closed) return undefined;
        const e = await this.client.call('sdk_pipe_error', { pipe }).catch(() => null);
        return e ? new PilotError(e.code, e.message, e.hint) : undefined;
      },
      reset: async (err) => {
        if (this.closed) return;
        const code = (err as { code?: unknown } | null)?.code;
        await this.client.call('sdk_reset', { pipe, ...(typeof code === 'string' ? { code } : {}), ...(err ? { message: err.message } : {}) }).catch(() => {});
      },
    };
  }

  /** Ends requests and subscriptions; open sockets stay (they are the application's). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const subs = [...this.subs];
      for (const s of subs) s.cancel();
      await Promise.all(subs.map((s) => s.done.catch(() => {})));
      this.closed = true;
      this.client.close();
    })();
    return this.closing;
  }
}

function closedError(): PilotError {
  return new PilotError('BAD_REQUEST', 'this Pilot node handle is closed', 'connect() again');
}
