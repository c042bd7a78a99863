// WebSocket to the rendezvous (ws://host:port/pilot on its TCP port): one
// binary message = one packet. Framing, masking and the handshake are the `ws`
// library's; a ping every keepaliveMs finds a dead path (no pong by the next
// ping = gone), which TCP alone would notice only after minutes.
import { createRequire } from 'node:module';
import type WebSocketT from 'ws';
import type { Conn, ConnHandlers, ConnOptions } from './conn.ts';

// `ws` (and the node:http stack under it) is loaded on the first WebSocket
// uplink, not when the daemon starts: most daemons never use one (issue 17,
// start-up cost). ws is CommonJS, and its ESM entry re-exports this very
// module, so require() gives the same instance an `import` would.
let wsClass: typeof WebSocketT | undefined;
function loadWs(): typeof WebSocketT {
  wsClass ??= createRequire(import.meta.url)('ws') as typeof WebSocketT;
  return wsClass;
}

export function openWebSocketConn(o: ConnOptions & { path: string }, h: ConnHandlers): Conn {
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  const WebSocket = loadWs();
  const ws = new WebSocket(`ws://${host}:${o.port}${o.path}`, {
    handshakeTimeout: o.connectTimeoutMs,
    maxPayload: o.maxPacket,
    perMessageDeflate: false,
    followRedirects: false,
  });
  let reason: string | undefined;
  let pinger: NodeJS.Timeout | undefined;
  let ponged = true;
  ws.on('open', () => {
    pinger = setInterval(() => {
      if (!ponged) {
        reason ??= `no pong within ${o.keepaliveMs} ms`;
        ws.terminate();
        return;
      }
      ponged = false;
      ws.ping();
    }, o.keepaliveMs);
    pinger.unref();
    h.onOpen();
  });
  ws.on('pong', () => {
    ponged = true;
  });
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    // Text is never a packet; ignore it but count it.
    if (!isBinary) h.onGarbage('text message');
    else if (data.length === 0) h.onGarbage('empty message');
    else h.onPacket(data);
  });
  ws.on('unexpected-response', (_req, res) => {
    // E.g. 404 (wrong path) or a proxy's error page: not a pilot rendezvous.
    reason ??= `rendezvous answered HTTP ${res.statusCode} instead of a WebSocket upgrade`;
    ws.terminate();
  });
  ws.on('error', (err) => {
    // Includes an oversized message (ws closes with 1009) and bad framing.
    if ((err as { code?: string }).code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') h.onGarbage('oversized message');
    reason ??= err.message;
  });
  ws.on('close', (code) => {
    clearInterval(pinger);
    h.onClose(reason ?? `connection closed by the rendezvous (${code})`);
  });
  return {
    send(pkt) {
      if (ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > o.maxBacklog) return false;
      ws.send(pkt, { binary: true });
      return true;
    },
    destroy(why) {
      reason ??= why;
      ws.terminate();
    },
  };
}
