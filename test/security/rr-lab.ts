// A routed lab for return-routability tests: one namespace `rdv` is the
// router and runs the rendezvous (10.99.0.1 on its loopback); every other
// namespace hangs off it on its own /24 (10.99.<i>.2, gateway 10.99.<i>.1).
// The router does no source filtering (rp_filter off), like most of the
// Internet, so a namespace may send with any source address it owns - the
// attacker namespace owns the victims' addresses too (as /32s), which is how
// spoofed packets reach the rendezvous while its answers go to the victims.
// Forwarded UDP between the namespaces is dropped: nodes reach each other
// only through the relay (the rendezvous itself is local to the router).
import { Lab, netnsSupport } from '../helpers/netns.ts';

export const RDV_IP = '10.99.0.1';

export interface RrLab {
  lab: Lab;
  rdv: string;
  /** name -> namespace and its address 10.99.<i>.2 */
  hosts: Record<string, { ns: string; ip: string }>;
  cleanup(): void;
}

export function rrLabSupport(): { ok: true } | { ok: false; reason: string } {
  return netnsSupport();
}

export function buildRrLab(names: string[]): RrLab {
  const lab = new Lab();
  try {
    const rdv = lab.ns('rdv');
    lab.sh(
      rdv,
      [
        `ip addr add ${RDV_IP}/32 dev lo`,
        'sysctl -qw net.ipv4.ip_forward=1',
        'sysctl -qw net.ipv4.conf.all.rp_filter=0',
        'sysctl -qw net.ipv4.conf.default.rp_filter=0',
        'iptables -A FORWARD -p udp -j DROP',
      ].join('; '),
    );
    const hosts: RrLab['hosts'] = {};
    names.forEach((name, i) => {
      const ns = lab.ns(name);
      const n = i + 1;
      lab.sh(
        rdv,
        `ip link add s${n} type veth peer name eth0 netns ${ns}; ip addr add 10.99.${n}.1/24 dev s${n}; ip link set s${n} up; sysctl -qw net.ipv4.conf.s${n}.rp_filter=0`,
      );
      lab.sh(ns, `ip addr add 10.99.${n}.2/24 dev eth0; ip link set eth0 up; ip route add default via 10.99.${n}.1`);
      hosts[name] = { ns, ip: `10.99.${n}.2` };
    });
    return { lab, rdv, hosts, cleanup: () => lab.cleanup() };
  } catch (err) {
    lab.cleanup();
    throw err;
  }
}

/** Let `attackerNs` send with `ip` as its source (the address stays routed to its real owner). */
export function ownSpoofedAddress(lab: RrLab, attackerNs: string, ip: string): void {
  lab.lab.sh(attackerNs, `ip addr add ${ip}/32 dev eth0`);
}

/** Cleanups run last-in first-out (daemons and sockets before the namespaces they live in), even on failure. */
export function deferrer(t: { after: (fn: () => Promise<void>) => void }): (fn: () => unknown) => void {
  const fns: (() => unknown)[] = [];
  t.after(async () => {
    for (const fn of fns.reverse()) {
      try {
        await fn();
      } catch {
        /* keep cleaning up */
      }
    }
  });
  return (fn) => void fns.push(fn);
}
