// The pilotctl/SDK side of IPC.
import net from 'node:net';
import { PilotError } from '../util/errors.ts';
import { LineReader } from './line-reader.ts';
import { parseMessage, socketPath, type IpcMessage } from './protocol.ts';
import { checkSocketBeforeConnect } from './socket-guard.ts';

export interface ConnectOptions {
  /** Keep our direction open when the daemon ends its own (byte pipes whose two directions end separately). */
  allowHalfOpen?: boolean;
  /** What NO_DAEMON tells the user to do (the CLI and the SDK set the socket differently). */
  hint?: string;
}

export function connectSocket(path: string, opts: ConnectOptions = {}): Promise<net.Socket> {
  try {
    checkSocketBeforeConnect(path);
  } catch (err) {
    return Promise.reject(err);
  }
  return new Promise((resolve, reject) => {
    const sock = net.connect({ path, allowHalfOpen: opts.allowHalfOpen ?? false });
    const onError = (err: Error & { code?: string }): void =>
      reject(
        new PilotError(
          'NO_DAEMON',
          `cannot reach the daemon at ${path} (${err.code ?? err.message})`,
          opts.hint ?? 'start it with: pilotctl daemon start (or set --socket / PILOT_SOCKET)',
        ),
      );
    sock.once('error', onError);
    sock.once('connect', () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}

/** The error a final reply carries; undefined for a success or an event. */
export function replyError(msg: IpcMessage): PilotError | undefined {
  if ('event' in msg || msg.ok) return undefined;
  return new PilotError(msg.error.code, msg.error.message, msg.error.hint);
}

export type EventHandler = (event: string, data: unknown) => void;

export class IpcClient {
  readonly path: string;
  private sock: net.Socket | undefined;
  private nextId = 1;
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; onEvent?: EventHandler }>();

  private readonly opts: ConnectOptions;

  constructor(path?: string, opts: ConnectOptions = {}) {
    this.path = socketPath(path);
    this.opts = opts;
  }

  private async ensure(): Promise<net.Socket> {
    if (this.sock && !this.sock.destroyed) return this.sock;
    const sock = await connectSocket(this.path, this.opts);
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
    const msg = parseMessage(line);
    if (!msg) return;
    const p = this.pending.get(Number(msg.id));
    if (!p) return;
    if ('event' in msg) {
      p.onEvent?.(msg.event, msg.data);
      return;
    }
    this.pending.delete(Number(msg.id));
    const err = replyError(msg);
    if (err) p.reject(err);
    else p.resolve('result' in msg ? msg.result : undefined);
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
 * succeeds, hand back the unix socket as a raw byte pipe to the overlay stream
 * (paused, so no byte is lost before the caller reads).
 */
export async function openPipe(
  method: string,
  params: Record<string, unknown>,
  path?: string,
  opts: ConnectOptions = {},
): Promise<{ socket: net.Socket; result: unknown }> {
  const sock = await connectSocket(socketPath(path), opts);
  const reader = new LineReader();
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => {
      sock.destroy();
      reject(err);
    };
    const onError = (): void => {}; // 'close' follows and says it
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
      sock.off('error', onError);
      sock.pause();
      const msg = parseMessage(first);
      if (!msg) return fail(new PilotError('INTERNAL', 'malformed reply from the daemon'));
      if ('event' in msg) return fail(new PilotError('INTERNAL', 'unexpected event before the pipe'));
      const err = replyError(msg);
      if (err) return fail(err);
      // Bytes that followed the reply line already belong to the stream.
      const rest = reader.takeRest();
      if (rest.length > 0) sock.unshift(rest);
      resolve({ socket: sock, result: 'result' in msg ? msg.result : undefined });
    };
    sock.on('data', onData);
    sock.on('close', onClose);
    sock.on('error', onError);
    sock.write(JSON.stringify({ id: 1, method, params }) + '\n');
  });
}
