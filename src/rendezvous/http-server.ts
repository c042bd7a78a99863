// The rendezvous's HTTP listener for operators, separate from the UDP/TCP
// node port so it can be bound privately: /metrics (Prometheus), the
// dashboard page, its public JSON (/api/summary) and the admin JSON
// (/api/admin/*, Bearer token). Off unless --http is given.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Registry } from 'prom-client';
import type { Logger } from '../util/logger.ts';
import { PilotError } from '../util/errors.ts';
import { listenError } from '../util/listen-error.ts';
import { bindFirst } from '../util/dual-stack-listen.ts';
import { bearerMatches } from './admin-token.ts';
import { adminNodes, adminStats, publicSummary, type ViewSource } from './dashboard-views.ts';

export interface HttpServerOptions {
  host: string;
  port: number;
  adminToken: string;
  metrics: Registry;
  views: Omit<ViewSource, 'relayBytesPerSec'>;
  log: Logger;
}

export interface HttpServer {
  host: string;
  port: number;
  close(): Promise<void>;
}

const DASHBOARD_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'dashboard');
const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};
/** The public summary is cached this long: a busy public page costs one store walk per second at most. */
const SUMMARY_CACHE_MS = 1_000;
const RATE_SAMPLE_MS = 2_000;

// No external assets, no inline script: the page works offline and injected text cannot run.
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const assets = Object.fromEntries(
    Object.entries(STATIC).map(([route, a]) => [route, { body: fs.readFileSync(path.join(DASHBOARD_DIR, a.file)), type: a.type }]),
  );

  // Relayed bytes per second over the last sample interval.
  let last = { at: Date.now(), bytes: opts.views.stats().relay.forwardedBytes };
  let rate = 0;
  const sampler = setInterval(() => {
    const now = Date.now();
    const bytes = opts.views.stats().relay.forwardedBytes;
    rate = ((bytes - last.bytes) * 1000) / Math.max(1, now - last.at);
    last = { at: now, bytes };
  }, RATE_SAMPLE_MS);
  sampler.unref();
  const views: ViewSource = { ...opts.views, relayBytesPerSec: () => rate };

  let summary: { at: number; body: Promise<string> } | undefined;
  const summaryBody = (): Promise<string> => {
    const now = Date.now();
    if (!summary || now - summary.at > SUMMARY_CACHE_MS) summary = { at: now, body: publicSummary(views, now).then((s) => JSON.stringify(s)) };
    return summary.body;
  };

  const send = (res: http.ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...SECURITY_HEADERS, ...extra });
    res.end(body);
  };
  const json = (res: http.ServerResponse, status: number, value: unknown, extra: Record<string, string> = {}) =>
    send(res, status, 'application/json; charset=utf-8', JSON.stringify(value), extra);

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: { code: 'BAD_REQUEST', message: 'only GET' } }, { allow: 'GET, HEAD' });
    const asset = assets[url.pathname];
    if (asset) return send(res, 200, asset.type, asset.body);
    if (url.pathname === '/metrics') return send(res, 200, opts.metrics.contentType, await opts.metrics.metrics());
    if (url.pathname === '/api/summary') return send(res, 200, 'application/json; charset=utf-8', await summaryBody());
    if (url.pathname.startsWith('/api/admin/')) {
      if (!bearerMatches(req.headers.authorization, opts.adminToken)) {
        return json(
          res,
          401,
          {
            error: {
              code: 'PERMISSION_DENIED',
              message: 'admin token required',
              hint: 'send Authorization: Bearer <token> (--admin-token, or the admin-token file in the data dir)',
            },
          },
          { 'www-authenticate': 'Bearer realm="pilot-rendezvous"' },
        );
      }
      if (url.pathname === '/api/admin/nodes') return json(res, 200, { nodes: await adminNodes(views) });
      if (url.pathname === '/api/admin/stats') return json(res, 200, adminStats(views));
    }
    return json(res, 404, { error: { code: 'NOT_FOUND', message: `no page ${url.pathname}` } });
  }

  const server = http.createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      opts.log.error({ err }, 'dashboard request failed');
      if (!res.headersSent) json(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
      else res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  // All addresses = both families (one "::" socket), 0.0.0.0 on a kernel without IPv6.
  await bindFirst(
    opts.host,
    (host) =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host, port: opts.port, exclusive: true }, () => {
          server.off('error', reject);
          resolve();
        });
      }),
  ).catch((err: Error) => {
    const e = listenError(err, 'http', opts.host, opts.port, '--http');
    throw e instanceof PilotError
      ? e
      : new PilotError('BAD_ARGUMENT', `cannot listen on http ${opts.host}:${opts.port}: ${err.message}`, 'pick another --http HOST:PORT');
  });
  server.on('error', (err) => opts.log.warn({ err }, 'http server error'));
  const port = (server.address() as import('node:net').AddressInfo).port;
  opts.log.info({ host: opts.host, port }, 'dashboard listening');
  return {
    host: opts.host,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(sampler);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
