// The pilotctl/SDK side of IPC.
import net from 'node:net';
import { PilotError } from '../util/errors.ts';
import { LineReader } from './line-reader.ts';
import { parseMessage, socketPath, type IpcMessage } from './protocol.ts';
import { checkSocketBeforeConnect } from './socket-guard.ts';
import type { EventsOf, Method, ParamsIn, PipeMethod, ResultOf } from './api.ts';

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

/** The events of `M` as (name, data) pairs: checking the name narrows the data. */
export type EventArgs<M extends Method> = { [K in keyof EventsOf<M> & string]: [event: K, data: EventsOf<M>[K]] }[keyof EventsOf<M> & string];
export type EventHandler<M extends Method> = (...args: EventArgs<M>) => void;
/** Events as they come off the wire, before the contract's types are put on them. */
export type AnyEventHandler = (event: string, data: unknown) => void;

/** A method's params, optional when every one of them is (defaults are filled in by the daemon). */
export type ParamsArg<M extends Method> = Record<string, never> extends ParamsIn<M> ? [params?: ParamsIn<M>] : [params: ParamsIn<M>];
export type CallArgs<M extends Method> = [...ParamsArg<M>, onEvent?: EventHandler<M>];

export class IpcClient {
  readonly path: string;
  private sock: net.Socket | undefined;
  private nextId = 1;
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; onEvent?: AnyEventHandler }>();

  private readonly opts: ConnectOptions;

  constructor(path?: string, opts: ConnectOptions = {}) {
    this.path = socketPath(path);
    this.opts = opts;
  }

  /** The connection being made: requests sent at once share it (each making its own left all but one open, and the process alive). */
  private connecting: Promise<net.Socket> | undefined;

  private ensure(): Promise<net.Socket> {
    if (this.sock && !this.sock.destroyed) return Promise.resolve(this.sock);
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connect(): Promise<net.Socket> {
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

  /** One request of the daemon's contract (src/ipc/api.ts); events (if any) go to onEvent before the final result. */
  async call<M extends Method>(method: M, ...[params, onEvent]: CallArgs<M>): Promise<ResultOf<M>> {
    // The daemon answers `M` with ResultOf<M> and EventsOf<M> (the contract both ends are typed by).
    return (await this.request(method, params ?? {}, onEvent as AnyEventHandler | undefined)) as ResultOf<M>;
  }

  /** The transport alone: any method name, the result as it came (see call() for the daemon's methods). */
  async request(method: string, params: object = {}, onEvent?: AnyEventHandler): Promise<unknown> {
    const sock = await this.ensure();
    const id = this.nextId++;
    return new Promise<unknown>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, ...(onEvent ? { onEvent } : {}) });
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
export async function openPipe<M extends PipeMethod>(
  method: M,
  params: ParamsIn<M>,
  path?: string,
  opts: ConnectOptions = {},
): Promise<{ socket: net.Socket; result: ResultOf<M> }> {
  const { socket, result } = await pipeRequest(method, params, path, opts);
  // the daemon answers a pipe method with its contract result before the bytes
  return { socket, result: result as ResultOf<M> };
}

/** openPipe for any method name (the transport alone): the result as it came. */
export async function pipeRequest(method: string, params: object, path?: string, opts: ConnectOptions = {}): Promise<{ socket: net.Socket; result: unknown }> {
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
