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

export interface ProxyConfig {
  host: string;
  port: number;
  /** "Basic …" header value, when the URL had user:pass@. */
  authorization?: string;
  /** The proxy as shown to people: http://host:port, never the credentials. */
  display: string;
}

/** Where a proxy setting came from, named in errors. */
export type ProxySource = 'flag' | 'HTTPS_PROXY' | 'https_proxy' | 'ALL_PROXY' | 'all_proxy';

/** Parses http://[user:pass@]host[:port][/]; a bad value is a BAD_ARGUMENT naming its source (the value is not echoed: it may hold a password). */
export function parseProxyUrl(text: string, source: ProxySource | string = 'proxy'): ProxyConfig {
  let u: URL;
  try {
    u = new URL(text.includes('://') ? text : `http://${text}`);
  } catch {
    throw new PilotError('BAD_ARGUMENT', `${source}: not a proxy URL`, `${source} takes http://[USER:PASSWORD@]HOST:PORT`);
  }
  if (u.protocol !== 'http:') {
    throw new PilotError(
      'BAD_ARGUMENT',
      `${source}: ${u.protocol.replace(/:$/, '')}:// proxies are not supported`,
      `${source} takes an http:// proxy (HTTP CONNECT); the tunnel inside it is TLS anyway`,
    );
  }
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (!host) throw new PilotError('BAD_ARGUMENT', `${source}: the proxy URL has no host`, `${source} takes http://[USER:PASSWORD@]HOST:PORT`);
  const port = u.port ? Number(u.port) : 80;
  const cfg: ProxyConfig = { host, port, display: `http://${net.isIPv6(host) ? `[${host}]` : host}:${port}` };
  if (u.username || u.password) {
    const creds = `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`;
    cfg.authorization = `Basic ${Buffer.from(creds).toString('base64')}`;
  }
  return cfg;
}

/** Does NO_PROXY exempt host:port? Entries: `*`, a name (also its subdomains, with or without a leading dot), an IP, optionally `:port`. */
export function noProxyMatches(noProxy: string | undefined, host: string, port: number): boolean {
  if (!noProxy) return false;
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  for (const raw of noProxy.split(/[\s,]+/)) {
    let entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return true;
    const m = /^(.*):(\d+)$/.exec(entry);
    if (m && !net.isIPv6(entry)) {
      if (Number(m[2]) !== port) continue;
      entry = m[1]!;
    }
    entry = entry.replace(/^\[|\]$/g, '').replace(/^\*?\./, '.');
    if (entry.startsWith('.') ? h.endsWith(entry) || h === entry.slice(1) : h === entry || h.endsWith(`.${entry}`)) return true;
  }
  return false;
}

/**
 * The proxy for host:port: the explicit one (flag/config; "none" = never), else
 * the environment's. undefined = connect directly.
 */
export function proxyFor(host: string, port: number, explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): ProxyConfig | undefined {
  if (explicit === 'none') return undefined;
  if (explicit) return parseProxyUrl(explicit, 'proxy');
  const noProxy = env.NO_PROXY ?? env.no_proxy;
  if (noProxyMatches(noProxy, host, port)) return undefined;
  for (const name of ['HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy'] as const) {
    const v = env[name];
    if (!v) continue;
    // ALL_PROXY may name a SOCKS proxy (curl's convention): not ours to speak, so it is not used.
    if (name.startsWith('A') || name.startsWith('a')) {
      if (!/^http:\/\//i.test(v)) continue;
    }
    return parseProxyUrl(v, name);
  }
  return undefined;
}

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
