// The pilotctl/SDK side of IPC.
import net from 'node:net';
import { PilotError } from '../util/errors.ts';
import { LineReader } from './line-reader.ts';
import { socketPath, type IpcMessage } from './protocol.ts';

function connectSocket(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(path);
    sock.once('connect', () => {
      sock.off('error', reject);
      resolve(sock);
    });
    sock.once('error', (err: Error & { code?: string }) => {
      reject(new PilotError('NO_DAEMON', `cannot reach the daemon at ${path} (${err.code ?? err.message})`, 'start it with: pilotctl daemon start (or set --socket / PILOT_SOCKET)'));
    });
  });
}

export type EventHandler = (event: string, data: unknown) => void;

export class IpcClient {
  readonly path: string;
  private sock: net.Socket | undefined;
  private nextId = 1;
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; onEvent?: EventHandler }>();

  constructor(path?: string) {
    this.path = socketPath(path);
  }

  private async ensure(): Promise<net.Socket> {
    if (this.sock && !this.sock.destroyed) return this.sock;
    const sock = await connectSocket(this.path);
    const reader = new LineReader();
    sock.on('data', (chunk) => {
      let lines: string[];
      try {
        lines = reader.push(chunk);
      } catch (err) {
        this.failAll(err as Error);
        sock.destroy();
        return;
      }
      for (const line of lines) this.dispatch(line);
    });
    sock.on('close', () => this.failAll(new PilotError('NO_DAEMON', 'the daemon closed the IPC connection', 'check the daemon log')));
    sock.on('error', () => {});
    this.sock = sock;
    return sock;
  }

  private dispatch(line: string): void {
    let msg: IpcMessage;
    try {
      msg = JSON.parse(line) as IpcMessage;
    } catch {
      return;
    }
    const p = this.pending.get(Number(msg.id));
    if (!p) return;
    if ('event' in msg) {
      p.onEvent?.(msg.event, msg.data);
      return;
    }
    this.pending.delete(Number(msg.id));
    if (msg.ok) p.resolve(msg.result);
    else p.reject(new PilotError(msg.error.code, msg.error.message, msg.error.hint));
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  /** One request; events (if any) go to onEvent before the final result. */
  async call<T = unknown>(method: string, params: Record<string, unknown> = {}, onEvent?: EventHandler): Promise<T> {
    const sock = await this.ensure();
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, ...(onEvent ? { onEvent } : {}) });
      sock.write(JSON.stringify({ id, method, params }) + '\n');
    });
  }

  close(): void {
    this.sock?.end();
    this.sock = undefined;
  }
}

/**
 * Open a dedicated connection, send one request (dial/accept) and, once it
 * succeeds, hand back the unix socket as a raw byte pipe to the overlay stream.
 */
export async function openPipe(method: string, params: Record<string, unknown>, path?: string): Promise<{ socket: net.Socket; result: unknown }> {
  const sock = await connectSocket(socketPath(path));
  const reader = new LineReader();
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      let first: string | undefined;
      try {
        first = reader.shiftLine(chunk);
      } catch (err) {
        sock.destroy();
        reject(err as Error);
        return;
      }
      if (first === undefined) return;
      sock.off('data', onData);
      sock.off('close', onClose);
      sock.pause();
      let msg: IpcMessage;
      try {
        msg = JSON.parse(first) as IpcMessage;
      } catch {
        sock.destroy();
        reject(new PilotError('INTERNAL', 'malformed reply from the daemon'));
        return;
      }
      if ('event' in msg || !msg.ok) {
        sock.destroy();
        reject('event' in msg ? new PilotError('INTERNAL', 'unexpected event before pipe') : new PilotError(msg.error.code, msg.error.message, msg.error.hint));
        return;
      }
      // Bytes that followed the reply line already belong to the stream.
      const rest = reader.takeRest();
      if (rest.length > 0) sock.unshift(rest);
      resolve({ socket: sock, result: msg.result });
    };
    const onClose = (): void => reject(new PilotError('NO_DAEMON', 'the daemon closed the connection', 'check the daemon log'));
    sock.on('data', onData);
    sock.on('close', onClose);
    sock.write(JSON.stringify({ id: 1, method, params }) + '\n');
  });
}
