// The default IPv4 gateway: the only host we ask for a port mapping (PCP,
// NAT-PMP, UPnP). Never an address a peer or the rendezvous names: a mapping
// request is an instruction to open our host to the internet, so it goes to
// the router our own routing table says we are behind (as Tailscale's
// portmapper, which asks the gateway from the routing table).
import fs from 'node:fs';

const RTF_UP = 0x1;
const RTF_GATEWAY = 0x2;

/**
 * The gateway of the default route in /proc/net/route's text (Linux): the line
 * with destination and mask 0, flags UP|GATEWAY, lowest metric first. Addresses
 * there are little-endian hex (0101A8C0 = 192.168.1.1).
 */
export function parseProcNetRoute(text: string): { iface: string; gateway: string } | undefined {
  let best: { iface: string; gateway: string; metric: number } | undefined;
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [iface, dest, gw, flagsHex, , , metricText, mask] = f as [string, string, string, string, string, string, string, string];
    const flags = Number.parseInt(flagsHex, 16);
    if (dest !== '00000000' || mask !== '00000000' || (flags & (RTF_UP | RTF_GATEWAY)) !== (RTF_UP | RTF_GATEWAY)) continue;
    if (!/^[0-9A-Fa-f]{8}$/.test(gw)) continue;
    const n = Number.parseInt(gw, 16);
    const gateway = [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff].join('.');
    if (gateway === '0.0.0.0') continue;
    const metric = Number(metricText);
    if (best === undefined || metric < best.metric) best = { iface, gateway, metric };
  }
  return best && { iface: best.iface, gateway: best.gateway };
}

/** The default gateway, or undefined (no default route, or not Linux: no mapping is asked for). */
export function defaultGateway(routeFile = '/proc/net/route'): string | undefined {
  try {
    return parseProcNetRoute(fs.readFileSync(routeFile, 'utf8'))?.gateway;
  } catch {
    return undefined;
  }
}
