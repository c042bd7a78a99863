// Which IPv6 candidates a peer may make us probe. Like Tailscale (its
// interfaces package keeps global unicast and drops link-local, which needs a
// zone) and iroh (direct addresses are global or on-link): a global unicast
// address is public; a ULA (fc00::/7) is like private IPv4, probed only on a
// prefix we are attached to; link-local, multicast, loopback, unspecified, NAT64
// (we synthesise those ourselves, never from a peer's word) and IPv4-mapped
// addresses never (a mapped address must arrive as plain IPv4 and pass the IPv4
// checks). 2001:db8::/32 counts as public, as TEST-NET does for IPv4: the lab uses it.
import net from 'node:net';
import { canonicalIp, classifyIpv6 } from '../util/ip6.ts';

export function isPublicIPv6(ip: string): boolean {
  const c = classifyIpv6(ip);
  return c === 'global' || c === 'documentation';
}

type Ifaces = NodeJS.Dict<Array<{ family: string | number; address: string; netmask: string; cidr?: string | null }>>;

/** A ULA (or global) `ip` on a prefix one of our interfaces has; never link-local and the like. */
export function onAttachedIpv6Subnet(ip: string, ifaces: Ifaces): boolean {
  const c = classifyIpv6(ip);
  if (c !== 'ula' && c !== 'global' && c !== 'documentation') return false;
  const list = new net.BlockList();
  let any = false;
  for (const nis of Object.values(ifaces)) {
    for (const ni of nis ?? []) {
      if (ni.family !== 'IPv6' && ni.family !== 6) continue;
      const prefix = Number(ni.cidr?.split('/')[1] ?? prefixLength(ni.netmask));
      if (!Number.isInteger(prefix) || prefix < 8 || prefix > 128) continue;
      if (classifyIpv6(ni.address) === 'link-local') continue;
      list.addSubnet(ni.address, prefix, 'ipv6');
      any = true;
    }
  }
  return any && list.check(ip, 'ipv6');
}

function prefixLength(netmask: string): number {
  let bits = 0;
  for (const g of netmask.split(':')) if (g) bits += Number.parseInt(g, 16).toString(2).replace(/0/g, '').length;
  return bits;
}

/**
 * An IPv6 address of ours worth advertising as a host candidate: global, or ULA
 * (some networks translate it), never link-local. As Tailscale's isUsableV6
 * (netmon): 2000::/3 or fc00::/7, except Tailscale's own ULA range, fd7a:115c:a1e0::/48,
 * which is another overlay's tunnel address, not a path to the host.
 */
export function advertisableIpv6(ip: string): boolean {
  const c = classifyIpv6(ip);
  if (c === 'ula' && /^fd7a:115c:a1e0:/i.test(canonicalIp(ip))) return false;
  return c === 'global' || c === 'documentation' || c === 'ula';
}
