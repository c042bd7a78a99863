// Datagrams on a virtual port, shaped like dgram.Socket: 'message' (data, info)
// for each datagram that arrives, send() with this port as the source so the
// peer's replies come back here. Unreliable and unordered; one packet each:
// about 1180 bytes (up to 16 KiB between peers on one host), larger sends fail
// with BAD_ARGUMENT.
import { EventEmitter } from 'node:events';
import type { Backend, Subscription } from './backend.ts';

export interface DatagramInfo {
  /** Sender's virtual address. */
  address: string;
  /** Sender's virtual (source) port. */
  port: number;
  size: number;
}

export interface PilotDatagramEvents {
  listening: [];
  message: [data: Buffer, info: DatagramInfo];
  close: [error?: Error];
}

export class PilotDatagramSocket extends EventEmitter<PilotDatagramEvents> {
  readonly port: number;
  private readonly backend: Backend;
  private sub: Subscription | undefined;
  private open = false;

  private constructor(backend: Backend, port: number) {
    super();
    this.backend = backend;
    this.port = port;
  }

  static override bind(backend: Backend, port: number): Promise<PilotDatagramSocket> {
    const s = new PilotDatagramSocket(backend, port);
    return new Promise((resolve, reject) => {
      const sub = backend.subscribe('sdk_recv', { port }, (event, data) => {
        if (event === 'listening') {
          s.open = true;
          resolve(s);
          s.emit('listening');
        } else if (event === 'datagram') {
          const d = data;
          const buf = Buffer.from(d.dataBase64, 'base64');
          s.emit('message', buf, { address: d.from, port: d.srcPort, size: buf.length });
        }
      });
      s.sub = sub;
      sub.done.then(
        () => s.closed(),
        (err: Error) => {
          if (!s.open) return reject(err);
          s.closed(err);
        },
      );
    });
  }

  /** Send one datagram from this port to `target`:`port`. */
  async send(target: string, port: number, data: Buffer | string): Promise<void> {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    await this.backend.call('send', { target, port, data: buf.toString('base64'), encoding: 'base64', srcPort: this.port });
  }

  private closed(err?: Error): void {
    if (!this.open) return;
    this.open = false;
    if (err) this.emit('close', err);
    else this.emit('close');
  }

  async close(): Promise<void> {
    this.sub?.cancel();
    await this.sub?.done.catch(() => {});
    this.closed();
  }
}
