// What the network looks like from here: our NAT class (asked of the beacon's
// two ports from our one socket), the endpoints peers should probe to reach us
// (mapped + LAN), and whether the local network changed (new addresses: tell
// the registry, re-classify, re-punch).
import os from 'node:os';
import type { Logger } from '../util/logger.ts';
import { parseEndpoint, type UplinkKind } from '../nat/path.ts';
import { classifyNat, type NatType } from '../nat/nat-type.ts';
import { advertisableIpv6, isPublicIPv6 } from '../nat/ip6-class.ts';

const MAX_CANDIDATES = 4;
/** IPv6 host candidates on top (global first: unlike LAN IPv4 they reach across the internet). */
const MAX_V6_CANDIDATES = 3;
/**
 * How often the local interfaces are looked at (a cheap getifaddrs; the NAT type
 * is re-asked only on a change or every NAT_RECHECK_MS). Tailscale's netmon hears
 * of a change from netlink at once; Node has no such event, so poll every second:
 * every second of delay here is a second a moved host waits to go direct again (issue 19).
 */
export const NETWORK_CHECK_MS = 1_000;
/** A forced re-check (a direct path died) at most this often. */
export const FORCED_CHECK_GAP_MS = 2_000;
export const NAT_RECHECK_MS = 60_000;

type Interfaces = Record<string, os.NetworkInterfaceInfo[] | undefined>;

export interface NetCheckHost {
  readonly log: Logger;
  now(): number;
  /** Where the daemon's one UDP socket is bound. */
  boundAddress(): { address: string; port: number };
  uplinkKind(): UplinkKind;
  /** Hello to the rendezvous' main port: the endpoint it saw, and its hello-only second port. */
  hello(): Promise<{ observed: string; altPort?: number | undefined }>;
  /** Hello to the second port from the same socket: the endpoint it saw (undefined: no port, no answer). */
  helloAlt(altPort: number | undefined): Promise<string | undefined>;
  /** Before a re-check: back to UDP if a TCP uplink is in use and UDP answers again. */
  maybeBackToUdp(): Promise<void>;
  heartbeat(): Promise<void>;
  /** The NAT class changed: the rendezvous learns it from heartbeats, so send one now. */
  natChanged(): void;
  /** Our candidates changed (new network, new mapped endpoint): tell peers, punch again. */
  localChanged(): void;
  /** The host's interfaces (os.networkInterfaces(); a fake in tests). */
  interfaces?(): Interfaces;
  /** Our endpoint as mapped by the gateway (PCP/NAT-PMP/UPnP, src/nat/portmap), if any. */
  mapped?(): string | undefined;
}

export class NetCheck {
  natType: NatType = 'unknown';
  /** Our endpoint as the rendezvous saw it (hello, register, heartbeat). */
  observed: string | undefined;
  private readonly host: NetCheckHost;
  private lastLan = '';
  private lastNatCheck = 0;
  private timer: NodeJS.Timeout | undefined;
  /** A check is running (hellos can take a second): one at a time, a forced one queued behind it. */
  private running = false;
  private forceNext = false;
  private lastForced = -Infinity;

  constructor(host: NetCheckHost) {
    this.host = host;
  }

  /** First classification, then a re-check every 5 s (a full one every 60 s or when the network changes). */
  async start(): Promise<void> {
    this.lastLan = JSON.stringify(this.lanEndpoints());
    await this.checkNat();
    this.timer = setInterval(() => void this.checkNetwork(), NETWORK_CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private interfaces(): Interfaces {
    return this.host.interfaces ? this.host.interfaces() : os.networkInterfaces();
  }

  /**
   * Our host endpoints: the bound address, or, bound to all (one dual-stack socket),
   * IPv6 global then every external IPv4 address, then IPv6 ULA. No link-local
   * IPv6 (it needs a zone id), as Tailscale and iroh leave it out.
   */
  lanEndpoints(): string[] {
    const { address: bound, port } = this.host.boundAddress();
    if (port === 0) return []; // no UDP socket (--listen none): nothing to offer as a direct path
    if (bound !== '0.0.0.0' && bound !== '::') return [bound.includes(':') ? `[${bound}]:${port}` : `${bound}:${port}`];
    const v4: string[] = [];
    const v6: string[] = [];
    for (const list of Object.values(this.interfaces())) {
      for (const ni of list ?? []) {
        if (ni.internal) continue;
        if (ni.family === 'IPv4') v4.push(`${ni.address}:${port}`);
        else if (bound === '::' && ni.family === 'IPv6' && advertisableIpv6(ni.address)) v6.push(ni.address);
      }
    }
    const global6 = v6.filter(isPublicIPv6).map((a) => `[${a}]:${port}`);
    const ula6 = v6.filter((a) => !isPublicIPv6(a)).map((a) => `[${a}]:${port}`);
    const six = [...global6, ...ula6].slice(0, MAX_V6_CANDIDATES);
    return [...six.filter((e) => global6.includes(e)), ...v4.slice(0, MAX_CANDIDATES), ...six.filter((e) => ula6.includes(e))];
  }

  /**
   * What peers should probe to reach us: the gateway's port mapping first (the one that
   * works even behind symmetric NAT), our endpoint as the beacon saw it, LAN endpoints.
   */
  localCandidates(): string[] {
    return this.candidateKinds().map((c) => c.endpoint);
  }

  /** The same, each with where it comes from (status/info `candidates`): the wire carries endpoints only. */
  candidateKinds(): { endpoint: string; kind: 'mapped' | 'observed' | 'lan' }[] {
    const out: { endpoint: string; kind: 'mapped' | 'observed' | 'lan' }[] = [];
    const add = (endpoint: string | undefined, kind: 'mapped' | 'observed' | 'lan'): void => {
      if (endpoint && parseEndpoint(endpoint) && !out.some((c) => c.endpoint === endpoint)) out.push({ endpoint, kind });
    };
    add(this.host.mapped?.(), 'mapped');
    if (this.host.uplinkKind() === 'udp') add(this.observed, 'observed');
    for (const e of this.lanEndpoints()) add(e, 'lan');
    return out;
  }

  private localAddresses(): string[] {
    const out: string[] = [];
    for (const list of Object.values(this.interfaces())) for (const ni of list ?? []) if (ni.family === 'IPv4' || ni.family === 'IPv6') out.push(ni.address);
    return out;
  }

  /**
   * Ask the beacon's two ports from our one socket: the same mapped endpoint
   * twice = endpoint-independent mapping (cone), different = symmetric.
   */
  async checkNat(): Promise<void> {
    this.lastNatCheck = this.host.now();
    if (this.host.uplinkKind() !== 'udp') {
      this.natType = 'unknown';
      return;
    }
    try {
      const first = await this.host.hello();
      this.observed = first.observed;
      const second = await this.host.helloAlt(first.altPort);
      const before = this.natType;
      this.natType = classifyNat(first.observed, second, this.localAddresses());
      if (before !== this.natType) {
        this.host.log.info({ nat: this.natType, observed: first.observed, alt: second ?? null }, 'nat type');
        this.host.natChanged();
      }
    } catch (err) {
      this.host.log.warn({ err: (err as Error).message }, 'nat check failed');
    }
  }

  /**
   * A direct path died: maybe our network moved under it before the interface poll saw it
   * (or without any interface change, a new NAT upstream). Re-register (so the relay reaches
   * us at our new endpoint) and re-ask our reflexive address now, as Tailscale re-STUNs on a
   * link change. Rate limited: many peers' paths die together when we move.
   */
  recheck(): void {
    const now = this.host.now();
    if (now - this.lastForced < FORCED_CHECK_GAP_MS) return;
    this.lastForced = now;
    this.forceNext = true;
    void this.checkNetwork();
  }

  /** The rendezvous saw us at `endpoint` (register, heartbeat): a new reflexive address is news for our peers. */
  setObserved(endpoint: string): void {
    const before = this.observed;
    this.observed = endpoint;
    if (before !== undefined && before !== endpoint && !this.running) this.host.localChanged();
  }

  /** A new network (addresses changed): re-register, re-classify, tell peers, re-punch. */
  async checkNetwork(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      do await this.checkOnce();
      while (this.forceNext);
    } finally {
      this.running = false;
    }
  }

  private async checkOnce(): Promise<void> {
    const forced = this.forceNext;
    this.forceNext = false;
    const lan = JSON.stringify(this.lanEndpoints());
    const changed = lan !== this.lastLan;
    if (!changed && !forced && this.host.now() - this.lastNatCheck < NAT_RECHECK_MS) return;
    this.lastLan = lan;
    await this.host.maybeBackToUdp();
    const observedBefore = this.observed;
    if (changed || forced) {
      if (changed) this.host.log.info({ lan: this.lanEndpoints() }, 'local network changed');
      await this.host.heartbeat();
    }
    await this.checkNat();
    if (changed || this.observed !== observedBefore) this.host.localChanged();
  }
}
