// IPC methods for the TypeScript SDK (src/sdk). Merged into ipcHandlers, so the
// daemon process and an SDK-embedded node serve them alike.
// - sdk_dial waits until the peer took the stream (or refused it), like a TCP connect.
// - sdk_dial / sdk_accept pipes remember why their stream failed: a raw byte
//   pipe can only close, so the SDK asks sdk_pipe_error afterwards for the code,
//   and resets a stream with sdk_reset (closing the pipe would end it cleanly).
// - sdk_listen / sdk_recv are listen / recv that say when they are ready and
//   stop on sdk_cancel; events streams peer up/down, path changes and trust pushes.
import crypto from 'node:crypto';
import { Duplex } from 'node:stream';
import { formatAddress, addressKey, type Address } from '../wire/address.ts';
import { PilotError, asPilotError, type ErrorCode } from '../util/errors.ts';
import { PipeResult, type HandlerContext, type Handlers } from '../ipc/server.ts';
import type { IpcErrorJson, NodeEvents } from '../ipc/api.ts';
import type { Daemon, Peer } from './daemon.ts';
import type { IncomingStream } from './ports.ts';
import { park } from './accept-queue.ts';

/** How long a failed pipe's error can be asked for. */
const PIPE_ERROR_TTL_MS = 60_000;
const MAX_PIPE_ERRORS = 10_000;
/** Subscriptions send a heartbeat event this often (see hold()). */
const HEARTBEAT_MS = 1000;
/** A connection announced to a listener and not accepted within this time is reset. */

/**
 * Resolve once the peer acknowledged the stream's opening frame and did not
 * reset it. The refusal travels in the same packet as the ack, or before it:
 * 'open-acked' fires while that packet is being processed, so the verdict waits
 * for setImmediate, when a reset's error (emitted on nextTick) has landed.
 */
export function whenOpened(stream: Duplex, timeoutMs: number): Promise<void> {
  const s = stream as Duplex & { openAcked?: boolean };
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      s.off('open-acked', onAcked);
      s.off('error', onError);
      s.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onAcked = (): void =>
      void setImmediate(() => {
        if (!s.destroyed) finish(); // destroyed: its error or close settles it
      });
    const onError = (err: Error): void => finish(asPilotError(err));
    // closed without an error: the peer's open was answered with an orderly stop
    const onClose = (): void => void setImmediate(() => finish(new PilotError('CONNECTION_RESET', 'the stream closed while opening')));
    s.on('error', onError);
    s.on('close', onClose);
    const deadline = setTimeout(() => {
      const err = new PilotError(
        'TIMEOUT',
        `the peer did not answer the stream opening within ${timeoutMs} ms`,
        'is the peer online? see: pilotctl peers / pilotctl ping',
      );
      finish(err);
      // The opener hears `err` through the promise; the stream's own 'error' (emitted on the next
      // tick, after finish took our listener off) must not be unhandled: that would throw and take
      // the whole process down (an app with embedded nodes, with one slow peer).
      s.on('error', () => {});
      s.destroy(err);
    }, timeoutMs);
    if (s.openAcked !== false)
      onAcked(); // already acked (or a stream without an opening handshake)
    else s.on('open-acked', onAcked);
  });
}

/** One of the `events` subscription's events, its name paired with its data. */
export type SdkEvent = { [K in keyof NodeEvents]: { event: K; data: NodeEvents[K] } }[keyof NodeEvents];

/** Turns the daemon's hooks into SDK events, and tracks which peers are up. */
class EventHub {
  private readonly subs = new Set<(e: SdkEvent) => void>();
  private readonly up = new Map<number, string>();
  private readonly d: Daemon;

  constructor(d: Daemon) {
    this.d = d;
    d.on('peer-session', (a: Address) => {
      if (this.up.has(addressKey(a))) return; // a rekey, not news
      this.up.set(addressKey(a), formatAddress(a));
      this.fire({ event: 'peer-up', data: { address: formatAddress(a), hostname: this.hostname(a) } });
    });
    d.on('peer-lost', (a: Address, reason: string) => {
      if (!this.up.delete(addressKey(a))) return;
      this.fire({ event: 'peer-down', data: { address: formatAddress(a), hostname: this.hostname(a), reason } });
    });
    d.on('peer-path', (peer: Peer, reason: string) => {
      this.fire({ event: 'path', data: { address: formatAddress(peer.address), hostname: peer.hostname ?? null, ...d.pathInfo(peer), reason } });
    });
    d.on('push', (push: { event: string; data: Record<string, unknown> }) => {
      const names: Record<string, SdkEvent['event']> = {
        trust_request: 'trust-request',
        trust_approved: 'trust-approved',
        trust_rejected: 'trust-rejected',
        trust_revoked: 'trust-revoked',
      };
      const name = names[push.event];
      // Forwarded as the rendezvous sent it (a signed push); its fields are the ones NodeEvents names.
      if (name) this.fire({ event: name, data: { ...(push.data ?? {}) } } as SdkEvent);
    });
  }

  private hostname(a: Address): string | null {
    return this.d.listPeers().find((p) => addressKey(p.address) === addressKey(a))?.hostname ?? null;
  }

  private fire(e: SdkEvent): void {
    for (const s of this.subs) {
      try {
        s(e);
      } catch {
        // a broken subscriber must not disturb the daemon's event sources
      }
    }
  }

  subscribe(fn: (e: SdkEvent) => void): () => void {
    this.subs.add(fn);
    return () => this.subs.delete(fn);
  }

  peersUp(): string[] {
    return [...this.up.values()];
  }
}

const hubs = new WeakMap<Daemon, EventHub>();
function hubOf(d: Daemon): EventHub {
  let h = hubs.get(d);
  if (!h) hubs.set(d, (h = new EventHub(d)));
  return h;
}

/** The SDK's methods; `pendingAccepts` is the accept queue shared with the `listen`/`accept` methods. */
type SdkMethod = 'sdk_dial' | 'sdk_accept' | 'sdk_pipe_error' | 'sdk_reset' | 'sdk_cancel' | 'sdk_listen' | 'sdk_recv' | 'events';

export function sdkHandlers(d: Daemon, pendingAccepts: Map<string, IncomingStream>): Pick<Handlers, SdkMethod> {
  const hub = hubOf(d);
  const pipeErrors = new Map<string, IpcErrorJson>();

  /** Pipes handed out and not closed yet, for sdk_reset. */
  const livePipes = new Map<string, Duplex>();
  const record = (id: string, err: unknown): void => {
    if (pipeErrors.size >= MAX_PIPE_ERRORS) pipeErrors.clear();
    pipeErrors.set(id, asPilotError(err).toJSON());
    setTimeout(() => pipeErrors.delete(id), PIPE_ERROR_TTL_MS).unref();
  };

  /**
   * Hand `stream` out as a pipe whose failure reason stays retrievable under `id`.
   * Once the IPC server splices it to a unix socket (stream.pipe(sock)), a stream
   * error is kept for sdk_pipe_error and the socket is closed: the IPC server's
   * own answer, socket.resetAndDestroy(), throws for unix sockets. In-process
   * (embedded SDK) nothing is spliced and the error is emitted as usual.
   */
  const trackedPipe = <R extends object>(id: string, stream: Duplex, result: R): PipeResult<{ pipe: string } & R> => {
    livePipes.set(id, stream);
    stream.once('close', () => livePipes.delete(id));
    stream.on('error', () => {}); // its consumer (IPC splice or PilotSocket) has its own listener; never crash on a gap
    const pipeTo = stream.pipe.bind(stream);
    stream.pipe = (<T extends NodeJS.WritableStream>(sock: T, opts?: { end?: boolean }): T => {
      const emit = stream.emit.bind(stream);
      stream.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
        if (event !== 'error') return emit(event, ...args);
        record(id, args[0]);
        if (sock instanceof Duplex) sock.destroy(); // the IPC server splices into a net.Socket
        return true;
      }) as typeof stream.emit;
      return pipeTo(sock, opts);
    }) as typeof stream.pipe;
    return new PipeResult({ pipe: id, ...result }, stream);
  };

  /**
   * Keep a subscription (listen, recv, events) running until the client cancels
   * it with the token its first event carries (`announce` sends that event), or leaves. The IPC server notices
   * a client that left only when a write fails (it keeps half-open connections),
   * so a heartbeat event every second makes sure it does.
   */
  const cancels = new Map<string, () => void>();
  const hold = (ctx: HandlerContext<{ alive: null }>, announce: (cancel: string) => void): Promise<void> =>
    new Promise<void>((resolve) => {
      const token = crypto.randomBytes(8).toString('hex');
      const finish = (): void => {
        clearInterval(beat);
        cancels.delete(token);
        resolve();
      };
      cancels.set(token, finish);
      const beat = setInterval(() => ctx.emit('alive', null), HEARTBEAT_MS);
      beat.unref();
      void ctx.closed.then(finish);
      announce(token);
    });

  return {
    sdk_dial: async (p) => {
      const port = p.port;
      const peer = await d.peerFor(p.target);
      const stream = await d.dial(peer.address, port);
      await whenOpened(stream, p.timeoutMs);
      return trackedPipe(crypto.randomBytes(8).toString('hex'), stream, {
        remoteAddress: formatAddress(peer.address),
        remoteHostname: peer.hostname ?? null,
        remotePort: port,
        localPort: stream.localPort,
      });
    },

    sdk_accept: (p) => {
      const id = p.id;
      const stream = pendingAccepts.get(id);
      if (!stream) throw new PilotError('NOT_FOUND', `no pending connection ${id}`, 'accept ids come from a listen connection event and expire after 30 s');
      pendingAccepts.delete(id);
      return trackedPipe(id, stream, { localPort: stream.localPort, remotePort: stream.remotePort });
    },

    sdk_pipe_error: (p) => pipeErrors.get(p.pipe) ?? null,

    // The SDK closing its end of a pipe looks like end() to the IPC server: an
    // application's destroy(err) resets the stream here first, with err's code.
    sdk_reset: (p) => {
      const stream = livePipes.get(p.pipe);
      const code = typeof p.code === 'string' && /^[A-Z_]{1,40}$/.test(p.code) ? (p.code as ErrorCode) : 'CONNECTION_RESET';
      const message = typeof p.message === 'string' ? p.message.slice(0, 300) : 'stream reset by the application';
      if (stream && !stream.destroyed) stream.destroy(new PilotError(code, message));
      return { reset: stream !== undefined };
    },

    sdk_cancel: (p) => {
      const stop = cancels.get(p.token);
      stop?.();
      return { cancelled: stop !== undefined };
    },

    // like listen, but stoppable with sdk_cancel: close() knows the port is free again
    sdk_listen: async (p, ctx) => {
      const port = p.port;
      const off = d.ports.listen(port, (stream: IncomingStream, from: Address) => {
        const id = park(pendingAccepts, stream);
        ctx.emit('connection', { id, from: formatAddress(from), remotePort: stream.remotePort, port });
      });
      try {
        await hold(ctx, (cancel) => ctx.emit('listening', { port, cancel }));
      } finally {
        off();
      }
      return { port };
    },

    // like recv, but says when it is listening, and runs until cancelled
    sdk_recv: async (p, ctx) => {
      const port = p.port;
      const off = d.ports.onDatagram(port, (dg) =>
        ctx.emit('datagram', { from: formatAddress(dg.from), srcPort: dg.srcPort, dataBase64: dg.data.toString('base64') }),
      );
      try {
        await hold(ctx, (cancel) => ctx.emit('listening', { port, cancel }));
      } finally {
        off();
      }
      return { port };
    },

    events: async (_p, ctx) => {
      const off = hub.subscribe((e) => ctx.emit(e.event, e.data));
      try {
        await hold(ctx, (cancel) => ctx.emit('subscribed', { peersUp: hub.peersUp(), cancel }));
      } finally {
        off();
      }
      return null;
    },
  };
}
