// Join a TCP socket and an overlay stream, both directions. pipe() gives the
// backpressure (a slow reader pauses the other side's source) and carries each
// direction's end on its own (half-close: FIN maps to FIN). An abort on either
// side aborts the other: a TCP RST becomes a stream reset and a stream reset
// (refused, not trusted, peer gone) becomes a TCP RST, never a clean end that
// would pass a truncated response off as complete.
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { PilotError } from '../util/errors.ts';

export function splice(sock: net.Socket, stream: Duplex): void {
  batchWrites(stream, sock);
  sock.pipe(stream);
  stream.pipe(sock);
  sock.on('error', (err: NodeJS.ErrnoException) => {
    if (!stream.destroyed) stream.destroy(new PilotError('CONNECTION_RESET', `local TCP connection failed: ${err.code ?? err.message}`));
  });
  stream.on('error', () => {
    if (!sock.destroyed) sock.resetAndDestroy();
  });
  sock.on('close', () => {
    // A clean TCP close comes after both ends; if the stream still had bytes
    // to deliver to the socket, the socket was torn down under it: reset.
    if (!stream.destroyed && !stream.readableEnded) stream.destroy(new PilotError('CONNECTION_RESET', 'local TCP connection closed'));
  });
  stream.on('close', () => {
    if (!sock.destroyed && !stream.readableEnded) sock.resetAndDestroy();
  });
}

/**
 * The overlay stream delivers one chunk per packet (about a kilobyte); written one by one,
 * each is a write() system call of its own. The first chunk of an event-loop turn is written at
 * once: a request or a reply (one packet) must not wait for the turn to end, as a QUIC stack
 * sends the first packet of a burst at once. The chunks after it in the same turn are corked
 * until the turn's I/O is done (setImmediate) and go out in one writev. Registered before
 * pipe(), so the cork comes before pipe's write; backpressure stays pipe's (write() still
 * answers false past the socket's high-water mark and the stream pauses).
 */
function batchWrites(from: Duplex, to: net.Socket): void {
  let inTurn = false;
  let corked = false;
  const endTurn = (): void => {
    inTurn = false;
    if (!corked) return;
    corked = false;
    to.uncork();
  };
  from.on('data', () => {
    if (!inTurn) {
      inTurn = true; // this chunk: pipe's write() sends it now
      setImmediate(endTurn);
    } else if (!corked) {
      corked = true;
      to.cork();
    }
  });
}
