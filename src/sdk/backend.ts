// What a PilotNode needs from "the daemon": the same IPC methods whether they
// travel over the unix socket (client.ts) or are called in-process on an
// embedded daemon (embedded.ts).
import type { Duplex } from 'node:stream';
import type { PilotError } from '../util/errors.ts';
import type { Method, ParamsIn, PipeMethod, ResultOf } from '../ipc/api.ts';
import type { EventHandler, ParamsArg } from '../ipc/client.ts';

/** The events of a subscription to `M`, typed by the IPC contract (src/ipc/api.ts). */
export type EventCallback<M extends Method> = EventHandler<M>;

/** A long-running call (listen, recv, events); cancel() ends it on the daemon side too. */
export interface Subscription<T = unknown> {
  readonly done: Promise<T>;
  cancel(): void;
}

export interface OpenedPipe<R = unknown> {
  /** Bytes to and from one overlay stream. */
  stream: Duplex;
  result: R;
}

export interface PipeControl {
  /** The stream's error, if it failed (asked when the pipe ended or broke). */
  explain(): Promise<PilotError | undefined>;
  /** Reset the stream with `err`'s code (before the pipe is closed). */
  reset(err: Error | null): Promise<void>;
}

/** Every method is one of the IPC contract's: its params and result are typed by it. */
export interface Backend {
  readonly kind: 'ipc' | 'embedded';
  call<M extends Method>(method: M, ...params: ParamsArg<M>): Promise<ResultOf<M>>;
  /** A cancelled subscription's done resolves without a result. */
  subscribe<M extends Method>(method: M, params: ParamsIn<M>, onEvent: EventCallback<M>): Subscription<ResultOf<M> | undefined>;
  /** A method (sdk_dial, sdk_accept) whose answer is a byte pipe. */
  pipe<M extends PipeMethod>(method: M, params: ParamsIn<M>): Promise<OpenedPipe<ResultOf<M>>>;
  /**
   * Out-of-band control of a pipe, for pipes that can only carry bytes (IPC):
   * why its stream failed or ended, and resetting it with an error code.
   * Undefined when the stream carries errors itself (in-process).
   */
  pipeControl(pipeId: string): PipeControl | undefined;
  close(): Promise<void>;
}
