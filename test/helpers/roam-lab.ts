// A host that moves between NAT sites of a NatLab, as a laptop moves from one
// Wi-Fi to another: it has one veth into the LAN of each router it may use, and
// a move takes its address off the old one, puts a new address on the new one
// and points the default route there. The daemon's socket (bound to 0.0.0.0)
// stays open, exactly as on a real laptop; only its NAT and its LAN address change.
import type { NatLab, Router, Site } from './natlab.ts';

export class RoamingHost {
  readonly name: string;
  readonly ns: string;
  private readonly lab: NatLab;
  private readonly routers: Router[];
  /** Index of the site it is on now (-1: none yet). */
  at = -1;

  constructor(lab: NatLab, name: string, sites: readonly Site[]) {
    this.lab = lab;
    this.name = name;
    this.ns = lab.lab.ns(name);
    this.routers = sites.map((s) => s.routers[0]!);
    this.routers.forEach((r, i) => {
      // One veth per site; the router end joins the site's LAN bridge.
      const port = `rm${i}${name}`.slice(0, 15);
      lab.sh(r.ns, `ip link add ${port} type veth peer name e${i} netns ${this.ns}; ip link set ${port} master lan up`);
      // segments GSO batches itself, as a wire does (natlab.ts plug())
      lab.sh(this.ns, `ip link set e${i} gso_max_segs 1; ip link set e${i} up`);
    });
  }

  /** This host's LAN address on site i (10.n.0.50). */
  ipOn(i: number): string {
    return `${this.routers[i]!.lanIp.split('.').slice(0, 3).join('.')}.50`;
  }

  /** The router of site i. */
  router(i: number): Router {
    return this.routers[i]!;
  }

  /**
   * Move to site i: a fresh NAT for it (the router's conntrack is flushed first, so no
   * mapping from an earlier visit survives), then the address and the default route.
   * `peerRouters` forget their flows to the new public address too: MASQUERADE keeps
   * the source port, so a peer's router would still hold the flow from an earlier
   * visit and let the mover through without any punching. Returns the new public address.
   */
  moveTo(i: number, peerRouters: readonly Router[] = []): string {
    const r = this.routers[i]!;
    this.lab.flushConntrack(r);
    for (const p of peerRouters) this.lab.sh(p.ns, `conntrack -D --orig-dst ${r.publicIp} >/dev/null 2>&1 || true`);
    const flush = this.routers.map((_, j) => `ip -4 addr flush dev e${j}`).join('; ');
    this.lab.sh(this.ns, `${flush}; ip addr add ${this.ipOn(i)}/24 dev e${i}; ip route replace default via ${r.lanIp} dev e${i}`);
    this.at = i;
    return r.publicIp;
  }
}
