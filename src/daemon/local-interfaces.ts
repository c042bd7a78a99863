// Which local addresses are direct-path candidates, and which interface a
// direct path leaves by (issue 19, "candidates that are someone else's tunnel").
//
// Every address on the host used to be advertised: with Nebula on both hosts,
// Pilot probed the peer's Nebula address, found it answered, and sent its
// traffic through Nebula's tunnel (a VPN inside a VPN, shown as "direct").
// Another overlay's addresses are not ours to use, so they are left out, as
// Tailscale's netmon leaves out its own tailscale* / utun interfaces and, since
// ZeroTier and Tailscale amplified each other's traffic (tailscale#1208), zt*
// interfaces too. A tunnel is recognised (Linux, /sys/class/net/<if>) by:
//   - IFF_POINTOPOINT in `flags` (ipip, gre, sit, wireguard, ppp, most tun);
//   - a link type with no link-layer address in `type`: 65534 ARPHRD_NONE
//     (tun, wireguard), 768 ipip, 769 ip6tnl, 776 sit, 778 gre, 823 ip6gre;
//   - a tunnel-ish name: tun*, tap*, wg*, nebula*, tailscale*, utun*, zt*,
//     ipsec*, vti*, ppp* (the only test on systems without /sys).
// A real uplink that looks like this (PPPoE, a raw-IP modem) loses only its
// host candidate: the endpoint the rendezvous observed still goes out, and that
// is the one a peer across the Internet uses. `candidateInterfaces` (config,
// `--candidate-interfaces`) names interfaces to advertise anyway.
import fs from 'node:fs';
import os from 'node:os';
import { PilotError } from '../util/errors.ts';

type Interfaces = Record<string, os.NetworkInterfaceInfo[] | undefined>;

const IFF_POINTOPOINT = 0x10;
/** ARPHRD_* link types of tunnels: no Ethernet below them. */
const TUNNEL_LINK_TYPES = new Map<number, string>([
  [65534, 'no link layer (tun/wireguard)'],
  [768, 'ipip tunnel'],
  [769, 'ip6 tunnel'],
  [776, 'sit tunnel'],
  [778, 'gre tunnel'],
  [823, 'ip6gre tunnel'],
  [512, 'ppp link'],
]);
const TUNNEL_NAMES = /^(tun|tap|wg|nebula|tailscale|utun|zt|ipsec|vti|ppp)/i;
const IFNAME = /^[A-Za-z0-9_.:@-]{1,15}$/;

export interface LocalInterfacesOptions {
  /** Interfaces to advertise even though they look like tunnels. */
  include?: readonly string[];
  /** Seams for tests: the interface list, and the sysfs folder. */
  list?: () => Interfaces;
  sysfs?: string;
  /** /proc/net/route (IPv4 routes), for which interface a path leaves by. */
  routes?: string;
}

/** Parse `candidateInterfaces` ("nebula1,wg0"): checked names, or a coded error naming the bad one. */
export function parseInterfaceList(text: string | undefined): string[] {
  if (text === undefined || text.trim() === '') return [];
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const n of names)
    if (!IFNAME.test(n))
      throw new PilotError(
        'BAD_ARGUMENT',
        `candidateInterfaces: ${JSON.stringify(n)} is not an interface name`,
        'a comma-separated list of interface names as `ip link` shows them, e.g. --candidate-interfaces nebula1,wg0',
      );
  return names;
}

export class LocalInterfaces {
  private readonly include: ReadonlySet<string>;
  private readonly list: () => Interfaces;
  private readonly sysfs: string;
  private readonly routesFile: string;
  private reasons = new Map<string, string | undefined>();
  private usableCache: { at: number; ifaces: Interfaces } | undefined;
  private routeCache: { at: number; routes: Route[] } | undefined;
  private localCache: { at: number; addrs: Set<string> } | undefined;

  constructor(opts: LocalInterfacesOptions = {}) {
    this.include = new Set(opts.include ?? []);
    this.list = opts.list ?? os.networkInterfaces;
    this.sysfs = opts.sysfs ?? '/sys/class/net';
    this.routesFile = opts.routes ?? '/proc/net/route';
  }

  /** Why `name` is someone else's tunnel (undefined: a plain interface, or one configured in). */
  tunnelReason(name: string): string | undefined {
    if (this.include.has(name)) return undefined;
    const read = (f: string): string | undefined => {
      try {
        return fs.readFileSync(`${this.sysfs}/${name}/${f}`, 'utf8').trim();
      } catch {
        return undefined;
      }
    };
    const flags = Number.parseInt(read('flags') ?? '', 16);
    if (Number.isFinite(flags) && flags & IFF_POINTOPOINT) return 'point-to-point';
    const type = TUNNEL_LINK_TYPES.get(Number(read('type')));
    if (type) return type;
    if (/DEVTYPE=wireguard/.test(read('uevent') ?? '')) return 'wireguard';
    if (TUNNEL_NAMES.test(name)) return 'tunnel name';
    return undefined;
  }

  /** The host's interfaces without loopback-only and tunnel ones: what NetCheck gathers candidates from. */
  usable(): Interfaces {
    // Asked per punching round (probeable) and per network poll: a second old is fresh enough.
    const now = Date.now();
    if (this.usableCache && now - this.usableCache.at < 1_000) return this.usableCache.ifaces;
    const out: Interfaces = {};
    const seen = new Map<string, string | undefined>();
    for (const [name, list] of Object.entries(this.list())) {
      const reason = this.tunnelReason(name);
      seen.set(name, reason);
      if (reason === undefined) out[name] = list;
    }
    this.reasons = seen;
    this.usableCache = { at: now, ifaces: out };
    return out;
  }

  /** Interfaces left out at the last look, with why (for logs and `pilotctl info`). */
  excluded(): Array<{ name: string; reason: string }> {
    return [...this.reasons].filter((e): e is [string, string] => e[1] !== undefined).map(([name, reason]) => ({ name, reason }));
  }

  /**
   * The interface a packet to `ip` leaves by: longest prefix in the main IPv4
   * routing table (what the kernel picks for our unconnected socket, bar policy
   * routing). Undefined: no route, or not Linux.
   */
  routeInterface(ip: string): string | undefined {
    const target = ipv4ToInt(ip);
    if (target === undefined) return undefined;
    // The kernel's local table (not in /proc/net/route): loopback and our own addresses go by lo.
    if (target >>> 24 === 127 || this.localAddresses().has(ip)) return 'lo';
    let best: Route | undefined;
    for (const r of this.routes()) if ((target & r.mask) >>> 0 === r.dest && (best === undefined || r.bits > best.bits)) best = r;
    return best?.iface;
  }

  /**
   * Our own addresses, re-read at most once a second like the routes: `ping` asks per probe and
   * `peers` per peer, and each read of the interface list is a netlink dump of every address.
   */
  private localAddresses(): Set<string> {
    const now = Date.now();
    if (this.localCache && now - this.localCache.at < 1_000) return this.localCache.addrs;
    const addrs = new Set<string>();
    for (const list of Object.values(this.list())) for (const ni of list ?? []) addrs.add(ni.address);
    this.localCache = { at: now, addrs };
    return addrs;
  }

  private routes(): Route[] {
    const now = Date.now();
    if (this.routeCache && now - this.routeCache.at < 1_000) return this.routeCache.routes;
    let text = '';
    try {
      text = fs.readFileSync(this.routesFile, 'utf8');
    } catch {
      /* not Linux: no route table to read */
    }
    const routes: Route[] = [];
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 8) continue;
      // /proc/net/route prints addresses as little-endian hex.
      const dest = leHex(f[1]!);
      const mask = leHex(f[7]!);
      if (dest === undefined || mask === undefined) continue;
      routes.push({ iface: f[0]!, dest, mask, bits: popcount(mask) });
    }
    this.routeCache = { at: now, routes };
    return routes;
  }
}

interface Route {
  iface: string;
  dest: number;
  mask: number;
  bits: number;
}

function ipv4ToInt(ip: string): number | undefined {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((n) => !Number.isInteger(n) || n < 0 || n > 255)) return undefined;
  return p.reduce((a, o) => ((a << 8) | o) >>> 0, 0);
}

function leHex(h: string): number | undefined {
  if (!/^[0-9A-Fa-f]{8}$/.test(h)) return undefined;
  const n = Number.parseInt(h, 16);
  return (((n & 0xff) << 24) | (((n >>> 8) & 0xff) << 16) | (((n >>> 16) & 0xff) << 8) | ((n >>> 24) & 0xff)) >>> 0;
}

function popcount(n: number): number {
  let c = 0;
  for (let x = n >>> 0; x; x >>>= 1) c += x & 1;
  return c;
}
