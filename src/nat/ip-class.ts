// Which IPv4 addresses are worth birthday probing (a public mapping), and which
// are local-only candidates (LAN). TEST-NET ranges count as public: the lab uses them.
// IPv6 (ip6-class.ts): global unicast is public (no NAT in front of it, usually);
// ULA counts as LAN; link-local, multicast, loopback, unspecified and mapped never.
import net from 'node:net';
import os from 'node:os';
import { isPublicIPv6, onAttachedIpv6Subnet } from './ip6-class.ts';
export function isPublicIPv4(ip: string): boolean {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((n) => !Number.isInteger(n) || n < 0 || n > 255)) return false;
  const [a, b] = p as [number, number, number, number];
  if (a === 10 || a === 127 || a === 0 || a >= 224) return false;
  if (a === 172 && b >= 16 && b <= 31) return false;
  if (a === 192 && b === 168) return false;
  if (a === 169 && b === 254) return false;
  if (a === 100 && b >= 64 && b <= 127) return false; // CGNAT
  return true;
}

export type Ifaces = NodeJS.Dict<Array<{ family: string | number; address: string; netmask: string; cidr?: string | null }>>;

/** The interface list, re-read at most every 5 s (candidates are checked on every punching round). */
let cached: { at: number; ifaces: Ifaces } | undefined;
function interfaces(): Ifaces {
  const now = Date.now();
  if (cached === undefined || now - cached.at > 5_000) cached = { at: now, ifaces: os.networkInterfaces() };
  return cached.ifaces;
}

function ipToInt(ip: string): number {
  return ip.split('.').reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);
}

/**
 * `ip` is on a subnet one of our interfaces is attached to (loopback included).
 * A private or LAN candidate anywhere else is not ours to probe: it names some
 * other network's host, or a victim's.
 */
export function onAttachedSubnet(ip: string, ifaces: Ifaces = interfaces()): boolean {
  if (net.isIPv6(ip)) return onAttachedIpv6Subnet(ip, ifaces);
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) return false;
  const target = ipToInt(ip);
  for (const list of Object.values(ifaces)) {
    for (const ni of list ?? []) {
      if (ni.family !== 'IPv4' && ni.family !== 4) continue;
      const mask = ipToInt(ni.netmask);
      if ((target & mask) === (ipToInt(ni.address) & mask)) return true;
    }
  }
  return false;
}

/** A candidate we may probe: a public address, or one on a subnet we are attached to. */
export function probeable(ip: string, ifaces?: Ifaces): boolean {
  return isPublicIp(ip) || onAttachedSubnet(ip, ifaces);
}

/** A public address of either family: IPv4 as isPublicIPv4, IPv6 global unicast. */
export function isPublicIp(ip: string): boolean {
  return net.isIPv6(ip) ? isPublicIPv6(ip) : isPublicIPv4(ip);
}
