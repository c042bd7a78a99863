// IPv6 address arithmetic the dual-stack underlay needs and node:net lacks:
// bytes <-> canonical text (RFC 5952, so addresses compare as strings), IPv4-mapped
// addresses from dual-stack sockets, and NAT64 address synthesis (RFC 6052).
import net from 'node:net';

/** The 16 bytes of an IPv6 literal (dotted IPv4 tail allowed), or undefined. */
export function parseIpv6(ip: string): Uint8Array | undefined {
  if (!net.isIPv6(ip) || ip.includes('%')) return undefined;
  let text = ip;
  const tail: number[] = [];
  const dotted = /(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  if (dotted) {
    const o = dotted[1]!.split('.').map(Number);
    tail.push((o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!);
    text = `${text.slice(0, dotted.index)}0:0`;
  }
  const [head, rest] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = rest ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  if (groups.length !== 8) return undefined;
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const v = i >= 6 && tail.length === 2 ? tail[i - 6]! : Number.parseInt(groups[i]!, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  }
  return out;
}

/** RFC 5952 text: lower case, no leading zeros, the longest run (>= 2) of zero groups as "::". */
export function formatIpv6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i]! << 8) | b[i + 1]!);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/** Canonical text of any IP literal (IPv4 unchanged, IPv6 per RFC 5952); anything else unchanged. */
export function canonicalIp(ip: string): string {
  const b = parseIpv6(ip);
  return b ? formatIpv6(b) : ip;
}

function v4Of(b: Uint8Array, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/** ::ffff:a.b.c.d (how a dual-stack socket reports an IPv4 peer) as plain a.b.c.d; anything else unchanged. */
export function unmapIpv4(ip: string): string {
  const b = parseIpv6(ip);
  if (!b || !isMapped(b)) return ip;
  return v4Of(b, 12);
}

function isMapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** a.b.c.d as ::ffff:a.b.c.d, the form a dual-stack (udp6) socket sends IPv4 to. */
export function mapIpv4(ip: string): string {
  return `::ffff:${ip}`;
}

/** RFC 6052's well-known NAT64 prefix, 64:ff9b::/96. */
export const WELL_KNOWN_NAT64_PREFIX = '64:ff9b::';

/** A /96 NAT64 prefix (the first 12 bytes), from the prefix's text ("64:ff9b::"). */
export function nat64Prefix(text: string): Uint8Array | undefined {
  const b = parseIpv6(text);
  return b ? b.slice(0, 12) : undefined;
}

/** The IPv6 address a NAT64 with `prefix` (/96) uses for IPv4 `v4` (RFC 6052 section 2.2). */
export function synthesizeNat64(prefix: Uint8Array, v4: string): string {
  const b = new Uint8Array(16);
  b.set(prefix.subarray(0, 12), 0);
  const o = v4.split('.');
  for (let i = 0; i < 4; i++) b[12 + i] = Number(o[i]);
  return formatIpv6(b);
}

/** The IPv4 address inside `ip` if it lies in the /96 `prefix`, else undefined. */
export function extractNat64(prefix: Uint8Array, ip: string): string | undefined {
  const b = parseIpv6(ip);
  if (!b) return undefined;
  for (let i = 0; i < 12; i++) if (b[i] !== prefix[i]) return undefined;
  return v4Of(b, 12);
}

export type Ipv6Class = 'unspecified' | 'loopback' | 'v4-mapped' | 'nat64' | 'link-local' | 'ula' | 'multicast' | 'documentation' | 'global' | 'other';

/** What kind of IPv6 address `ip` is (undefined: not IPv6). */
export function classifyIpv6(ip: string): Ipv6Class | undefined {
  const b = parseIpv6(ip);
  if (!b) return undefined;
  if (b.every((x, i) => x === 0 || (i === 15 && x === 1))) return b[15] === 1 ? 'loopback' : 'unspecified';
  if (isMapped(b)) return 'v4-mapped';
  if (b[0] === 0xff) return 'multicast';
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return 'link-local';
  if ((b[0]! & 0xfe) === 0xfc) return 'ula';
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b) return 'nat64';
  if (b[0] === 0x20 && b[1] === 0x01 && b[2] === 0x0d && b[3] === 0xb8) return 'documentation';
  if ((b[0]! & 0xe0) === 0x20) return 'global';
  return 'other';
}
