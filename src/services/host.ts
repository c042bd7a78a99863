// What the built-in services need from the daemon, as a narrow interface so
// src/services does not depend on the daemon (the daemon adapts itself to it).
import type { Duplex } from 'node:stream';
import type { Logger } from '../util/logger.ts';

/**
 * An overlay stream (a Duplex with half-close). A transport stream also says
 * how far the peer acknowledged what we wrote (stall detection, stall.ts).
 */
export type ServiceStream = Duplex & { readonly bytesAcked?: number; readonly bytesWrittenTotal?: number };

/** `from` is the authenticated, trusted peer address as text (0:0000.0000.0001). */
export type ServiceHandler = (stream: ServiceStream, from: string) => void;

/** Events the services report (to the webhook dispatcher). */
export type ServiceEvent = (event: string, data: Record<string, unknown>) => void;

export interface ServiceHost {
  /** $PILOT_HOME: where inbox, received files, tasks and webhook state live. */
  readonly home: string;
  readonly log: Logger;
  /** Register a stream listener on a virtual port (only trusted peers reach it); returns the remover. */
  listen(port: number, handler: ServiceHandler): () => void;
  /** Receive datagrams on a virtual port (only trusted peers reach it); returns the remover. */
  onDatagram(port: number, handler: (data: Buffer, from: string) => void): () => void;
  /** Open a stream to a trusted peer (address, node id or hostname); throws NOT_TRUSTED otherwise. */
  dial(target: string, port: number): Promise<{ stream: ServiceStream; peer: string }>;
  /** Our own address as text. */
  self(): string;
  /** Report an event (webhooks). */
  event: ServiceEvent;
}
