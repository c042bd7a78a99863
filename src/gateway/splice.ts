// Join a TCP socket and an overlay stream, both directions, with backpressure
// (a slow reader pauses the other side's source), each direction's end carried
// on its own (half-close: FIN maps to FIN), and an abort on either side aborting
// the other: a TCP RST becomes a stream reset and a stream reset (refused, not
// trusted, peer gone) becomes a TCP RST, never a clean end that would pass a
// truncated response off as complete.
//
// The overlay's own stream (src/transport/stream.ts) offers a direct path, used
// here: its in-order bytes come to a sink that writes them to the socket, and the
// socket's reads go straight into its send buffer. Per packet that skips the
// Duplex's Readable (push, buffering, 'data', pipe's ondata) and per TCP read its
// Writable (write, _write, the callback and its nextTick): tens of µs per
// request/response round trip per daemon, and CPU per MB on bulk transfers. Any
// other Duplex is joined with pipe().
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { PilotError } from '../util/errors.ts';
import { TurnCork } from '../util/turn-cork.ts';

/**
 * The direct path of the overlay's stream (src/transport/stream.ts's Stream has it), described here
 * because this layer does not import the transport: the daemon hands the stream over as a Duplex.
 */
export interface DirectStream extends Duplex {
  /** Incoming bytes go to the sink instead of the Readable side; false: refused, use the Duplex. */
  attachSink(sink: {
    /** false: the consumer is full; no more credit for the peer until resumeSink(). */
    onData(chunk: Buffer): boolean;
    onEnd(): void;
    onWritable(): void;
  }): boolean;
  /** Bytes straight into the send buffer; false: wait for the sink's onWritable(). */
  writeDirect(chunk: Buffer): boolean;
  resumeSink(): void;
}

function isDirect(s: Duplex): s is DirectStream {
  const d = s as Partial<DirectStream>;
  return typeof d.attachSink === 'function' && typeof d.writeDirect === 'function' && typeof d.resumeSink === 'function';
}

export function splice(sock: net.Socket, stream: Duplex): void {
  if (isDirect(stream) && spliceDirect(sock, stream)) return;
  splicePipe(sock, stream);
}

function spliceDirect(sock: net.Socket, stream: DirectStream): boolean {
  const batch = new TurnCork(sock); // a chunk per packet: the first of a turn written at once, the rest in one writev
  /** The peer's FIN reached the socket (end()): the stream's incoming side is complete. */
  let ended = false;
  const attached = stream.attachSink({
    onData: (chunk) => {
      batch.beforeWrite();
      return sock.write(chunk);
    },
    onEnd: () => {
      ended = true;
      sock.end();
    },
    onWritable: () => {
      if (!sock.destroyed) sock.resume();
    },
  });
  if (!attached) return false;
  sock.on('drain', () => stream.resumeSink());
  sock.on('data', (chunk: Buffer) => {
    if (!stream.writeDirect(chunk)) sock.pause();
  });
  sock.on('end', () => {
    if (!stream.destroyed) stream.end();
  });
  sock.on('error', (err: NodeJS.ErrnoException) => {
    if (!stream.destroyed) stream.destroy(new PilotError('CONNECTION_RESET', `local TCP connection failed: ${err.code ?? err.message}`));
  });
  stream.on('error', () => {
    if (!sock.destroyed) sock.resetAndDestroy();
  });
  sock.on('close', () => {
    // A clean TCP close comes after both ends; if the stream still had bytes
    // to deliver to the socket, the socket was torn down under it: reset.
    if (!stream.destroyed && !ended) stream.destroy(new PilotError('CONNECTION_RESET', 'local TCP connection closed'));
  });
  stream.on('close', () => {
    if (!sock.destroyed && !ended) sock.resetAndDestroy();
  });
  sock.resume(); // the gateway accepts with pauseOnConnect
  return true;
}

function splicePipe(sock: net.Socket, stream: Duplex): void {
  const batch = new TurnCork(sock); // a chunk per packet: the first of a turn written at once, the rest in one writev
  // registered before pipe(), so the cork comes before pipe's write
  stream.on('data', () => batch.beforeWrite());
  sock.pipe(stream);
  stream.pipe(sock);
  sock.on('error', (err: NodeJS.ErrnoException) => {
    if (!stream.destroyed) stream.destroy(new PilotError('CONNECTION_RESET', `local TCP connection failed: ${err.code ?? err.message}`));
  });
  stream.on('error', () => {
    if (!sock.destroyed) sock.resetAndDestroy();
  });
  sock.on('close', () => {
    if (!stream.destroyed && !stream.readableEnded) stream.destroy(new PilotError('CONNECTION_RESET', 'local TCP connection closed'));
  });
  stream.on('close', () => {
    if (!sock.destroyed && !stream.readableEnded) sock.resetAndDestroy();
  });
}
