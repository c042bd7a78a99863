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

export interface PipeControl {
  /** The stream's error, if it failed (asked when the pipe ended or broke). */
  explain(): Promise<PilotError | undefined>;
  /** Reset the stream with `err`'s code (before the pipe is closed). */
  reset(err: Error | null): Promise<void>;
}

export interface Backend {
  readonly kind: 'ipc' | 'embedded';
  call<T>(method: string, params?: Record<string, unknown>): Promise<T>;
  subscribe<T>(method: string, params: Record<string, unknown>, onEvent: EventCallback): Subscription<T>;
  /** A method (sdk_dial, sdk_accept) whose answer is a byte pipe. */
  pipe(method: string, params: Record<string, unknown>): Promise<OpenedPipe>;
  /**
   * Out-of-band control of a pipe, for pipes that can only carry bytes (IPC):
   * why its stream failed or ended, and resetting it with an error code.
   * Undefined when the stream carries errors itself (in-process).
   */
  pipeControl(pipeId: string): PipeControl | undefined;
  close(): Promise<void>;
}
