// net.isIP() per packet runs one or two regular expressions (the IPv6 one is
// long): on the send path of every UDP packet it cost about 2% of a daemon's
// CPU in a request/response run. A daemon sends to a handful of addresses, so
// the answers are remembered, in a bounded table (addresses come from peers:
// a flood of new ones only clears it).
import net from 'node:net';

export const MAX_IP_FAMILY_ENTRIES = 256;
const families = new Map<string, 0 | 4 | 6>();

/** net.isIP(host), remembered: 4, 6, or 0 for anything that is not an IP literal. */
export function ipFamily(host: string): 0 | 4 | 6 {
  let f = families.get(host);
  if (f === undefined) {
    f = net.isIP(host) as 0 | 4 | 6;
    if (families.size >= MAX_IP_FAMILY_ENTRIES) families.clear();
    families.set(host, f);
  }
  return f;
}

/** How many answers are remembered (for tests: the table stays bounded). */
export function rememberedFamilies(): number {
  return families.size;
}
