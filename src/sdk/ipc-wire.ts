// The two kinds of dedicated IPC connections the SDK opens besides its request
// connection: a byte pipe (sdk_dial / sdk_accept) kept half-open so either side
// can end its direction alone, and a subscription (listen, recv, events) that a
// cancel ends by closing the connection (the daemon stops the handler then).
import net from 'node:net';
import { PilotError } from '../util/errors.ts';
import { LineReader } from '../ipc/line-reader.ts';
import type { IpcMessage } from '../ipc/protocol.ts';
import type { EventCallback, Subscription } from './backend.ts';

function connectUnix(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    // allowHalfOpen: the daemon ending its side (the peer's FIN) must not end ours.
    const sock = net.connect({ path, allowHalfOpen: true });
    const onError = (err: Error & { code?: string }): void =>
      reject(new PilotError('NO_DAEMON', `cannot reach the daemon at ${path} (${err.code ?? err.message})`, 'start it with: pilotctl daemon start (or pass connect({ socket }) / set PILOT_SOCKET)'));
    sock.once('error', onError);
    sock.once('connect', () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}

function errorOf(msg: IpcMessage): PilotError | undefined {
  if ('event' in msg || msg.ok) return undefined;
  return new PilotError(msg.error.code, msg.error.message, msg.error.hint);
}

function resultOf(msg: IpcMessage): unknown {
  return 'result' in msg ? msg.result : undefined;
}

/** Send one request; once it succeeds the connection is a raw byte pipe (returned paused). */
export async function openPipe(path: string, method: string, params: Record<string, unknown>): Promise<{ socket: net.Socket; result: Record<string, unknown> }> {
  const sock = await connectUnix(path);
  const reader = new LineReader();
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => {
      sock.destroy();
      reject(err);
    };
    const onClose = (): void => reject(new PilotError('NO_DAEMON', 'the daemon closed the connection before answering', 'check the daemon log'));
    const onData = (chunk: Buffer): void => {
      let first: string | undefined;
      try {
        first = reader.shiftLine(chunk);
      } catch (err) {
        return fail(err as Error);
      }
      if (first === undefined) return;
      sock.off('data', onData);
      sock.off('close', onClose);
      sock.pause();
      let msg: IpcMessage;
      try {
        msg = JSON.parse(first) as IpcMessage;
      } catch {
        return fail(new PilotError('INTERNAL', 'malformed reply from the daemon'));
      }
      const err = errorOf(msg);
      if (err) return fail(err);
      if ('event' in msg) return fail(new PilotError('INTERNAL', 'unexpected event before the pipe'));
      // Bytes after the reply line already belong to the stream.
      const rest = reader.takeRest();
      if (rest.length > 0) sock.unshift(rest);
      resolve({ socket: sock, result: (resultOf(msg) ?? {}) as Record<string, unknown> });
    };
    sock.on('data', onData);
    sock.on('close', onClose);
    sock.on('error', () => {}); // 'close' follows and says it
    sock.write(JSON.stringify({ id: 1, method, params }) + '\n');
  });
}

/** A long-running request on its own connection: events until the final answer or cancel(). */
export function subscribe<T>(path: string, method: string, params: Record<string, unknown>, onEvent: EventCallback): Subscription<T> {
  let sock: net.Socket | undefined;
  let cancelled = false;
  const done = new Promise<T>((resolve, reject) => {
    connectUnix(path).then((s) => {
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
          let msg: IpcMessage;
          try {
            msg = JSON.parse(line) as IpcMessage;
          } catch {
            continue;
          }
          if ('event' in msg) {
            if (!cancelled) onEvent(msg.event, msg.data);
            continue;
          }
          answered = true;
          s.destroy();
          const err = errorOf(msg);
          if (err) reject(err);
          else resolve(resultOf(msg) as T);
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
