// One connection attempt to the rendezvous over TCP (framed or WebSocket).
// TcpUplink opens a new one for every (re)connect; a Conn never reconnects itself.
import type { PilotError } from '../util/errors.ts';

export interface ConnOptions {
  host: string;
  port: number;
  connectTimeoutMs: number;
  /** Largest packet either way (the server's max frame). */
  maxPacket: number;
  /** Unsent bytes beyond which send() drops. */
  maxBacklog: number;
  /** TCP keepalive / WebSocket ping interval. */
  keepaliveMs: number;
}

export interface ConnHandlers {
  onOpen(): void;
  onPacket(pkt: Buffer): void;
  /** Something the rendezvous should never send (counted; fatal ones also close the Conn). */
  onGarbage(what: string): void;
  /** Called exactly once, whether or not the Conn ever opened; `cause` = a coded reason (proxy refused, certificate not trusted, timeout). */
  onClose(reason: string, cause?: PilotError): void;
}

export interface Conn {
  /** false = dropped: not open yet, closing, or congested. */
  send(pkt: Buffer): boolean;
  destroy(reason: string): void;
}
