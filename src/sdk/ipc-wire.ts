// A subscription (listen, recv, events) on its own IPC connection: events
// until the final answer, and a cancel ends it by closing the connection (the
// daemon stops the handler then). Byte pipes (sdk_dial / sdk_accept) are
// openPipe() in the ipc layer.
import type net from 'node:net';
import { PilotError } from '../util/errors.ts';
import { connectSocket, replyError, type ConnectOptions } from '../ipc/client.ts';
import { LineReader } from '../ipc/line-reader.ts';
import { parseMessage } from '../ipc/protocol.ts';
import type { Method, ParamsIn, ResultOf } from '../ipc/api.ts';
import type { AnyEventHandler } from '../ipc/client.ts';
import type { Subscription } from './backend.ts';

/** How the SDK connects: pipes stay half-open so either side can end its direction alone. */
export const SDK_CONNECT: ConnectOptions = {
  allowHalfOpen: true,
  hint: 'start it with: pilotctl daemon start (or pass connect({ socket }) / set PILOT_SOCKET)',
};

/** A long-running request on its own connection: events until the final answer or cancel(). */
export function subscribe<M extends Method>(path: string, method: M, params: ParamsIn<M>, onEvent: AnyEventHandler): Subscription<ResultOf<M> | undefined> {
  let sock: net.Socket | undefined;
  let cancelled = false;
  const done = new Promise<ResultOf<M> | undefined>((resolve, reject) => {
    connectSocket(path, SDK_CONNECT).then((s) => {
      sock = s;
      if (cancelled) {
        s.destroy();
        return resolve(undefined);
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
          // the daemon answers `method` with its contract's result
          else resolve(('result' in msg ? msg.result : undefined) as ResultOf<M>);
        }
      });
      s.on('error', () => {});
      s.on('close', () => {
        if (answered) return;
        if (cancelled) resolve(undefined);
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
