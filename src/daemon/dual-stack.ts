// One UDP socket for both address families, and the translation at its edge.
//
// Like WireGuard's Linux socket code and Tailscale's magicsock, the daemon wants
// one logical endpoint; unlike them it needs no second socket: on Linux (and
// macOS, Windows) an AF_INET6 socket bound to "::" with IPV6_V6ONLY off also
// carries IPv4, which it reports as ::ffff:a.b.c.d. So the underlay binds one
// udp6 socket and everything above the socket sees plain IPv4 or canonical IPv6:
//   inbound:  ::ffff:a.b.c.d -> a.b.c.d; NAT64 prefix::a.b.c.d -> a.b.c.d
//   outbound: a.b.c.d -> ::ffff:a.b.c.d (dual-stack), or prefix::a.b.c.d on an
//             IPv6-only host behind NAT64 (RFC 6052 synthesis, as iroh and
//             Apple's CLAT do for literals), IPv6 unchanged.
// A kernel without IPv6 fails the udp6 bind with EAFNOSUPPORT: then udp4 on 0.0.0.0.
import type dgram from 'node:dgram';
import dns from 'node:dns/promises';
import net from 'node:net';
import os from 'node:os';
import { PilotError } from '../util/errors.ts';
import type { Logger } from '../util/logger.ts';
import { canonicalIp, classifyIpv6, extractNat64, formatIpv6, mapIpv4, nat64Prefix, synthesizeNat64, unmapIpv4, WELL_KNOWN_NAT64_PREFIX } from '../util/ip6.ts';
import { ipFamily } from '../util/ip-family.ts';

export type SocketFamily = 'dual' | 'ipv4' | 'ipv6';

export interface SocketPlan {
  type: 'udp4' | 'udp6';
  host: string;
  family: SocketFamily;
}

/** How to bind `--listen HOST`: a wildcard (0.0.0.0, ::, empty) is one dual-stack socket; a literal is its own family. */
export function socketPlans(listenHost: string): SocketPlan[] {
  const h = listenHost.replace(/^\[|\]$/g, '');
  if (h === '' || h === '0.0.0.0' || h === '::') {
    return [
      { type: 'udp6', host: '::', family: 'dual' },
      { type: 'udp4', host: '0.0.0.0', family: 'ipv4' },
    ];
  }
  return net.isIPv6(h) ? [{ type: 'udp6', host: h, family: 'ipv6' }] : [{ type: 'udp4', host: h, family: 'ipv4' }];
}

export { noIpv6 } from '../util/dual-stack-listen.ts';

/** Socket options for a plan (IPV6_V6ONLY off for the dual-stack one). */
export function socketOptions(plan: SocketPlan): Pick<dgram.SocketOptions, 'type' | 'ipv6Only'> {
  return plan.type === 'udp6' ? { type: 'udp6', ipv6Only: plan.family === 'ipv6' } : { type: 'udp4' };
}

const MAX_MAPPED = 256;

/** Address translation at the socket's edge (see the top of this file). */
export class EdgeAddresses {
  readonly family: SocketFamily;
  /** The NAT64 /96 prefix in use (IPv6-only host), if any. */
  readonly nat64: Uint8Array | undefined;
  /**
   * outboundUdp()'s answers on a dual-stack socket, per IPv4 destination: the same string object
   * for every packet, not a new "::ffff:" concatenation that the UDP batcher then compares
   * character by character and the addon flattens. Bounded (destinations come from peers).
   */
  private readonly mapped = new Map<string, string>();

  constructor(family: SocketFamily, nat64?: Uint8Array) {
    this.family = family;
    this.nat64 = nat64;
  }

  /**
   * A source address from the socket as the rest of the daemon sees it. Per
   * packet, so string tests first: the kernel's text (inet_ntop) is already
   * RFC 5952, and a mapped IPv4 source is always "::ffff:a.b.c.d".
   */
  inbound(ip: string): string {
    if (!ip.includes(':')) return ip;
    if (ip.startsWith('::ffff:') && ip.includes('.', 7)) return ip.slice(7);
    if (this.nat64) {
      const v4 = extractNat64(this.nat64, ip);
      if (v4 !== undefined) return v4;
    }
    return ip;
  }

  /** An address from anywhere else (config, DNS): any spelling to the form inbound() gives. */
  normalize(ip: string): string {
    return this.inbound(unmapIpv4(canonicalIp(ip)));
  }

  /** A destination as the socket needs it. */
  outboundUdp(ip: string): string {
    if (ipFamily(ip) !== 4) return ip;
    if (this.nat64 && this.family !== 'ipv4') return synthesizeNat64(this.nat64, ip);
    if (this.family !== 'dual') return ip;
    let m = this.mapped.get(ip);
    if (m === undefined) {
      m = mapIpv4(ip);
      if (this.mapped.size >= MAX_MAPPED) this.mapped.clear();
      this.mapped.set(ip, m);
    }
    return m;
  }

  /** A destination for a TCP connection (the uplink): only NAT64 changes it. */
  outboundTcp(ip: string): string {
    return net.isIPv4(ip) && this.nat64 ? synthesizeNat64(this.nat64, ip) : ip;
  }

  /** Can we send to `ip` at all (an IPv4-only socket cannot reach IPv6)? */
  reaches(ip: string): boolean {
    return !(this.family === 'ipv4' && ipFamily(ip) === 6);
  }
}

type Ifaces = NodeJS.Dict<Array<{ family: string | number; address: string; internal: boolean }>>;

/** The host has IPv6 beyond link-local but no IPv4 beyond loopback/link-local: an IPv6-only network (NAT64 may give IPv4). */
export function ipv6Only(ifaces: Ifaces = os.networkInterfaces()): boolean {
  let v4 = false;
  let v6 = false;
  for (const list of Object.values(ifaces)) {
    for (const ni of list ?? []) {
      if (ni.internal) continue;
      if ((ni.family === 'IPv4' || ni.family === 4) && !ni.address.startsWith('169.254.')) v4 = true;
      if ((ni.family === 'IPv6' || ni.family === 6) && classifyIpv6(ni.address) !== 'link-local') v6 = true;
    }
  }
  return v6 && !v4;
}

export interface Nat64 {
  prefix: Uint8Array;
  /** rfc7050: learnt from ipv4only.arpa; well-known: assumed 64:ff9b::/96 (RFC 6052). */
  source: 'rfc7050' | 'well-known';
}

type Lookup = (host: string, opts: { family: 6; all: true }) => Promise<Array<{ address: string }>>;

/**
 * RFC 7050: the DNS64 resolver synthesises AAAA for ipv4only.arpa (whose only A
 * records are 192.0.0.170/171); the /96 in front of them is the NAT64 prefix.
 * Only /96 is supported (by far the most common; RFC 6052's other lengths put
 * the IPv4 bits elsewhere). No answer: the well-known prefix 64:ff9b::/96.
 */
export async function discoverNat64(lookup: Lookup = dns.lookup as unknown as Lookup): Promise<Nat64> {
  const answers = await lookup('ipv4only.arpa', { family: 6, all: true }).catch(() => []);
  for (const a of answers) {
    const prefix = nat64Prefix(a.address);
    if (!prefix) continue;
    const v4 = extractNat64(prefix, a.address);
    if (v4 === '192.0.0.170' || v4 === '192.0.0.171') return { prefix, source: 'rfc7050' };
  }
  return { prefix: nat64Prefix(WELL_KNOWN_NAT64_PREFIX)!, source: 'well-known' };
}

type LookupAll = (host: string, opts: { all: true }) => Promise<Array<{ address: string; family: number }>>;

/**
 * The rendezvous host as one IP. A literal is used as given. A name: IPv4
 * first on a host with IPv4 (the path every NAT-traversal feature knows), IPv6
 * first on an IPv6-only host (there DNS64 answers AAAA for a v4-only name; an
 * A record alone is synthesised with the NAT64 prefix by the edge).
 */
export async function resolveRendezvous(host: string, v6First: boolean, lookup: LookupAll = dns.lookup as unknown as LookupAll): Promise<string> {
  if (net.isIP(host)) return canonicalIp(host);
  const all = await lookup(host, { all: true }).catch((err: unknown) => {
    throw new PilotError('UNREACHABLE', `cannot resolve rendezvous host ${host}: ${(err as Error).message}`, 'check --registry HOST:PORT (and DNS)');
  });
  const pick = (family: number): string | undefined => all.find((a) => a.family === family)?.address;
  const ip = v6First ? (pick(6) ?? pick(4)) : (pick(4) ?? pick(6));
  if (ip === undefined) throw new PilotError('UNREACHABLE', `cannot resolve rendezvous host ${host}: no addresses`, 'check --registry HOST:PORT (and DNS)');
  return canonicalIp(ip);
}

/**
 * What the daemon needs before binding: the rendezvous as one IP, and on an
 * IPv6-only host (no IPv4 beyond loopback/link-local) the NAT64 prefix that
 * reaches IPv4 (the rendezvous when given as an IPv4 literal or A record only, IPv4 peers).
 */
export async function underlayAddresses(rendezvousHost: string, log: Logger): Promise<{ ip: string; nat64?: Uint8Array }> {
  const nat64 = ipv6Only() ? await discoverNat64() : undefined;
  if (nat64) log.info({ prefix: `${formatIpv6(Uint8Array.from([...nat64.prefix, 0, 0, 0, 0]))}/96`, source: nat64.source }, 'IPv6-only network: NAT64');
  const ip = await resolveRendezvous(rendezvousHost, nat64 !== undefined);
  return nat64 ? { ip, nat64: nat64.prefix } : { ip };
}
