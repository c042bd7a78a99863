// WebSocket to the rendezvous: ws://host:port/pilot on its TCP port, or
// wss://host[:443]/pilot on its TLS listener, directly or tunnelled through an
// HTTP CONNECT proxy (proxy.ts). One binary message = one packet. Framing,
// masking and the handshake are the `ws` library's; a ping every keepaliveMs
// finds a dead path (no pong by the next ping = gone), which TCP alone would
// notice only after minutes.
//
// TLS here is for getting through middleboxes, not the trust root: the server
// certificate is verified (system CAs, plus --tls-ca) as any HTTPS client
// does, and the rendezvous key is still pinned by the registry layer inside,
// as over UDP (Tailscale's DERP over HTTPS does the same: TLS outside, its own
// keys inside).
import { createRequire } from 'node:module';
import type net from 'node:net';
import type tlsT from 'node:tls';
import type WebSocketT from 'ws';
import { PilotError } from '../util/errors.ts';
import type { Conn, ConnHandlers, ConnOptions } from './conn.ts';
import type { ProxyConfig } from './proxy-config.ts';

// `ws` (and the node:http stack under it) is loaded on the first WebSocket
// uplink, not when the daemon starts: most daemons never use one (issue 17,
// start-up cost). ws is CommonJS, and its ESM entry re-exports this very
// module, so require() gives the same instance an `import` would.
let wsClass: typeof WebSocketT | undefined;
function loadWs(): typeof WebSocketT {
  wsClass ??= createRequire(import.meta.url)('ws') as typeof WebSocketT;
  return wsClass;
}
// node:tls and the proxy client (node:http) likewise load with the first wss/proxied uplink only.
let tlsModule: typeof tlsT | undefined;
function loadTls(): typeof tlsT {
  tlsModule ??= createRequire(import.meta.url)('node:tls') as typeof tlsT;
  return tlsModule;
}

export interface WebSocketConnOptions extends ConnOptions {
  path: string;
  /** wss: TLS to the server (host is then the name its certificate must carry). */
  tls?: boolean;
  /** Extra trusted CA certificates (PEM), on top of the system's. */
  ca?: string | Buffer;
  /** Tunnel through this HTTP proxy (CONNECT). */
  proxy?: ProxyConfig;
}

/** OpenSSL verification codes that mean "this certificate is not one to trust" (as opposed to a broken connection). */
const CERT_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export function tlsCertError(err: Error & { code?: string }, host: string): PilotError | undefined {
  const code = err.code ?? '';
  if (!CERT_ERRORS.has(code)) return undefined;
  const hint =
    code === 'ERR_TLS_CERT_ALTNAME_INVALID'
      ? `the certificate is not for ${host}: use the name the certificate carries in the wss:// URL, or give the rendezvous a certificate for ${host}`
      : code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID'
        ? 'the rendezvous certificate is outside its validity period: renew it (certbot/lego) and send pilot-rendezvous SIGHUP; check this clock too'
        : 'the certificate is not signed by a CA this node trusts: pass the rendezvous CA with --tls-ca FILE (or $NODE_EXTRA_CA_CERTS)';
  return new PilotError('TLS_UNTRUSTED', `TLS certificate of ${host} not accepted: ${code} (${err.message})`, hint);
}

function trustedCas(extra: string | Buffer | undefined): string[] | undefined {
  if (extra === undefined) return undefined; // ws/tls use Node's defaults
  const tls = loadTls();
  const base = typeof tls.getCACertificates === 'function' ? tls.getCACertificates('default') : [...tls.rootCertificates];
  return [...base, extra.toString()];
}

export function openWebSocketConn(o: WebSocketConnOptions, h: ConnHandlers): Conn {
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  const url = `${o.tls ? 'wss' : 'ws'}://${host}:${o.port}${o.path}`;
  const WebSocket = loadWs();
  let ws: WebSocketT | undefined;
  let reason: string | undefined;
  let cause: PilotError | undefined;
  let pinger: NodeJS.Timeout | undefined;
  let ponged = true;
  let closed = false;
  let tunnel: net.Socket | undefined;
  const close = (): void => {
    if (closed) return;
    closed = true;
    clearTimeout(deadline);
    clearInterval(pinger);
    h.onClose(reason ?? 'connection closed by the rendezvous', cause);
  };
  const fail = (why: string, err?: PilotError): void => {
    reason ??= why;
    cause ??= err;
    if (ws) ws.terminate();
    else {
      tunnel?.destroy();
      close();
    }
  };
  // One deadline over proxy CONNECT + TLS + upgrade: a server or proxy that stalls mid-handshake costs connectTimeoutMs, never a hang.
  const deadline = setTimeout(
    () =>
      fail(
        `${o.proxy ? 'proxy tunnel, ' : ''}${o.tls ? 'TLS and ' : ''}WebSocket handshake timed out after ${o.connectTimeoutMs} ms`,
        // Plain ws keeps its UNREACHABLE (the reason says timeout); TLS and proxies get a code of their own.
        !o.tls && !o.proxy
          ? undefined
          : new PilotError(
              'TIMEOUT',
              `${url}${o.proxy ? ` via proxy ${o.proxy.display}` : ''}: handshake did not finish within ${o.connectTimeoutMs} ms`,
              o.tls ? 'something accepts TCP there but does not finish a TLS/WebSocket handshake: is it pilot-rendezvous --tls-listen?' : undefined,
            ),
      ),
    o.connectTimeoutMs,
  );
  deadline.unref();

  const start = (sock: net.Socket | undefined): void => {
    if (closed) {
      sock?.destroy();
      return;
    }
    tunnel = sock;
    ws = makeWs(sock);
    wire(ws);
  };
  const ca = o.tls ? trustedCas(o.ca) : undefined;
  const makeWs = (sock: net.Socket | undefined): WebSocketT =>
    new WebSocket(url, {
      handshakeTimeout: o.connectTimeoutMs,
      maxPayload: o.maxPacket,
      perMessageDeflate: false,
      followRedirects: false,
      ...(o.tls ? { ...(ca ? { ca } : {}), rejectUnauthorized: true } : {}),
      ...(sock
        ? {
            // Through the proxy's tunnel: TLS (or plain WebSocket) over the already connected socket.
            createConnection: (opts: tlsT.ConnectionOptions) =>
              o.tls ? loadTls().connect({ ...opts, socket: sock, servername: isIpLiteral(o.host) ? '' : o.host }) : sock,
          }
        : {}),
    } as WebSocketT.ClientOptions);

  const wire = (w: WebSocketT): void => {
    w.on('open', () => {
      clearTimeout(deadline);
      pinger = setInterval(() => {
        if (!ponged) {
          reason ??= `no pong within ${o.keepaliveMs} ms`;
          w.terminate();
          return;
        }
        ponged = false;
        w.ping();
      }, o.keepaliveMs);
      pinger.unref();
      h.onOpen();
    });
    w.on('pong', () => {
      ponged = true;
    });
    w.on('message', (data: Buffer, isBinary: boolean) => {
      // Text is never a packet; ignore it but count it.
      if (!isBinary) h.onGarbage('text message');
      else if (data.length === 0) h.onGarbage('empty message');
      else h.onPacket(data);
    });
    w.on('unexpected-response', (_req, res) => {
      // E.g. 404 (wrong path) or a proxy's error page: not a pilot rendezvous.
      reason ??= `rendezvous answered HTTP ${res.statusCode} instead of a WebSocket upgrade`;
      w.terminate();
    });
    w.on('error', (err: Error & { code?: string }) => {
      // Includes an oversized message (ws closes with 1009) and bad framing.
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') h.onGarbage('oversized message');
      const certErr = o.tls ? tlsCertError(err, o.host) : undefined;
      cause ??= certErr;
      reason ??= certErr ? certErr.message : err.message;
    });
    w.on('close', (code) => {
      reason ??= `connection closed by the rendezvous (${code})`;
      close();
    });
  };

  if (o.proxy) {
    const proxy = o.proxy;
    import('./proxy.ts').then((m) => m.connectThroughProxy(proxy, o.host, o.port, o.connectTimeoutMs)).then(start, (err: PilotError) => fail(err.message, err));
  } else start(undefined);

  return {
    send(pkt) {
      if (!ws || ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > o.maxBacklog) return false;
      ws.send(pkt, { binary: true });
      return true;
    },
    destroy(why) {
      fail(why);
    },
  };
}

function isIpLiteral(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
