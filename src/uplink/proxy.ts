// Reaching the rendezvous through an HTTP proxy (HTTP CONNECT, RFC 9110 9.3.6),
// for networks whose only way out is a corporate/sandbox proxy. The tunnel is
// opened with node:http's own CONNECT support (http.request method CONNECT, its
// 'connect' event), so no proxy library is needed and every proxy answer maps
// to a coded error: 407 = PROXY_AUTH, any other non-2xx = PROXY_REFUSED. The
// proxy is picked as curl, Go's net/http (ProxyFromEnvironment) and Tailscale's
// tshttpproxy do: an explicit setting, else HTTPS_PROXY/https_proxy, else
// ALL_PROXY/all_proxy, minus hosts in NO_PROXY/no_proxy. Only http:// proxies
// are supported (the CONNECT request itself is cleartext; what runs inside the
// tunnel is TLS end to end). Credentials (user:pass@ in the proxy URL) go out
// as Basic auth and never appear in a message, a log line or describe().
import http from 'node:http';
import net from 'node:net';
import { PilotError } from '../util/errors.ts';
import type { ProxyConfig } from './proxy-config.ts';

export { noProxyMatches, parseProxyUrl, proxyFor, redactProxyUrl, type ProxyConfig, type ProxySource } from './proxy-config.ts';

/** Largest proxy answer head we read (a 407 page is small). */
const MAX_PROXY_HEADER = 16 * 1024;

/**
 * A TCP connection to host:port tunnelled through `proxy`. Rejects with
 * PROXY_AUTH (407), PROXY_REFUSED (other answers), UNREACHABLE (proxy not
 * reachable) or TIMEOUT: never waits longer than timeoutMs.
 */
export function connectThroughProxy(proxy: ProxyConfig, host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  const target = `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
  return new Promise<net.Socket>((resolve, reject) => {
    const headers: Record<string, string> = { host: target };
    if (proxy.authorization) headers['proxy-authorization'] = proxy.authorization;
    const req = http.request({
      host: proxy.host,
      port: proxy.port,
      method: 'CONNECT',
      path: target,
      headers,
      agent: false,
      maxHeaderSize: MAX_PROXY_HEADER,
      setHost: false,
    });
    let done = false;
    const finish = (err: PilotError | undefined, sock?: net.Socket): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(sock!);
    };
    const timer = setTimeout(
      () =>
        finish(
          new PilotError(
            'TIMEOUT',
            `proxy ${proxy.display} did not open a tunnel to ${target} within ${timeoutMs} ms`,
            'is the proxy reachable and alive? check --proxy / $HTTPS_PROXY',
          ),
        ),
      timeoutMs,
    );
    timer.unref();
    req.on('connect', (res, sock, head) => {
      if (res.statusCode === 200) {
        // Bytes after the 200 would belong to the server's TLS hello: put them back.
        if (head.length > 0) sock.unshift(head);
        finish(undefined, sock);
        return;
      }
      sock.destroy();
      finish(proxyAnswerError(proxy, target, res.statusCode ?? 0, res.statusMessage ?? ''));
    });
    // A proxy that answers without the tunnel (e.g. a plain HTTP reply to CONNECT) arrives as 'response'.
    req.on('response', (res) => {
      res.resume();
      finish(proxyAnswerError(proxy, target, res.statusCode ?? 0, res.statusMessage ?? ''));
    });
    req.on('error', (err) => {
      const code = (err as { code?: string }).code;
      finish(
        new PilotError(
          'UNREACHABLE',
          `cannot reach proxy ${proxy.display}: ${code ?? err.message}`,
          code === 'ECONNREFUSED'
            ? 'nothing listens at the proxy address: check --proxy / $HTTPS_PROXY'
            : 'check the proxy address in --proxy / $HTTPS_PROXY and that it is reachable',
        ),
      );
    });
    req.end();
  });
}

function proxyAnswerError(proxy: ProxyConfig, target: string, status: number, statusText: string): PilotError {
  const what = `proxy ${proxy.display} answered ${status}${statusText ? ` ${statusText}` : ''} to CONNECT ${target}`;
  // 407 is the standard answer; tinyproxy answers 401 to wrong credentials on CONNECT.
  if (status === 407 || status === 401) {
    return new PilotError(
      'PROXY_AUTH',
      what,
      proxy.authorization
        ? 'the proxy refused the credentials in the proxy URL: fix USER:PASSWORD in --proxy / $HTTPS_PROXY'
        : 'the proxy wants a login: put it in the URL, http://USER:PASSWORD@HOST:PORT (--proxy or $HTTPS_PROXY)',
    );
  }
  return new PilotError(
    'PROXY_REFUSED',
    what,
    status === 403
      ? `the proxy forbids tunnels to ${target}: ask its operator to allow CONNECT to that host and port (many allow only 443)`
      : status >= 500
        ? `the proxy could not reach ${target}: is pilot-rendezvous serving --tls-listen there?`
        : 'the proxy did not open the tunnel: check --proxy / $HTTPS_PROXY',
  );
}
