// IPv6 for the NAT lab (natlab.ts): the same bridge also carries an IPv6
// internet, 2001:db8::/64 (documentation prefix, public in the lab as TEST-NET is
// for IPv4), and sites can be made dual-stack or IPv6-only behind NAT64.
//
//   rendezvous             2001:db8::1 (and still 198.51.100.1/.2)
//   site n router WAN      2001:db8::64+n  (next to its IPv4 WAN address)
//   site n LAN             2001:db8:n::/64, router 2001:db8:n::1, hosts 2001:db8:n::10+
//
// dualStack(site): the router routes the site's /64 (no NAT: IPv6 has none) with a
//   stateful ip6tables firewall like a home router's: nothing unsolicited gets in
//   (FORWARD from the WAN only ESTABLISHED,RELATED), so two such sites still need
//   a simultaneous open, exactly as with NAT. Neighbour discovery is let through.
// nat64(site): the host loses IPv4 altogether (an IPv6-only mobile/cloud network);
//   the router runs Debian's tayga (a real stateless NAT64) for 2001:db8:64::/96, and
//   its IPv4 MASQUERADE maps the translated flows onto its WAN address. The
//   host's /etc/netns/<ns>/hosts (which `ip netns exec` bind-mounts over
//   /etc/hosts) plays DNS64: names of IPv4-only machines answer with synthesised
//   AAAA records, and ipv4only.arpa with 2001:db8:64::192.0.0.170 (RFC 7050).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { NatLab, Router, Site, Host } from './natlab.ts';

export const INTERNET6_PREFIX = '2001:db8::';
export const RENDEZVOUS_IP6 = '2001:db8::1';
/**
 * The lab's NAT64 prefix, a network-specific one (as many carriers use) rather than
 * the well-known 64:ff9b::/96, for two reasons: tayga (rightly, RFC 6052 section 3.1)
 * drops traffic between the well-known prefix and non-global IPv4 such as the lab's
 * TEST-NET-2 (and tayga 0.9.2 refuses RFC 8215's 64:ff9b:1::/48 as reserved), and
 * a network-specific prefix proves the daemon learns it (RFC 7050) rather than assuming it.
 */
export const NAT64_PREFIX = '2001:db8:64::';

/** IPv4 a.b.c.d inside the lab's NAT64 /96, as its DNS64 would synthesise it. */
export function nat64Of(v4: string): string {
  const o = v4.split('.').map(Number);
  return `${NAT64_PREFIX}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
}

/** Can the IPv6 lab run (ip6tables), and the NAT64 one (tayga, /dev/net/tun)? */
export function v6LabSupport(): { ok: true } | { ok: false; reason: string } {
  if (spawnSync('which', ['ip6tables']).status !== 0) return { ok: false, reason: 'needs ip6tables (apt-get install iptables)' };
  return { ok: true };
}
export function nat64Support(): { ok: true } | { ok: false; reason: string } {
  if (spawnSync('which', ['tayga']).status !== 0) return { ok: false, reason: 'needs tayga (apt-get install tayga)' };
  if (!fs.existsSync('/dev/net/tun')) return { ok: false, reason: 'needs /dev/net/tun (tayga makes a tun device)' };
  return { ok: true };
}

interface Site6 {
  site: Site;
  router: Router;
  /** The router's IPv6 WAN address (dual-stack sites only). */
  wan6?: string;
  prefix: string;
}

export class NatLabV6 {
  readonly lab: NatLab;
  private readonly sites6: Site6[] = [];
  private readonly etcDirs: string[] = [];
  private readonly tmp: string;
  /** Namespaces on the IPv6 internet (the rendezvous and dual-stack routers), for routes to every site. */
  private readonly onBridge: string[] = [];
  private n = 0;

  constructor(lab: NatLab) {
    this.lab = lab;
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'natlab6-'));
    // Ctrl-C or a crash must not leave /etc/netns entries behind (netns.ts exits on signals, so 'exit' runs).
    process.once('exit', () => this.cleanup());
    const rdv = lab.rendezvous.ns;
    this.sh(lab.internet, 'sysctl -qw net.bridge.bridge-nf-call-ip6tables=0 2>/dev/null || true');
    this.sh(rdv, `sysctl -qw net.ipv6.conf.all.disable_ipv6=0; ip -6 addr add ${RENDEZVOUS_IP6}/64 dev eth0 nodad`);
    this.onBridge.push(rdv);
  }

  /** IPv6 address of host `h` (dual-stack or IPv6-only site), set by dualStack()/nat64(). */
  readonly ip6 = new Map<Host, string>();

  /** Give a one-router site (cone, symmetric, udp-blocked...) a routed, firewalled IPv6 /64 as well. */
  dualStack(site: Site): Site6 {
    const router = site.routers.at(-1)!;
    if (site.routers.length !== 1) throw new Error('dualStack: one-router sites only');
    const k = ++this.n;
    const wan6 = `2001:db8::${(0x64 + k).toString(16)}`;
    const prefix = `2001:db8:${k}::`;
    this.sh(
      router.ns,
      [
        `sysctl -qw net.ipv6.conf.all.forwarding=1`,
        `sysctl -qw net.bridge.bridge-nf-call-ip6tables=0 2>/dev/null || true`,
        `ip -6 addr add ${wan6}/64 dev ${router.wan} nodad`,
        `ip -6 addr add ${prefix}1/64 dev lan nodad`,
        // Home-router IPv6 firewall (RFC 6092): neighbour discovery and replies in, nothing unsolicited.
        `ip6tables -A INPUT -p ipv6-icmp -j ACCEPT`,
        `ip6tables -A INPUT -i ${router.wan} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`,
        `ip6tables -A INPUT -i ${router.wan} -j DROP`,
        `ip6tables -A FORWARD -i ${router.wan} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`,
        `ip6tables -A FORWARD -i ${router.wan} -p ipv6-icmp --icmpv6-type echo-request -j ACCEPT`,
        `ip6tables -N WAN6DROP`,
        `ip6tables -A WAN6DROP -j DROP`,
        `ip6tables -A FORWARD -i ${router.wan} -j WAN6DROP`,
      ].join('; '),
    );
    const s6: Site6 = { site, router, wan6, prefix };
    this.addHosts6(s6, true);
    // Every namespace on the IPv6 internet learns the route to the new /64, and the new router learns the others.
    for (const ns of this.onBridge) this.sh(ns, `ip -6 route add ${prefix}/64 via ${wan6}`);
    for (const other of this.sites6) if (other.wan6) this.sh(router.ns, `ip -6 route add ${other.prefix}/64 via ${other.wan6}`);
    this.onBridge.push(router.ns);
    this.sites6.push(s6);
    return s6;
  }

  /**
   * Make a one-router site IPv6-only behind NAT64 (tayga in the router). The host
   * keeps no IPv4 address or route; `dns64` names (IPv4-only machines) resolve
   * there to their NAT64 form, ipv4only.arpa to 192.0.0.170 in the NAT64 prefix.
   */
  nat64(site: Site, dns64: Record<string, string> = {}): Site6 {
    const router = site.routers.at(-1)!;
    const k = ++this.n;
    const prefix = `2001:db8:${k}::`;
    const conf = path.join(this.tmp, `${router.ns}.tayga.conf`);
    const data = path.join(this.tmp, `${router.ns}.tayga`);
    fs.mkdirSync(data, { recursive: true });
    fs.writeFileSync(
      conf,
      [
        'tun-device nat64',
        'ipv4-addr 192.168.255.1',
        `ipv6-addr ${prefix}ffff`,
        `prefix ${NAT64_PREFIX}/96`,
        'dynamic-pool 192.168.255.0/24',
        `data-dir ${data}`,
        '',
      ].join('\n'),
    );
    this.sh(
      router.ns,
      [
        `sysctl -qw net.ipv6.conf.all.forwarding=1`,
        `ip -6 addr add ${prefix}1/64 dev lan nodad`,
        `tayga -c ${conf} --mktun`,
        `ip link set nat64 up`,
        `ip route add 192.168.255.0/24 dev nat64`,
        `ip -6 route add ${NAT64_PREFIX}/96 dev nat64`,
      ].join('; '),
    );
    const proc = this.lab.spawn(router.ns, ['sh', '-c', `exec stdbuf -oL -eL tayga -c ${conf} -d >${data}/log 2>&1`]);
    proc.stderr?.on('data', (d: Buffer) => process.env.NATLAB_DEBUG && process.stderr.write(d));
    proc.stdout?.on('data', (d: Buffer) => process.env.NATLAB_DEBUG && process.stderr.write(d));
    const s6: Site6 = { site, router, prefix };
    this.addHosts6(s6, false);
    for (const h of site.hosts) {
      // DNS64 in a file: `ip netns exec` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts.
      const dir = path.join('/etc/netns', h.ns);
      fs.mkdirSync(dir, { recursive: true });
      this.etcDirs.push(dir);
      const lines = ['127.0.0.1 localhost', '::1 localhost', `${nat64Of('192.0.0.170')} ipv4only.arpa`];
      for (const [name, v4] of Object.entries(dns64)) lines.push(`${nat64Of(v4)} ${name}`);
      fs.writeFileSync(path.join(dir, 'hosts'), `${lines.join('\n')}\n`);
    }
    this.sites6.push(s6);
    return s6;
  }

  /** Packets the router's IPv6 firewall dropped coming in from the WAN (unsolicited). */
  wan6Drops(router: Router): number {
    const out = this.lab.exec(router.ns, ['ip6tables', '-L', 'WAN6DROP', '-v', '-x', '-n']);
    return Number(/^\s*(\d+)\s+\d+\s+DROP/m.exec(out)?.[1] ?? 0);
  }

  /** UDP bytes (both ways) in the router's IPv6 flows to or from `ip`: what went direct over IPv6. */
  udp6BytesWith(router: Router, ip: string): number {
    const r = spawnSync('ip', ['netns', 'exec', router.ns, 'conntrack', '-L', '-f', 'ipv6', '-p', 'udp'], { encoding: 'utf8' });
    let total = 0;
    for (const line of r.stdout.split('\n')) {
      const src = /src=(\S+)/.exec(line)?.[1];
      const dst = /dst=(\S+)/.exec(line)?.[1];
      if (src !== ip && dst !== ip) continue;
      for (const m of line.matchAll(/bytes=(\d+)/g)) total += Number(m[1]);
    }
    return total;
  }

  /** Packets tayga translated (its tun device's counters in the router). */
  nat64Packets(router: Router): number {
    const out = this.lab.exec(router.ns, ['cat', '/sys/class/net/nat64/statistics/rx_packets']);
    return Number(out.trim());
  }

  cleanup(): void {
    for (const d of this.etcDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }

  private addHosts6(s6: Site6, keepV4: boolean): void {
    s6.site.hosts.forEach((h, i) => {
      const ip = `${s6.prefix}${(0x10 + i).toString(16)}`;
      this.sh(
        h.ns,
        [
          `sysctl -qw net.ipv6.conf.all.disable_ipv6=0`,
          `ip -6 addr add ${ip}/64 dev eth0 nodad`,
          `ip -6 route add default via ${s6.prefix}1`,
          keepV4 ? 'true' : `ip -4 addr flush dev eth0; ip -4 route flush dev eth0 2>/dev/null || true`,
        ].join('; '),
      );
      this.ip6.set(h, ip);
    });
  }

  private sh(ns: string, script: string): string {
    return this.lab.sh(ns, script);
  }
}
