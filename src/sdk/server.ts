// PilotServer: a listener on one virtual port, shaped like net.Server
// ('listening', 'connection' with a PilotSocket, 'close', close(), address()).
import { EventEmitter } from 'node:events';
import type { IncomingConnection } from '../ipc/api.ts';
import type { Backend, Subscription } from './backend.ts';
import { PilotSocket } from './socket.ts';

export interface PilotServerEvents {
  listening: [];
  connection: [socket: PilotSocket];
  /** A connection announced by the daemon could not be taken over (it expired or reset meanwhile). */
  acceptError: [error: Error];
  /** The listener is gone: close() was called, or the daemon went away (then with the error). */
  close: [error?: Error];
}

export class PilotServer extends EventEmitter<PilotServerEvents> {
  readonly port: number;
  private readonly backend: Backend;
  private readonly localAddress: string;
  private sub: Subscription | undefined;
  private open = false;
  private readonly sockets = new Set<PilotSocket>();

  private constructor(backend: Backend, port: number, localAddress: string) {
    super();
    this.backend = backend;
    this.port = port;
    this.localAddress = localAddress;
  }

  /** Resolves once the daemon routes the port's streams to us (rejects e.g. when the port is taken). */
  static open(backend: Backend, port: number, localAddress: string): Promise<PilotServer> {
    const srv = new PilotServer(backend, port, localAddress);
    return new Promise<PilotServer>((resolve, reject) => {
      const sub = backend.subscribe('sdk_listen', { port }, (event, data) => {
        if (event === 'listening') {
          srv.open = true;
          resolve(srv);
          srv.emit('listening');
        } else if (event === 'connection') void srv.take(data);
      });
      srv.sub = sub;
      sub.done.then(
        () => srv.closed(),
        (err: Error) => {
          if (!srv.open) return reject(err);
          srv.closed(err);
        },
      );
    });
  }

  get listening(): boolean {
    return this.open;
  }

  private async take(c: IncomingConnection): Promise<void> {
    try {
      const { stream, result } = await this.backend.pipe('sdk_accept', { id: c.id });
      const sock = new PilotSocket(
        stream,
        { remoteAddress: c.from, remoteHostname: null, remotePort: c.remotePort, localAddress: this.localAddress, localPort: this.port },
        this.backend.pipeControl(result.pipe),
      );
      this.sockets.add(sock);
      sock.once('close', () => this.sockets.delete(sock));
      this.emit('connection', sock);
    } catch (err) {
      this.emit('acceptError', err as Error);
    }
  }

  private closed(err?: Error): void {
    if (!this.open) return;
    this.open = false;
    if (err) this.emit('close', err);
    else this.emit('close');
  }

  address(): { address: string; port: number; family: string } {
    return { address: this.localAddress, port: this.port, family: 'pilot' };
  }

  /** Connections taken and still open. */
  get connections(): number {
    return this.sockets.size;
  }

  /** Stop accepting (open connections stay, as with net.Server); resolves once the port is free. */
  async close(): Promise<void> {
    this.sub?.cancel();
    await this.sub?.done.catch(() => {});
    this.closed();
  }

  /** close() and reset every open connection. */
  async destroy(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await this.close();
  }
}
