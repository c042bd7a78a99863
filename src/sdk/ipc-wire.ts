// A subscription (listen, recv, events) on its own IPC connection: events
// until the final answer, and a cancel ends it by closing the connection (the
// daemon stops the handler then). Byte pipes (sdk_dial / sdk_accept) are
// openPipe() in the ipc layer.
import type net from 'node:net';
import { PilotError } from '../util/errors.ts';
import { connectSocket, replyError, type ConnectOptions } from '../ipc/client.ts';
import { LineReader } from '../ipc/line-reader.ts';
import { parseMessage } from '../ipc/protocol.ts';
import type { EventCallback, Subscription } from './backend.ts';

/** How the SDK connects: pipes stay half-open so either side can end its direction alone. */
export const SDK_CONNECT: ConnectOptions = {
  allowHalfOpen: true,
  hint: 'start it with: pilotctl daemon start (or pass connect({ socket }) / set PILOT_SOCKET)',
};

/** A long-running request on its own connection: events until the final answer or cancel(). */
export function subscribe<T>(path: string, method: string, params: Record<string, unknown>, onEvent: EventCallback): Subscription<T> {
  let sock: net.Socket | undefined;
  let cancelled = false;
  const done = new Promise<T>((resolve, reject) => {
    connectSocket(path, SDK_CONNECT).then((s) => {
      sock = s;
      if (cancelled) {
        s.destroy();
        return resolve(undefined as T);
      }
      const reader = new LineReader();
      let answered = false;
      s.on('data', (chunk: Buffer) => {
        let lines: string[];
        try {
          lines = reader.push(chunk);
        } catch (err) {
          s.destroy();
          return reject(err as Error);
        }
        for (const line of lines) {
          const msg = parseMessage(line);
          if (!msg || answered) continue;
          if ('event' in msg) {
            if (!cancelled) onEvent(msg.event, msg.data);
            continue;
          }
          answered = true;
          s.destroy();
          const err = replyError(msg);
          if (err) reject(err);
          else resolve(('result' in msg ? msg.result : undefined) as T);
        }
      });
      s.on('error', () => {});
      s.on('close', () => {
        if (answered) return;
        if (cancelled) resolve(undefined as T);
        else reject(new PilotError('NO_DAEMON', 'the daemon closed the connection', 'is the daemon still running? see its log'));
      });
      s.write(JSON.stringify({ id: 1, method, params }) + '\n');
    }, reject);
  });
  return {
    done,
    cancel: () => {
      cancelled = true;
      sock?.destroy();
    },
  };
}
