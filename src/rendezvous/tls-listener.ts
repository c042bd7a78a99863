// The rendezvous's WebSocket-over-TLS listener (`--tls-listen :443`), for
// nodes on networks that let only HTTPS out, possibly through a CONNECT proxy.
// It serves exactly the WebSocket uplink of the plain TCP port (uplink,
// registry and relay), decrypted here and handed to the same acceptor; the
// certificate is a file (certbot, lego or any ACME client writes one), read
// again on reload() (SIGHUP) and when the certificate file changes, so a
// renewal needs no restart. Like Tailscale's DERP servers, TLS is the outer
// wrapper only: nodes still pin the rendezvous key inside it.
//
// Limits: the TLS handshake must finish within handshakeMs (a slow-loris that
// opens TCP and stalls costs one socket that long), TLS 1.2+ only, and the
// connection count has a cap of its own, as large as the TCP port's.
import fs from 'node:fs';
import type net from 'node:net';
import tls from 'node:tls';
import { PilotError } from '../util/errors.ts';
import { listenError } from '../util/listen-error.ts';
import type { Logger } from '../util/logger.ts';

export interface TlsListenerOptions {
  host: string;
  port: number;
  certFile: string;
  keyFile: string;
  /** TLS handshake deadline (default 5 s). */
  handshakeMs?: number;
  maxConnections: number;
  /** How often the certificate file is checked for a change (default 30 s; 0 = only on reload()). */
  watchMs?: number;
  log: Logger;
  /** A connection whose TLS handshake finished. */
  onConnection(sock: tls.TLSSocket): void;
  /** A handshake that failed or timed out (counted as garbage by the server). */
  onHandshakeFailure?(): void;
}

export interface TlsListener {
  readonly host: string;
  readonly port: number;
  /** TLS handshakes that failed or timed out (scanners, wrong protocol, distrusting clients). */
  readonly handshakeFailures: number;
  /** Reads the certificate and key again; a bad pair is logged and the old one kept. True when the new pair is in use. */
  reload(): boolean;
  close(): Promise<void>;
}

/** Reads and checks a certificate/key pair: a coded error naming the file and the fix. */
export function loadTlsPair(certFile: string, keyFile: string): { cert: Buffer; key: Buffer } {
  const read = (file: string, flag: string): Buffer => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new PilotError(
        'BAD_ARGUMENT',
        `cannot read ${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        `${flag} takes a PEM file (e.g. certbot's /etc/letsencrypt/live/NAME/${flag === '--tls-cert' ? 'fullchain.pem' : 'privkey.pem'})`,
      );
    }
  };
  const cert = read(certFile, '--tls-cert');
  const key = read(keyFile, '--tls-key');
  try {
    tls.createSecureContext({ cert, key });
  } catch (err) {
    throw new PilotError(
      'BAD_ARGUMENT',
      `--tls-cert ${certFile} / --tls-key ${keyFile}: ${(err as Error).message}`,
      'give the PEM certificate chain and the private key that belongs to it',
    );
  }
  return { cert, key };
}

export async function startTlsListener(opts: TlsListenerOptions): Promise<TlsListener> {
  let pair = loadTlsPair(opts.certFile, opts.keyFile);
  let handshakeFailures = 0;
  const server = tls.createServer({
    ...pair,
    minVersion: 'TLSv1.2',
    ALPNProtocols: ['http/1.1'],
    handshakeTimeout: opts.handshakeMs ?? 5_000,
  });
  server.maxConnections = opts.maxConnections;
  // Every raw connection, so close() does not wait for handshakes still in flight.
  const raw = new Set<net.Socket>();
  server.on('connection', (sock: net.Socket) => {
    raw.add(sock);
    sock.once('close', () => raw.delete(sock));
  });
  server.on('tlsClientError', (_err, sock: tls.TLSSocket) => {
    handshakeFailures++;
    opts.onHandshakeFailure?.();
    sock.destroy();
  });
  server.on('secureConnection', (sock) => opts.onConnection(sock));
  server.on('error', (err) => opts.log.warn({ err }, 'tls listener error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.host, port: opts.port, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    throw listenError(err, 'tcp', opts.host, opts.port, '--tls-listen');
  });
  const reload = (): boolean => {
    try {
      const next = loadTlsPair(opts.certFile, opts.keyFile);
      if (next.cert.equals(pair.cert) && next.key.equals(pair.key)) return true;
      server.setSecureContext({ ...next, minVersion: 'TLSv1.2' } as tls.SecureContextOptions);
      pair = next;
      opts.log.info({ cert: opts.certFile }, 'TLS certificate reloaded');
      return true;
    } catch (err) {
      // A renewal caught half-written, or a key that does not match: keep serving the old pair.
      opts.log.warn({ err: (err as Error).message }, 'TLS certificate not reloaded; the old one stays in use');
      return false;
    }
  };
  const watchMs = opts.watchMs ?? 30_000;
  const onChange = (): void => void reload();
  if (watchMs > 0) fs.watchFile(opts.certFile, { interval: watchMs, persistent: false }, onChange);
  const addr = server.address() as net.AddressInfo;
  return {
    host: opts.host,
    port: addr.port,
    get handshakeFailures() {
      return handshakeFailures;
    },
    reload,
    close: () =>
      new Promise<void>((resolve) => {
        if (watchMs > 0) fs.unwatchFile(opts.certFile, onChange);
        server.close(() => resolve());
        for (const s of raw) s.destroy();
      }),
  };
}
