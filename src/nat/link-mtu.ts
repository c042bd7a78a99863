// Bigger packets where the path is known to carry them without fragmentation:
// a peer on this host (loopback) or on a directly attached subnet, where the
// interface MTU is the path MTU. Node cannot set DF on UDP sockets, so remote
// paths cannot be probed safely (a probe would just be fragmented and "work",
// then lose whole packets to one lost fragment): they keep the 1280-safe default.
import fs from 'node:fs';
import os from 'node:os';

/** Largest UDP payload used even where the link allows more (loss and latency per packet). */
export const MAX_LINK_PAYLOAD = 16_384;
const IP_UDP_HEADERS = 28;

function ipToInt(ip: string): number {
  return ip.split('.').reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);
}

function ifaceMtu(name: string): number | undefined {
  try {
    const v = Number(fs.readFileSync(`/sys/class/net/${name}/mtu`, 'utf8').trim());
    return Number.isInteger(v) && v >= 576 ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Largest safe UDP payload toward `host`, or undefined when it is not on-link (use the default). */
export function onLinkPayload(host: string): number | undefined {
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) return undefined;
  const target = ipToInt(host);
  for (const [name, list] of Object.entries(os.networkInterfaces())) {
    for (const ni of list ?? []) {
      if (ni.family !== 'IPv4') continue;
      const mask = ipToInt(ni.netmask);
      const own = ni.address === host;
      const loop = ni.internal && (target & mask) === (ipToInt(ni.address) & mask);
      const sameSubnet = !ni.internal && (target & mask) === (ipToInt(ni.address) & mask);
      if (!own && !loop && !sameSubnet) continue;
      // Our own address is reached over loopback whatever interface holds it.
      const mtu = own || loop ? (ifaceMtu('lo') ?? 65_536) : ifaceMtu(name);
      if (mtu === undefined) return undefined;
      return Math.min(mtu - IP_UDP_HEADERS, MAX_LINK_PAYLOAD);
    }
  }
  return undefined;
}
