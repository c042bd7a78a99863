// Bigger packets where the path is known to carry them without fragmentation:
// a peer on this host (loopback) or on a directly attached subnet, where the
// interface MTU is the path MTU. Remote paths start at the 1280-safe default and
// are probed (src/transport/mtu-discoverer.ts) up to remotePayloadCeiling().
//
// Node cannot set IP_MTU_DISCOVER, but Linux's default for UDP (IP_PMTUDISC_WANT)
// sends DF on every packet that fits the route's cached PMTU and fragments locally
// only what exceeds it (measured in BENCHMARKS.md, "Path MTU"). So a probe is sent
// with DF unless an ICMP "fragmentation needed" already taught the kernel a smaller
// PMTU, and routePmtu() (the kernel's route cache) tells which: an acked probe
// counts only if it fit. Without `ip` (not Linux) there is no such check and
// remote paths keep the default.
import { execFile, spawnSync } from 'node:child_process';
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

/** IP + UDP header bytes for a path to `host`. */
export function ipUdpHeaders(host: string): number {
  return host.includes(':') ? 48 : IP_UDP_HEADERS;
}

/** The largest IP MTU probed on a remote path: the Internet's common 1500 (jumbo frames end at the LAN). */
const REMOTE_MTU_CAP = 1500;

/** Largest UDP payload worth probing toward a remote `host`: our widest non-tunnel-sized interface, at most 1500. */
export function remotePayloadCeiling(host: string): number {
  let widest = 0;
  for (const [name, list] of Object.entries(os.networkInterfaces())) {
    if (list?.some((n) => n.internal)) continue;
    const mtu = ifaceMtu(name);
    if (mtu !== undefined && mtu > widest) widest = mtu;
  }
  return Math.min(widest, REMOTE_MTU_CAP) - ipUdpHeaders(host);
}

let ipTool: boolean | undefined;

/** Can routePmtu() read the kernel's route cache here (Linux with iproute2)? */
export function routePmtuSupported(): boolean {
  if (ipTool === undefined) ipTool = process.platform === 'linux' && spawnSync('ip', ['-V'], { stdio: 'ignore', timeout: 2000 }).status === 0;
  return ipTool;
}

/**
 * The path MTU the kernel holds for `host` now: the PMTU an ICMP "fragmentation needed" left in the
 * route cache, else the outgoing interface's MTU; undefined when unknown (no `ip`, no route).
 */
export function routePmtu(host: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    if (!routePmtuSupported()) return resolve(undefined);
    execFile('ip', ['route', 'get', host], { timeout: 2000 }, (err, out) => {
      if (err) return resolve(undefined);
      const cached = /\bmtu (\d+)/.exec(out);
      if (cached) return resolve(Number(cached[1]));
      const dev = /\bdev (\S+)/.exec(out);
      resolve(dev ? ifaceMtu(dev[1]!) : undefined);
    });
  });
}
