// The SDK over the daemon's unix socket: requests share one connection,
// subscriptions and byte pipes get their own.
import { IpcClient } from '../ipc/client.ts';
import { socketPath } from '../ipc/protocol.ts';
import { PilotError } from '../util/errors.ts';
import type { Backend, EventCallback, OpenedPipe, Subscription } from './backend.ts';
import { openPipe, subscribe } from './ipc-wire.ts';

export class IpcBackend implements Backend {
  readonly kind = 'ipc' as const;
  readonly path: string;
  private readonly client: IpcClient;
  private readonly subs = new Set<Subscription>();
  private closed = false;

  constructor(path?: string) {
    this.path = socketPath(path);
    this.client = new IpcClient(this.path);
  }

  call<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    if (this.closed) return Promise.reject(closedError());
    return this.client.call<T>(method, params);
  }

  subscribe<T>(method: string, params: Record<string, unknown>, onEvent: EventCallback): Subscription<T> {
    if (this.closed) return { done: Promise.reject(closedError()), cancel: () => {} };
    const sub = subscribe<T>(this.path, method, params, onEvent);
    this.subs.add(sub);
    void sub.done.catch(() => {}).finally(() => this.subs.delete(sub));
    return sub;
  }

  async pipe(method: string, params: Record<string, unknown>): Promise<OpenedPipe> {
    if (this.closed) throw closedError();
    const { socket, result } = await openPipe(this.path, method, params);
    return { stream: socket, result };
  }

  explainer(pipeId: string): () => Promise<PilotError | undefined> {
    return async () => {
      if (this.closed) return undefined;
      const e = await this.client.call<{ code: PilotError['code']; message: string; hint?: string } | null>('sdk_pipe_error', { pipe: pipeId }).catch(() => null);
      return e ? new PilotError(e.code, e.message, e.hint) : undefined;
    };
  }

  /** Ends requests and subscriptions; open sockets stay (they are the application's). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.subs) s.cancel();
    this.client.close();
  }
}

function closedError(): PilotError {
  return new PilotError('BAD_REQUEST', 'this Pilot node handle is closed', 'connect() again');
}
