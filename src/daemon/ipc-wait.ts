// Long-running IPC reads (recv, stdio_recv) wait until enough has arrived, the
// timeout passes, or the client leaves. They write a keepalive now and then:
// a killed client only shows as a failed write on its socket.
import type { HandlerContext } from '../ipc/server.ts';

export const IPC_KEEPALIVE_MS = 15_000;

/**
 * Calls `listen(finish)`, which subscribes and returns its unsubscribe, and
 * resolves once finish() is called, `timeoutMs` (0 = none) passes or the
 * client goes away; the subscription is always removed.
 */
export function readUntilDone(ctx: HandlerContext, timeoutMs: number, listen: (finish: () => void) => () => void): Promise<void> {
  return new Promise<void>((resolve) => {
    let done = false;
    let off: (() => void) | undefined;
    const finish = (): void => {
      if (done) return;
      done = true;
      off?.();
      if (timer) clearTimeout(timer);
      clearInterval(keepalive);
      resolve();
    };
    const timer = timeoutMs > 0 ? setTimeout(finish, timeoutMs) : undefined;
    const keepalive = setInterval(() => ctx.emit('keepalive', {}), IPC_KEEPALIVE_MS);
    off = listen(finish);
    if (done) off(); // finished while subscribing
    void ctx.closed.then(finish);
  });
}
