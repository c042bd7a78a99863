// Virtual port table of one daemon: who gets incoming streams and datagrams.
import type { Duplex } from 'node:stream';
import type { Address } from '../wire/address.ts';
import { PilotError } from '../util/errors.ts';

export interface IncomingStream extends Duplex {
  readonly localPort: number;
  readonly remotePort: number;
}

export interface DatagramIn {
  from: Address;
  srcPort: number;
  dstPort: number;
  data: Buffer;
}

export type StreamHandler = (stream: IncomingStream, from: Address) => void;
export type DatagramHandler = (dg: DatagramIn) => void;

export class PortTable {
  private streams = new Map<number, StreamHandler>();
  private datagrams = new Map<number, Set<DatagramHandler>>();
  private nextEphemeral = 49152;

  listen(port: number, handler: StreamHandler): () => void {
    if (this.streams.has(port))
      throw new PilotError('BAD_ARGUMENT', `virtual port ${port} already has a listener`, 'pick another port or stop the other listener');
    this.streams.set(port, handler);
    return () => {
      if (this.streams.get(port) === handler) this.streams.delete(port);
    };
  }

  streamHandler(port: number): StreamHandler | undefined {
    return this.streams.get(port);
  }

  onDatagram(port: number, handler: DatagramHandler): () => void {
    let set = this.datagrams.get(port);
    if (!set) this.datagrams.set(port, (set = new Set()));
    set.add(handler);
    return () => {
      set.delete(handler);
      if (set.size === 0 && this.datagrams.get(port) === set) this.datagrams.delete(port);
    };
  }

  /** Returns false when nobody listens on the port (the datagram is dropped). */
  deliverDatagram(dg: DatagramIn): boolean {
    const set = this.datagrams.get(dg.dstPort);
    if (!set || set.size === 0) return false;
    for (const h of set) h(dg);
    return true;
  }

  /** A free port from the dynamic range for outgoing requests (ping replies etc.). */
  ephemeral(): number {
    for (let i = 0; i < 16384; i++) {
      const p = this.nextEphemeral;
      this.nextEphemeral = p >= 65535 ? 49152 : p + 1;
      if (!this.datagrams.has(p) && !this.streams.has(p)) return p;
    }
    throw new PilotError('INTERNAL', 'no free ephemeral virtual port');
  }
}
