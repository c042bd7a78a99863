// Which HTTP proxy (if any) reaches the rendezvous, from --proxy or the
// environment, as curl, Go's net/http (ProxyFromEnvironment) and Tailscale's
// tshttpproxy pick one: an explicit setting, else HTTPS_PROXY/https_proxy, else
// an http:// ALL_PROXY/all_proxy, minus hosts in NO_PROXY/no_proxy. Parsing
// only (no node:http here: pilotctl checks flags with it at start-up).
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

/** A proxy URL fit to print: the password replaced by *** (config output; logs never get the URL at all). */
export function redactProxyUrl(text: string): string {
  return text.replace(/^(http:\/\/[^:@/]*):[^@/]*@/i, '$1:***@');
}

/** Does NO_PROXY exempt host:port? Entries (as Go's httpproxy reads them): `*`, a name (also its subdomains, with or without a leading dot), an IP or CIDR, optionally `:port`. */
export function noProxyMatches(noProxy: string | undefined, host: string, port: number): boolean {
  if (!noProxy) return false;
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  for (const raw of noProxy.split(/[\s,]+/)) {
    let entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return true;
    const cidr = /^([0-9a-f:.]+)\/(\d{1,3})$/.exec(entry);
    if (cidr) {
      const family = net.isIPv4(cidr[1]!) ? 'ipv4' : net.isIPv6(cidr[1]!) ? 'ipv6' : undefined;
      const hostFamily = net.isIPv4(h) ? 'ipv4' : net.isIPv6(h) ? 'ipv6' : undefined;
      if (!family || family !== hostFamily || Number(cidr[2]) > (family === 'ipv4' ? 32 : 128)) continue;
      const list = new net.BlockList();
      list.addSubnet(cidr[1]!, Number(cidr[2]), family);
      if (list.check(h, family)) return true;
      continue;
    }
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
