// Incoming streams waiting for an IPC client to take them (listen -> accept).
// Shared by pilotctl's listen/accept and the SDK's sdk_listen/sdk_accept.
import crypto from 'node:crypto';
import type { IncomingStream } from './ports.ts';

/** An id never accepted within this long is reset, so nothing leaks. */
export const ACCEPT_EXPIRY_MS = 30_000;

export type AcceptQueue = Map<string, IncomingStream>;

/** Park `stream` under a fresh id until accept(id) takes it or it expires. */
export function park(queue: AcceptQueue, stream: IncomingStream): string {
  const id = crypto.randomBytes(8).toString('hex');
  queue.set(id, stream);
  setTimeout(() => {
    if (queue.get(id) === stream) {
      queue.delete(id);
      stream.destroy();
    }
  }, ACCEPT_EXPIRY_MS).unref();
  return id;
}
