// A bare HTTP listener serving one Prometheus registry at /metrics (the
// daemon's --metrics). Nothing else is served; no auth, so it binds where it is
// told - a bare port means 127.0.0.1, never all interfaces by accident.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { PilotError } from '../util/errors.ts';
import { listenError } from '../util/listen-error.ts';
import type { HostPort } from '../util/hostport.ts';

export interface MetricsHttp {
  host: string;
  port: number;
  close(): Promise<void>;
}

// Kept in its own module (no node:http, no prom-client) so pilotctl and the daemon can
// check the address without loading the HTTP stack; re-exported here for callers.
export { parseMetricsAddress } from './metrics-address.ts';

export async function startMetricsHttp(addr: HostPort, registry: Registry, onError: (err: unknown) => void = () => {}): Promise<MetricsHttp> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (status: number, type: string, body: string, extra: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...extra });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'text/plain; charset=utf-8', 'only GET\n', { allow: 'GET, HEAD' });
    if (path !== '/metrics') return reply(404, 'text/plain; charset=utf-8', 'only /metrics here\n');
    registry.metrics().then(
      (text) => reply(200, registry.contentType, text),
      (err: unknown) => {
        onError(err);
        reply(500, 'text/plain; charset=utf-8', 'metrics collection failed\n');
      },
    );
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => {
      const e = listenError(err, 'http', addr.host, addr.port, '--metrics');
      reject(
        e instanceof PilotError
          ? e
          : new PilotError('BAD_ARGUMENT', `cannot listen on http ${addr.host}:${addr.port} for metrics: ${err.message}`, 'pick another --metrics HOST:PORT'),
      );
    });
    server.listen({ host: addr.host, port: addr.port, exclusive: true }, () => resolve());
  });
  server.on('error', onError);
  return {
    host: addr.host,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
