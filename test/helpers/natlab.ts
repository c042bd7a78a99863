// A small Internet with real Linux NAT, built from network namespaces, for
// tests that must prove NAT traversal (and later gateway tests that curl through it).
//
//   internet ns: bridge br0, 198.51.100.0/24 (TEST-NET-2)
//     rendezvous ns  198.51.100.1 + .2 (two addresses, for NAT classification)
//     public hosts   198.51.100.10+    (directly on the bridge, no NAT)
//     NAT sites      router WAN 198.51.100.64+n, LAN 10.<n>.0.0/24 (bridge in the router ns)
//
// Site kinds (netfilter does the NAT, nothing is simulated):
//   cone         MASQUERADE: endpoint-independent mapping, port-restricted filtering
//   symmetric    MASQUERADE --random-fully: a new public port per destination
//   double       a cone router (LAN 10.<n>.1.0/24) behind another cone router (LAN 10.<n>.0.0/24)
//   lan          two hosts on one LAN behind one cone router
//   udp-blocked  cone router that drops forwarded UDP; TCP still works
// Every router drops unsolicited packets to its WAN address and forwards WAN->LAN
// only for ESTABLISHED,RELATED flows, like a home router.
//
// Everything lives in namespaces named with the Lab's prefix; nothing touches the root
// namespace. cleanup() (also run on exit, SIGINT and SIGTERM by Lab) removes it all.
//
//   if (!natLabSupport().ok) skip;
//   const lab = new NatLab();
//   const home = lab.addSite('cone', 'home');               // home.hosts[0].ns, .routers[0]
//   startRendezvous({ netns: lab.rendezvous.ns, listen: `${RENDEZVOUS_IP}:9000` });
//   new Agent('a', work, home.hosts[0].ns).start([...]);   // or lab.spawn(ns, ['curl', ...])
//   lab.flushConntrack(home.routers[0]); lab.changeSnat(...); lab.setLoss(..., 0.05);
//   lab.cleanup();
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { Lab, netnsSupport } from './netns.ts';

export type SiteKind = 'public' | 'cone' | 'symmetric' | 'double' | 'lan' | 'udp-blocked';

export const INTERNET_CIDR = '198.51.100.0/24';
export const RENDEZVOUS_IP = '198.51.100.1';
export const RENDEZVOUS_IP2 = '198.51.100.2';

/** A NAT router: its own namespace, WAN on the network above, LAN bridge `lan` below. */
export interface Router {
  readonly ns: string;
  /** WAN interface name inside the router namespace. */
  readonly wan: string;
  /** Primary WAN address (on the bridge of the network above). */
  readonly wanIp: string;
  /** The LAN gateway address (10.x.y.1). */
  readonly lanIp: string;
  readonly mapping: 'cone' | 'symmetric';
  /** The address the router currently maps LAN traffic to (changes with changeSnat). */
  publicIp: string;
}

/** A machine that runs an agent (or a test process). */
export interface Host {
  readonly name: string;
  readonly ns: string;
  /** Its own address: public for `public` hosts, a 10.x address behind NAT. */
  readonly ip: string;
  readonly site: Site;
}

export interface Site {
  readonly name: string;
  readonly kind: SiteKind;
  readonly hosts: Host[];
  /** Routers from the host outwards (double: [inner, outer]); empty for public hosts. */
  readonly routers: Router[];
}

function ifname(name: string): string {
  if (name.length > 15) throw new Error(`interface name ${name} is longer than 15 characters`);
  return name;
}

export class NatLab {
  readonly lab: Lab;
  /** The namespace holding the Internet bridge. */
  readonly internet: string;
  /** The rendezvous machine, 198.51.100.1 and .2. */
  readonly rendezvous: Host;
  readonly sites: Site[] = [];
  private nextPublic = 10;
  private nextSite = 1;
  private nextPort = 1;

  constructor(lab: Lab = new Lab()) {
    this.lab = lab;
    this.internet = lab.ns('inet');
    this.sh(this.internet, 'sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true; ip link add br0 type bridge; ip link set br0 up');
    const site: Site = { name: 'rdv', kind: 'public', hosts: [], routers: [] };
    const ns = lab.ns('rdv');
    this.plug(this.internet, 'br0', ns, 'eth0');
    this.sh(ns, `ip addr add ${RENDEZVOUS_IP}/24 dev eth0; ip addr add ${RENDEZVOUS_IP2}/24 dev eth0`);
    this.rendezvous = { name: 'rdv', ns, ip: RENDEZVOUS_IP, site };
  }

  /** Add a site of `kind`; `name` (short, [a-z0-9]) defaults to kind + a number. */
  addSite(kind: SiteKind, name?: string): Site {
    const n = this.nextSite++;
    const siteName = name ?? `${kind.replace(/[^a-z]/g, '').slice(0, 4)}${n}`;
    const site: Site = { name: siteName, kind, hosts: [], routers: [] };
    if (kind === 'public') {
      const ip = `198.51.100.${this.nextPublic++}`;
      const ns = this.lab.ns(siteName);
      this.plug(this.internet, 'br0', ns, 'eth0');
      this.sh(ns, `ip addr add ${ip}/24 dev eth0`);
      site.hosts.push({ name: siteName, ns, ip, site });
    } else {
      const outer = this.router(`${siteName}-r`, this.internet, `198.51.100.${64 + n}`, `10.${n}.0`, kind === 'symmetric' ? 'symmetric' : 'cone', {
        dropUdp: kind === 'udp-blocked',
      });
      let lan = outer;
      let lanPrefix = `10.${n}.0`;
      if (kind === 'double') {
        // The inner router's WAN sits on the outer router's LAN.
        lan = this.router(`${siteName}-ri`, outer.ns, `10.${n}.0.2`, `10.${n}.1`, 'cone', { uplinkGw: outer.lanIp });
        lanPrefix = `10.${n}.1`;
        site.routers.push(lan);
      }
      site.routers.push(outer);
      const count = kind === 'lan' ? 2 : 1;
      for (let i = 0; i < count; i++) {
        const hostName = count === 1 ? siteName : `${siteName}${String.fromCharCode(97 + i)}`;
        const ns = this.lab.ns(hostName);
        const ip = `${lanPrefix}.${10 + i}`;
        this.plug(lan.ns, 'lan', ns, 'eth0');
        this.sh(ns, `ip addr add ${ip}/24 dev eth0; ip route add default via ${lan.lanIp}`);
        site.hosts.push({ name: hostName, ns, ip, site });
      }
    }
    this.sites.push(site);
    return site;
  }

  /** Run a command in a namespace; throws with stderr on failure. */
  exec(ns: string, cmd: string[]): string {
    return this.lab.exec(ns, cmd);
  }

  /** Run a shell script in a namespace (set -e). */
  sh(ns: string, script: string): string {
    try {
      return this.lab.sh(ns, script);
    } catch (err) {
      const e = err as { stderr?: string };
      throw new Error(`in ${ns}: ${script}\n${e.stderr ?? String(err)}`);
    }
  }

  /** Start a long-running process in a namespace (killed by cleanup() with everything in it). */
  spawn(ns: string, argv: string[], opts: SpawnOptions = {}): ChildProcess {
    return spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
  }

  /** Forget every NAT mapping of a router (as a router reboot or a CGNAT timeout would). */
  flushConntrack(router: Router): void {
    this.sh(router.ns, 'conntrack -F 2>/dev/null || conntrack -F');
  }

  /**
   * Move the router's public address: add a new WAN address and SNAT to it instead of
   * MASQUERADE. Established flows keep their old binding in conntrack, so they are
   * flushed too (as when an ISP changes the address). Returns the new public address.
   */
  changeSnat(router: Router): string {
    const last = Number(router.wanIp.split('.')[3]);
    const base = router.wanIp.split('.').slice(0, 3).join('.');
    const next = `${base}.${router.publicIp === router.wanIp ? last + 96 : Number(router.publicIp.split('.')[3]) + 1}`;
    this.sh(router.ns, `ip addr add ${next}/24 dev ${router.wan}; iptables -t nat -R POSTROUTING 1 -o ${router.wan} -j SNAT --to-source ${next}`);
    router.publicIp = next;
    this.flushConntrack(router);
    return next;
  }

  /** Drop a random fraction p (0..1) of the packets the router forwards, both ways; 0 removes it. */
  setLoss(router: Router, p: number): void {
    this.sh(router.ns, `iptables -D FORWARD -m comment --comment natlab-loss -j LOSS 2>/dev/null || true; iptables -F LOSS 2>/dev/null || iptables -N LOSS`);
    if (p <= 0) return;
    this.sh(
      router.ns,
      `iptables -A LOSS -m statistic --mode random --probability ${p} -j DROP; iptables -I FORWARD 1 -m comment --comment natlab-loss -j LOSS`,
    );
  }

  /** Packets dropped so far by the router's loss rule. */
  lossDrops(router: Router): number {
    const out = this.exec(router.ns, ['iptables', '-L', 'LOSS', '-v', '-x', '-n']);
    return Number(/^\s*(\d+)\s+\d+\s+DROP/m.exec(out)?.[1] ?? 0);
  }

  /** Packets the router dropped at its WAN input (unsolicited traffic to the router itself). */
  wanDrops(router: Router): number {
    const out = this.exec(router.ns, ['iptables', '-L', 'INPUT', '-v', '-x', '-n']);
    return Number(new RegExp(`^\\s*(\\d+)\\s+\\d+\\s+DROP\\s+\\S+\\s+--\\s+${router.wan}\\s`, 'm').exec(out)?.[1] ?? 0);
  }

  /** UDP bytes (both directions) in the router's live flows to or from `ip`: what went direct, not via the rendezvous. */
  udpBytesWith(router: Router, ip: string): number {
    let total = 0;
    const out = this.exec(router.ns, ['conntrack', '-L', '-p', 'udp']).split('\n');
    for (const line of out) {
      const src = /src=(\S+)/.exec(line)?.[1];
      const dst = /dst=(\S+)/.exec(line)?.[1];
      if (src !== ip && dst !== ip) continue;
      for (const m of line.matchAll(/bytes=(\d+)/g)) total += Number(m[1]);
    }
    return total;
  }

  /**
   * Count, in the router's FORWARD path, the bytes exchanged with each of `ips` per protocol
   * (iptables rule counters: exact and monotonic, unlike conntrack's live flows). Read with countedBytes.
   */
  countBytesWith(router: Router, ips: string[]): void {
    const rules = ['iptables -N PEERACCT 2>/dev/null || iptables -F PEERACCT'];
    for (const ip of ips)
      for (const proto of ['udp', 'tcp']) rules.push(`iptables -A PEERACCT -p ${proto} -d ${ip}`, `iptables -A PEERACCT -p ${proto} -s ${ip}`);
    // First (after the loss rule setLoss puts ahead of it): the ACCEPT rules below end the chain for replies.
    rules.push('iptables -C FORWARD -j PEERACCT 2>/dev/null || iptables -I FORWARD 1 -j PEERACCT');
    this.sh(router.ns, rules.join('; '));
  }

  /** Bytes per "udp ip" / "tcp ip" (both directions summed) counted so far by countBytesWith's rules. */
  countedBytes(router: Router): Record<string, number> {
    const out: Record<string, number> = {};
    for (const line of this.exec(router.ns, ['iptables', '-L', 'PEERACCT', '-v', '-x', '-n']).split('\n')) {
      // No target column for counting rules; -n prints the protocol as a number (17 udp, 6 tcp).
      const m = /^\s*\d+\s+(\d+)\s+(udp|tcp|17|6)\s+--\s+\S+\s+\S+\s+(\S+)\s+(\S+)/.exec(line);
      if (!m) continue;
      const ip = m[3] === '0.0.0.0/0' ? m[4]! : m[3]!;
      const key = `${m[2] === '17' || m[2] === 'udp' ? 'udp' : 'tcp'} ${ip}`;
      out[key] = (out[key] ?? 0) + Number(m[1]);
    }
    return out;
  }

  /** Port-forward TCP `ports` arriving at the router's WAN to `host` (as a home router's port forward). */
  forwardTcp(router: Router, host: Host, ports: number[]): void {
    this.sh(
      router.ns,
      ports
        .map(
          (p) =>
            `iptables -t nat -A PREROUTING -i ${router.wan} -p tcp --dport ${p} -j DNAT --to-destination ${host.ip}:${p}; iptables -I FORWARD 1 -i ${router.wan} -p tcp -d ${host.ip} --dport ${p} -j ACCEPT`,
        )
        .join('; '),
    );
  }

  cleanup(): void {
    this.lab.cleanup();
  }

  /** A veth from `ns` (as `name`, inside) to a bridge in `bridgeNs`. */
  private plug(bridgeNs: string, bridge: string, ns: string, name: string): void {
    const port = ifname(`p${this.nextPort++}`);
    this.sh(bridgeNs, `ip link add ${port} type veth peer name ${ifname(name)} netns ${ns}; ip link set ${port} master ${bridge} up`);
    // Each device segments GSO batches itself, as a real NIC does on the wire: a veth would pass a
    // 64-packet UDP GSO send (or a TCP super-packet) through the routers as one skb, and the lab's
    // iptables loss, policing and counters would see one packet where the wire has 64.
    this.sh(ns, `ip link set ${name} gso_max_segs 1; ip link set ${name} up`);
  }

  private router(
    name: string,
    upNs: string,
    wanIp: string,
    lanPrefix: string,
    mapping: 'cone' | 'symmetric',
    opts: { dropUdp?: boolean; uplinkGw?: string },
  ): Router {
    const ns = this.lab.ns(name);
    const wan = 'wan';
    this.plug(upNs, upNs === this.internet ? 'br0' : 'lan', ns, wan);
    const lanIp = `${lanPrefix}.1`;
    const masq = mapping === 'symmetric' ? 'MASQUERADE --random-fully' : 'MASQUERADE';
    this.sh(
      ns,
      [
        `sysctl -qw net.ipv4.ip_forward=1`,
        // The LAN bridge is a switch: bridged frames do not go through this router's iptables.
        `sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true`,
        `ip addr add ${wanIp}/24 dev ${wan}`,
        opts.uplinkGw ? `ip route add default via ${opts.uplinkGw}` : `true`,
        `ip link add lan type bridge`,
        `ip addr add ${lanIp}/24 dev lan`,
        `ip link set lan up`,
        `iptables -t nat -A POSTROUTING -o ${wan} -j ${masq}`,
        // Home-router filtering: nothing unsolicited reaches the router or the LAN.
        `iptables -A INPUT -i ${wan} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`,
        `iptables -A INPUT -i ${wan} -j DROP`,
        opts.dropUdp ? `iptables -A FORWARD -p udp -j DROP` : `true`,
        `iptables -A FORWARD -i ${wan} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`,
        `iptables -A FORWARD -i ${wan} -j DROP`,
        // Byte counters per flow, so tests can see what really crossed the router (udpBytesWith).
        `sysctl -qw net.netfilter.nf_conntrack_acct=1`,
      ].join('; '),
    );
    return { ns, wan, wanIp, lanIp, mapping, publicIp: wanIp };
  }
}

/** Can the NAT lab run here? (root, namespaces, iptables, conntrack) */
export function natLabSupport(): { ok: true } | { ok: false; reason: string } {
  const base = netnsSupport();
  if (!base.ok) return base;
  if (spawnSync('which', ['conntrack']).status !== 0) return { ok: false, reason: 'needs conntrack (apt-get install conntrack)' };
  return { ok: true };
}
