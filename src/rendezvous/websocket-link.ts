// WebSocket on the rendezvous's TCP port, for daemons behind networks that only
// let HTTP out. A TCP connection sniffed as HTTP is handed to an unbound
// http.Server; an upgrade on /pilot becomes a Link where each binary message is
// one packet (no extra length framing), anything else gets a 404. Framing,
// masking and the upgrade handshake are the `ws` library's.
import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { formatEndpoint, normalizeIp } from '../registry/endpoint.ts';
import type { Link } from './link.ts';
import { TurnCork } from '../util/turn-cork.ts';

export const WEBSOCKET_PATH = '/pilot';
/** An HTTP request head must be complete within this (slow-loris); an unbound http.Server does not enforce headersTimeout. */
const DEFAULT_HANDSHAKE_MS = 5_000;
/** Request heads are small: a browser-sized cookie jar is not expected here. */
const MAX_HEADER_BYTES = 8 * 1024;

export interface WebSocketAcceptorOptions {
  /** Largest message (= largest packet), the same limit as a TCP frame. */
  maxMessage: number;
  /** Unsent bytes beyond which send() drops (congested link). */
  maxBacklog: number;
  /** Idle timeout of an upgraded connection (ws clears the socket's own timeout on upgrade). */
  idleMs: number;
  handshakeMs?: number;
  onPacket: (pkt: Buffer, link: Link, ip: string) => void;
  onGarbage: () => void;
  onClose: (link: Link) => void;
}

export interface WebSocketAcceptor {
  /** Takes over a sniffed connection whose unread bytes start with an HTTP request. */
  accept(sock: net.Socket): void;
  /** Open WebSocket links. */
  readonly size: number;
  close(): void;
}

export function createWebSocketAcceptor(opts: WebSocketAcceptorOptions): WebSocketAcceptor {
  const wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxMessage, perMessageDeflate: false, clientTracking: true });
  const server = http.createServer({ maxHeaderSize: MAX_HEADER_BYTES }, (_req, res) => {
    // A plain HTTP request (no upgrade): not for us.
    opts.onGarbage();
    res.writeHead(404, { connection: 'close', 'content-type': 'text/plain' }).end('not a pilot endpoint\n');
  });
  server.maxHeadersCount = 50;
  server.on('clientError', (_err, socket) => {
    // Unparseable HTTP (random bytes after "GET ", oversized head, ...).
    opts.onGarbage();
    socket.destroy();
  });
  wss.on('wsClientError', (_err, socket) => {
    // An upgrade request ws refuses (bad key, version, method).
    opts.onGarbage();
    socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    socket.destroy();
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = req.url ?? '';
    if (url.split('?')[0] !== WEBSOCKET_PATH) {
      opts.onGarbage();
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => serve(ws, socket as net.Socket));
  });

  let seq = 0;
  const handshakeTimers = new WeakMap<net.Socket, NodeJS.Timeout>();

  function serve(ws: WebSocket, sock: net.Socket): void {
    clearTimeout(handshakeTimers.get(sock));
    const ip = normalizeIp(sock.remoteAddress ?? '');
    // the relay's forwards to this node in one turn leave in one writev (ws writes to this socket)
    const turn = new TurnCork(sock);
    const link: Link = {
      kind: 'tcp',
      id: `ws:${++seq}`,
      observed: formatEndpoint(ip, sock.remotePort ?? 0),
      send: (pkt) => {
        if (ws.readyState !== ws.OPEN || ws.bufferedAmount > opts.maxBacklog) return false;
        turn.beforeWrite();
        ws.send(pkt, { binary: true });
        return true;
      },
    };
    sock.setNoDelay(true);
    sock.setTimeout(opts.idleMs, () => ws.terminate());
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        // Text is not a packet: a confused or hostile peer. 1003 = unsupported data.
        opts.onGarbage();
        ws.close(1003, 'binary messages only');
        return;
      }
      if (data.length === 0) {
        opts.onGarbage();
        return;
      }
      opts.onPacket(data, link, ip);
    });
    // Oversized message (ws closes with 1009), bad framing, unmasked frames...
    ws.on('error', () => {
      opts.onGarbage();
      ws.terminate();
    });
    ws.on('close', () => opts.onClose(link));
  }

  return {
    accept(sock) {
      const timer = setTimeout(() => {
        opts.onGarbage();
        sock.destroy();
      }, opts.handshakeMs ?? DEFAULT_HANDSHAKE_MS);
      timer.unref();
      handshakeTimers.set(sock, timer);
      sock.once('close', () => clearTimeout(timer));
      server.emit('connection', sock);
    },
    get size() {
      return wss.clients.size;
    },
    close() {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
    },
  };
}
