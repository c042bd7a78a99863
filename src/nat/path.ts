// How a peer is reached on the underlay. A session does not care: the daemon
// picks a path per packet and learns working ones from authenticated traffic,
// so streams survive moves between relay and direct paths, and NAT rebinding.
import net from 'node:net';
import type { HostPort } from '../util/hostport.ts';
import { canonicalIp, unmapIpv4 } from '../util/ip6.ts';
import type { Address } from '../wire/address.ts';

/** How the daemon itself reaches the rendezvous (and so the relay). */
export type UplinkKind = 'udp' | 'tcp' | 'websocket' | 'wss';

export type Path =
  /** UDP to host:port; `sock` names an extra (birthday) socket, absent = the daemon's one socket. */
  | { kind: 'direct'; host: string; port: number; sock?: number }
  /**
   * Through the rendezvous relay (still end-to-end encrypted). `from`, on packets
   * received: the sender's address as the rendezvous authenticated it (per-source
   * handshake limits and cookies count by it; the session layer trusts only keys).
   */
  | { kind: 'relay'; from?: Address };

/** How a peer is reached now, for peers/ping output. */
export interface PathReport {
  path: string;
  pathType: 'direct' | 'relay' | 'none';
  endpoint: string | null;
  relay: UplinkKind | null;
}

export function pathReport(p: Path | undefined, uplink: UplinkKind): PathReport {
  return {
    path: describePath(p, uplink),
    pathType: p?.kind ?? 'none',
    endpoint: p?.kind === 'direct' ? endpointText(p.host, p.port) : null,
    relay: p?.kind === 'relay' ? uplink : null,
  };
}

export function describePath(p: Path | undefined, uplink: UplinkKind = 'udp'): string {
  if (!p) return 'none';
  return p.kind === 'direct' ? `direct ${endpointText(p.host, p.port)}` : `relay (${uplink})`;
}

export function samePath(a: Path | undefined, b: Path | undefined): boolean {
  if (a === b) return true; // the underlay hands out one object per source while it stays the same
  if (!a || !b) return false;
  if (a.kind !== b.kind) return false;
  return a.kind === 'direct' && b.kind === 'direct' ? a.host === b.host && a.port === b.port && a.sock === b.sock : true;
}

export function pathKeyOf(p: Path): string {
  return p.kind === 'direct' ? `${endpointText(p.host, p.port)}/${p.sock ?? 0}` : 'relay';
}

/** "ip:port", IPv6 in brackets ("[2001:db8::1]:4000"). */
export function endpointText(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * "a.b.c.d:port" or "[v6]:port" (hostile input: peers and the registry send these).
 * IPv6 comes back in canonical form; an IPv4-mapped one as plain IPv4, so the
 * IPv4 checks (private, loopback...) judge it. Zone ids ("%eth0") are refused.
 */
export function parseEndpoint(text: string): HostPort | undefined {
  if (typeof text !== 'string' || text.length > 64) return undefined;
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3})|\[([0-9A-Fa-f:.]{2,45})\]):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (!(port > 0 && port < 65536)) return undefined;
  if (m[1] !== undefined) return net.isIPv4(m[1]) ? { host: m[1], port } : undefined;
  if (!net.isIPv6(m[2]!)) return undefined;
  return { host: unmapIpv4(canonicalIp(m[2]!)), port };
}
