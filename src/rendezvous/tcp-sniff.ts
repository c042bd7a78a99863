// One TCP port, two protocols: framed packets ([u32 BE length][packet]) or an
// HTTP request (the WebSocket upgrade). A frame header of a legal frame starts
// with a zero byte (frames are a few KiB), an upgrade with "GET ", so the first
// bytes tell them apart without waiting for a timeout.
import type net from 'node:net';

export type TcpProtocol = 'framed' | 'http';

const HTTP_GET = Buffer.from('GET ', 'latin1');

/** 'http' / 'framed' once decidable from these first bytes, undefined while they could still be either. */
export function classifyFirstBytes(first: Buffer): TcpProtocol | undefined {
  if (first.length === 0) return undefined;
  const n = Math.min(first.length, HTTP_GET.length);
  if (!first.subarray(0, n).equals(HTTP_GET.subarray(0, n))) return 'framed'; // the frame decoder judges it
  return n === HTTP_GET.length ? 'http' : undefined;
}

/**
 * Reads just enough of a new connection to classify it, puts the bytes back
 * (unshift) and hands the paused-then-resumed socket to `route`. A connection
 * that closes or idles out first never reaches `route` (the caller's socket
 * timeout and close handlers still apply).
 */
export function sniffTcp(sock: net.Socket, route: (protocol: TcpProtocol) => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const protocol = classifyFirstBytes(seen);
    if (protocol === undefined) return;
    sock.off('data', onData);
    sock.pause();
    sock.unshift(seen);
    route(protocol);
    sock.resume();
  };
  sock.on('data', onData);
}
