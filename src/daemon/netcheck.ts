// What the network looks like from here: our NAT class (asked of the beacon's
// two ports from our one socket), the endpoints peers should probe to reach us
// (mapped + LAN), and whether the local network changed (new addresses: tell
// the registry, re-classify, re-punch).
import os from 'node:os';
import type { Logger } from '../util/logger.ts';
import { parseEndpoint, type UplinkKind } from '../nat/path.ts';
import { classifyNat, type NatType } from '../nat/nat-type.ts';

const MAX_CANDIDATES = 4;
/** How often the local network and the NAT type are re-checked. */
export const NETWORK_CHECK_MS = 5_000;
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

  /** Our LAN endpoints: the bound address, or every external IPv4 address when bound to all. */
  lanEndpoints(): string[] {
    const { address: bound, port } = this.host.boundAddress();
    if (bound !== '0.0.0.0') return [`${bound}:${port}`];
    const out: string[] = [];
    for (const list of Object.values(this.interfaces())) {
      for (const ni of list ?? []) {
        if (ni.family === 'IPv4' && !ni.internal) out.push(`${ni.address}:${port}`);
      }
    }
    return out.slice(0, MAX_CANDIDATES);
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
    for (const list of Object.values(this.interfaces())) for (const ni of list ?? []) if (ni.family === 'IPv4') out.push(ni.address);
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

  /** A new network (addresses changed): re-register, re-classify, tell peers, re-punch. */
  async checkNetwork(): Promise<void> {
    const lan = JSON.stringify(this.lanEndpoints());
    const changed = lan !== this.lastLan;
    if (!changed && this.host.now() - this.lastNatCheck < NAT_RECHECK_MS) return;
    this.lastLan = lan;
    await this.host.maybeBackToUdp();
    const observedBefore = this.observed;
    if (changed) {
      this.host.log.info({ lan: this.lanEndpoints() }, 'local network changed');
      await this.host.heartbeat();
    }
    await this.checkNat();
    if (changed || this.observed !== observedBefore) this.host.localChanged();
  }
}
