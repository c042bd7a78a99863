// The daemon side of IPC. Handlers are plain async functions, one per method of
// the contract (api.ts), typed by it: params arrive checked (invoke() below is
// the one place that checks them), and a handler returning a wrong shape is a
// type error. A handler may stream events, or take over the connection as a raw
// byte pipe (dial/accept).
import net from 'node:net';
import fs from 'node:fs';
import type { Duplex } from 'node:stream';
import * as v from 'valibot';
import { PilotError, asPilotError } from '../util/errors.ts';
import { LineReader } from './line-reader.ts';
import { prepareListenPath } from './socket-guard.ts';
import type { IpcMessage, IpcRequest } from './protocol.ts';
import { PARAMS, isMethod, type EventsOf, type Method, type ParamsOf, type PipeMethod, type ResultOf } from './api.ts';
import { paramsError } from './api-fields.ts';

export interface HandlerContext<E = Record<string, unknown>> {
  /** Send an event line tied to the current request. */
  emit<K extends keyof E & string>(event: K, data: E[K]): void;
  /** Resolves when the client goes away (so long-running handlers can stop). */
  readonly closed: Promise<void>;
  readonly isClosed: () => boolean;
}

/** Returned by a handler that turns the connection into a byte pipe to `pipe`. */
export class PipeResult<R = unknown> {
  readonly result: R;
  readonly pipe: Duplex;
  constructor(result: R, pipe: Duplex) {
    this.result = result;
    this.pipe = pipe;
  }
}

/** What the handler of `M` answers: its result, or for a pipe method the result and the pipe. */
export type Reply<M extends Method> = M extends PipeMethod ? PipeResult<ResultOf<M>> : ResultOf<M>;

export type Handler<M extends Method> = (params: ParamsOf<M>, ctx: HandlerContext<EventsOf<M>>) => Reply<M> | Promise<Reply<M>>;

/** One handler per method of the contract. */
export type Handlers = { [M in Method]: Handler<M> };

/**
 * Run `method` with `raw` params: the one place that refuses an unknown method
 * (BAD_REQUEST) and checks params against the method's schema (BAD_ARGUMENT
 * naming the parameter). The IPC server and the SDK's embedded node both call it.
 */
export async function invoke(handlers: Handlers, method: string, raw: unknown, ctx: HandlerContext): Promise<unknown> {
  if (!isMethod(method)) throw new PilotError('BAD_REQUEST', `unknown method ${JSON.stringify(method)}`, 'see: pilotctl context');
  const parsed = v.safeParse(PARAMS[method], raw ?? {});
  if (!parsed.success) throw paramsError(parsed.issues);
  // The table pairs each method with its handler and schema; indexing both by a
  // method union loses that pairing, so the call goes through the widest type.
  const handler = handlers[method] as (params: unknown, ctx: HandlerContext) => unknown;
  return handler(parsed.output, ctx);
}

export interface IpcServer {
  readonly path: string;
  close(): Promise<void>;
}

/** The daemon's IPC server: every request goes through invoke() (contract check, then the method's handler). */
export function startIpcServer(path: string, handlers: Handlers, onError?: (err: unknown) => void): Promise<IpcServer> {
  return serveIpc(path, (method, params, ctx) => invoke(handlers, method, params, ctx), onError);
}

/** Runs one request (method name and params as they arrived); throws a PilotError to refuse it. */
export type Dispatch = (method: string, params: Record<string, unknown> | undefined, ctx: HandlerContext) => unknown;

/**
 * The transport alone: NDJSON requests on an owner-only unix socket, events,
 * replies, byte pipes. Every request goes to `dispatch` (startIpcServer's is the
 * contract's; tests of the transport pass their own).
 */
export async function serveIpc(path: string, dispatch: Dispatch, onError?: (err: unknown) => void): Promise<IpcServer> {
  // A stale socket from a crashed daemon would block listen(); a live one means a daemon is running.
  // Only a socket of our own is probed or removed (prepareListenPath refuses symlinks, files, others' sockets).
  if (prepareListenPath(path).existing) {
    const alive = await new Promise<boolean>((resolve) => {
      const c = net.connect(path, () => {
        c.destroy();
        resolve(true);
      });
      c.on('error', () => resolve(false));
    });
    if (alive) throw new PilotError('DAEMON_RUNNING', `a daemon already listens on ${path}`, 'stop it with: pilotctl daemon stop');
    fs.rmSync(path, { force: true });
  }
  const sockets = new Set<net.Socket>();
  // Half-open: a client that ends its side of a byte pipe (dial/accept) must
  // still get everything the remote sends back; request connections are ended
  // by serveConnection once their answers are out.
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    serveConnection(sock, dispatch, onError);
  });
  // Owner-only from the first instant: umask covers the window between bind and chmod.
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  } finally {
    process.umask(oldMask);
  }
  fs.chmodSync(path, 0o600);
  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
        fs.rmSync(path, { force: true });
      }),
  };
}

function serveConnection(sock: net.Socket, dispatch: Dispatch, onError?: (err: unknown) => void): void {
  const reader = new LineReader();
  let closed = false; // nothing more can be written
  let gone = false; // the client will send nothing more: long-running handlers (recv, listen) stop
  let piped = false; // set once the connection has become a raw stream pipe
  let resolveGone!: () => void;
  const goneP = new Promise<void>((r) => (resolveGone = r));
  const markGone = (): void => {
    if (!gone) {
      gone = true;
      resolveGone();
    }
  };
  const markClosed = (): void => {
    closed = true;
    markGone();
  };
  sock.on('close', markClosed);
  sock.on('error', markClosed);
  // The client ended its side: answer what is in flight, then end ours (a pipe ends on its own terms).
  let inFlight = 0;
  let clientEnded = false;
  const maybeEnd = (): void => {
    if (clientEnded && !piped && inFlight === 0 && !sock.writableEnded) sock.end();
  };
  sock.on('end', () => {
    clientEnded = true;
    // A request connection whose client ended is over once its answers are out;
    // handlers still running are told, so they finish and answer now.
    if (!piped) markGone();
    maybeEnd();
  });
  const write = (m: IpcMessage): void => {
    if (!closed && sock.writable) sock.write(JSON.stringify(m) + '\n');
  };
  const onData = (chunk: Buffer): void => {
    if (piped) return;
    let lines: string[];
    try {
      lines = reader.push(chunk);
    } catch (err) {
      write({ id: 0, ok: false, error: asPilotError(err).toJSON() });
      sock.end();
      return;
    }
    for (const line of lines) handleLine(line);
  };
  const handleLine = (line: string): void => {
    let req: IpcRequest;
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed !== 'object' || parsed === null || typeof (parsed as IpcRequest).method !== 'string') {
        throw new Error('not a request');
      }
      req = parsed as IpcRequest;
      if (typeof req.id !== 'number' && typeof req.id !== 'string') req.id = 0;
      if (req.params !== undefined && (typeof req.params !== 'object' || req.params === null || Array.isArray(req.params))) {
        throw new Error('params must be an object');
      }
    } catch (err) {
      write({
        id: 0,
        ok: false,
        error: new PilotError(
          'BAD_REQUEST',
          `malformed IPC request: ${(err as Error).message}`,
          'send one JSON object per line: {"id":1,"method":"info","params":{}}',
        ).toJSON(),
      });
      return;
    }
    const ctx: HandlerContext = {
      emit: (event, data) => write({ id: req.id, event, data }),
      closed: goneP,
      isClosed: () => gone,
    };
    inFlight++;
    Promise.resolve()
      .then(() => dispatch(req.method, req.params, ctx))
      .then((result) => {
        if (result instanceof PipeResult) {
          piped = true;
          write({ id: req.id, ok: true, result: result.result });
          becomePipe(sock, reader, result.pipe, onData);
        } else {
          write({ id: req.id, ok: true, result: result ?? null });
        }
      })
      .catch((err: unknown) => {
        const e = asPilotError(err);
        if (e.code === 'INTERNAL') onError?.(err);
        write({ id: req.id, ok: false, error: e.toJSON() });
      })
      .finally(() => {
        inFlight--;
        maybeEnd();
      });
  };
  sock.on('data', onData);
}

/** Splice the unix socket and an overlay stream together, both directions, with half-close. */
function becomePipe(sock: net.Socket, reader: LineReader, pipe: Duplex, onData: (c: Buffer) => void): void {
  sock.off('data', onData);
  const rest = reader.takeRest();
  if (rest.length > 0) pipe.write(rest);
  // The client may have sent its request and ended at once (`… | nc -U`): pipe() would never see that end.
  if (sock.readableEnded) pipe.end();
  else sock.pipe(pipe);
  pipe.pipe(sock);
  const kill = (): void => {
    if (!pipe.destroyed) pipe.destroy();
    if (!sock.destroyed) sock.destroy();
  };
  pipe.on('error', (err: Error & { code?: string }) => {
    // Tell the client why, out of band is impossible in a raw pipe, so we
    // simply reset: the client sees the socket close without a clean end.
    void err;
    // resetAndDestroy() is TCP-only (it throws on unix sockets): destroy without a clean end.
    if (!sock.destroyed) sock.destroy();
  });
  sock.on('error', kill);
  pipe.on('close', () => {
    if (!sock.destroyed && !sock.writableEnded) sock.end();
  });
}
