// The daemon's standing at the registry: registering (our address), the
// heartbeat every 20 s (endpoints, self-report, trust sync; re-register when
// the registry forgot us), hostname and visibility changes, and lookups.
import fs from 'node:fs';
import path from 'node:path';
import type { RegistryClient } from '../registry/client.ts';
import type { NodeReport } from '../registry/protocol.ts';
import { formatAddress, parseAddress, type Address } from '../wire/address.ts';
import type { PilotError } from '../util/errors.ts';
import type { Logger } from '../util/logger.ts';
import { saveConfig, type DaemonConfig } from './config.ts';
import type { ResolvedNode } from './targets.ts';
import { expandRotation } from '../registry/rotation.ts';

export const HEARTBEAT_MS = 20_000;

/** The registry calls made here (a fake in unit tests). */
export type RegistrationCalls = Pick<RegistryClient, 'register' | 'heartbeat' | 'setHostname' | 'clearHostname' | 'setVisibility' | 'resolve'>;

export interface RegistrationHost {
  readonly log: Logger;
  readonly home: string;
  readonly config: DaemonConfig;
  /** Our LAN endpoints (netcheck.ts). */
  lanEndpoints(): string[];
  /** What each heartbeat reports about us (report.ts). */
  report(): NodeReport;
  /** Our endpoint as the registry saw it. */
  observed(endpoint: string): void;
  syncTrust(): Promise<void>;
  /** A TCP link can be dead without knowing it (no RST through a NAT): start a fresh one. */
  reconnectUplink(reason: string): void;
}

export class Registration {
  /** Ours, once registered. */
  address: Address | undefined;
  /** The last registry exchange worked. */
  online = false;
  private readonly host: RegistrationHost;
  private readonly client: RegistrationCalls;
  private timer: NodeJS.Timeout | undefined;

  constructor(host: RegistrationHost, client: RegistrationCalls) {
    this.host = host;
    this.client = client;
  }

  /** Heartbeats from now on. */
  start(): void {
    this.timer = setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  async register(): Promise<void> {
    const config = this.host.config;
    const res = await this.client.register({
      email: config.email,
      ...(config.hostname ? { hostname: config.hostname } : {}),
      lanEndpoints: this.host.lanEndpoints(),
      public: config.public,
      ...(config.invite ? { invite: config.invite } : {}),
      ...(config.ephemeral ? { ephemeral: true } : {}),
    });
    this.address = typeof res.address === 'string' ? parseAddress(res.address) : res.address;
    this.host.observed(res.observed);
    this.online = true;
    fs.writeFileSync(path.join(this.host.home, 'address'), formatAddress(this.address) + '\n', { mode: 0o600 });
  }

  async heartbeat(): Promise<void> {
    try {
      const res = await this.client.heartbeat({ lanEndpoints: this.host.lanEndpoints(), ...this.host.report() });
      this.host.observed(res.observed);
      this.online = true;
      await this.host.syncTrust();
    } catch (err) {
      const code = (err as PilotError).code;
      this.online = false;
      if (code === 'TIMEOUT') this.host.reconnectUplink('heartbeat unanswered');
      if (code === 'NOT_REGISTERED' || code === 'NOT_FOUND') await this.register().catch(() => {});
      this.host.log.warn({ err: (err as Error).message }, 'heartbeat failed');
    }
  }

  async setHostname(hostname: string | undefined): Promise<void> {
    if (hostname === undefined) await this.client.clearHostname();
    else await this.client.setHostname(hostname);
    const config = this.host.config;
    if (hostname === undefined) delete config.hostname;
    else config.hostname = hostname;
    saveConfig(this.host.home, config);
  }

  async setVisibility(pub: boolean): Promise<void> {
    await this.client.setVisibility(pub);
    this.host.config.public = pub;
    saveConfig(this.host.home, this.host.config);
  }

  async resolve(query: { address?: Address; hostname?: string }): Promise<ResolvedNode> {
    const params: { address?: string; hostname?: string } = {};
    if (query.address) params.address = formatAddress(query.address);
    if (query.hostname) params.hostname = query.hostname;
    const r = await this.client.resolve(params);
    const address = typeof r.address === 'string' ? parseAddress(r.address) : r.address;
    const publicKey = Buffer.isBuffer(r.publicKey) ? r.publicKey : Buffer.from(String(r.publicKey), 'base64');
    return {
      address,
      publicKey,
      hostname: r.hostname ?? undefined,
      endpoints: r.endpoints ?? [],
      public: Boolean(r.public),
      online: Boolean(r.online),
      ...(r.networks ? { networks: r.networks } : {}),
      ...(r.rotation ? { rotation: expandRotation(r.rotation, address, publicKey) } : {}),
    };
  }
}
