// Who may use a gateway address: this host only. The mapped addresses are
// local (lo aliases, or a `local` route for the whole subnet), and Linux
// delivers packets for a local address whatever interface they arrive on: a
// LAN neighbour that routes 10.4.0.0/16 via this host would otherwise reach the
// remote agent's services with this host's trust. So every accepted connection
// must come from a local address. A remote cannot fake one: the kernel drops
// packets from outside whose source is one of our own addresses (martian
// source, unless accept_local is set), and a TCP handshake cannot be completed
// blind from a spoofed source anyway.
import os from 'node:os';
import net from 'node:net';

/** Interfaces change (DHCP, VPN up): the address list is re-read at most this often. */
const REFRESH_MS = 1000;

export class LocalPeers {
  private addrs = new Set<string>();
  private readAt = -Infinity;
  private readonly now: () => number;
  private readonly list: () => NodeJS.Dict<os.NetworkInterfaceInfo[]>;

  constructor(opts: { now?: () => number; interfaces?: () => NodeJS.Dict<os.NetworkInterfaceInfo[]> } = {}) {
    this.now = opts.now ?? Date.now;
    this.list = opts.interfaces ?? os.networkInterfaces;
  }

  /**
   * Is `remote` this host? `local` is the address the client connected to:
   * connecting to an address of a `local` route (not on any interface) from
   * this host uses that same address as the source.
   */
  isLocal(remote: string | undefined, local: string | undefined): boolean {
    if (remote === undefined) return false;
    const addr = unmap(remote);
    if (net.isIPv4(addr) && addr.startsWith('127.')) return true;
    if (addr === '::1') return true;
    if (local !== undefined && addr === unmap(local)) return true;
    return this.interfaceAddresses().has(addr);
  }

  private interfaceAddresses(): Set<string> {
    const t = this.now();
    if (t - this.readAt >= REFRESH_MS) {
      const next = new Set<string>();
      for (const infos of Object.values(this.list())) for (const i of infos ?? []) next.add(unmap(i.address));
      this.addrs = next;
      this.readAt = t;
    }
    return this.addrs;
  }
}

/** ::ffff:10.4.0.1 (a dual-stack socket) is 10.4.0.1. */
function unmap(addr: string): string {
  return addr.startsWith('::ffff:') && net.isIPv4(addr.slice(7)) ? addr.slice(7) : addr;
}
