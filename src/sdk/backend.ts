// What a PilotNode needs from "the daemon": the same IPC methods whether they
// travel over the unix socket (client.ts) or are called in-process on an
// embedded daemon (embedded.ts).
import type { Duplex } from 'node:stream';
import type { PilotError } from '../util/errors.ts';

export type EventCallback = (event: string, data: unknown) => void;

/** A long-running call (listen, recv, events); cancel() ends it on the daemon side too. */
export interface Subscription<T = unknown> {
  readonly done: Promise<T>;
  cancel(): void;
}

export interface OpenedPipe {
  /** Bytes to and from one overlay stream. */
  stream: Duplex;
  result: Record<string, unknown>;
}

export interface Backend {
  readonly kind: 'ipc' | 'embedded';
  call<T>(method: string, params?: Record<string, unknown>): Promise<T>;
  subscribe<T>(method: string, params: Record<string, unknown>, onEvent: EventCallback): Subscription<T>;
  /** A method (sdk_dial, sdk_accept) whose answer is a byte pipe. */
  pipe(method: string, params: Record<string, unknown>): Promise<OpenedPipe>;
  /**
   * Why a pipe's stream failed, or ended: an IPC pipe can only close, so the
   * daemon keeps the reason. Undefined when the stream carries its own errors.
   */
  explainer(pipeId: string): (() => Promise<PilotError | undefined>) | undefined;
  close(): Promise<void>;
}
