// Listening on "all addresses" means both families. On Linux a socket bound to
// "::" with IPV6_V6ONLY off (Node's default for TCP, and for udp6 unless
// ipv6Only is set) takes IPv4 too, as ::ffff:a.b.c.d; a kernel without IPv6
// refuses "::" (EAFNOSUPPORT), and then 0.0.0.0 alone is all there is.
import net from 'node:net';
import { mapIpv4 } from './ip6.ts';

/** The hosts to try binding for `host`, in order: a wildcard is "::" first (dual-stack), then 0.0.0.0. */
export function listenHosts(host: string): string[] {
  const h = host.replace(/^\[|\]$/g, '');
  return h === '' || h === '0.0.0.0' || h === '::' ? ['::', '0.0.0.0'] : [h];
}

/** This bind error means the kernel has no IPv6 (try the IPv4 wildcard next). */
export function noIpv6(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'EAFNOSUPPORT' || code === 'EPROTONOSUPPORT' || code === 'EADDRNOTAVAIL';
}

/** bind(host) for each of listenHosts(host) until one binds; other errors end it. */
export async function bindFirst<T>(host: string, bind: (host: string) => Promise<T>): Promise<T> {
  const hosts = listenHosts(host);
  for (let i = 0; ; i++) {
    try {
      return await bind(hosts[i]!);
    } catch (err) {
      if (i + 1 >= hosts.length || !noIpv6(err)) throw err;
    }
  }
}

/** A destination for a socket bound to `boundHost`: IPv4 as ::ffff:a.b.c.d on an IPv6 (dual-stack) socket. */
export function udpDestination(boundHost: string, ip: string): string {
  return net.isIPv6(boundHost) && net.isIPv4(ip) ? mapIpv4(ip) : ip;
}
