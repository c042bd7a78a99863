// Port mapping: ask the default gateway to forward a public UDP port to the
// daemon's one socket, so a peer behind a NAT we cannot punch (symmetric x
// symmetric) can reach us at the mapped endpoint. Follows Tailscale's
// portmapper (net/portmapper): PCP first, then NAT-PMP (same port, 5351), then
// UPnP-IGD; a 2 h lifetime renewed at half-life; the mapping deleted on a clean
// stop; only the gateway from our routing table is asked, and only its answers
// (from the address and port asked, echoing our nonce and port) are believed.
//
// Never in the way: start() returns at once (the daemon is usable before any
// gateway answers), every exchange is bounded, and a failure is a coded error
// in status() with a retry later; candidates without a mapping still work.
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import { isPublicIPv4 } from '../ip-class.ts';
import { defaultGateway } from './gateway.ts';
import { exchange, type ExchangeOutcome } from './exchange.ts';
import { decodePmpAddress, decodePmpMap, encodePmpAddressRequest, encodePmpMap, isPmpHeader, NATPMP_PORT, NATPMP_RESULTS } from './natpmp.ts';
import { decodePcpAnnounce, decodePcpMap, encodePcpAnnounce, encodePcpMap, PCP_NONCE_BYTES, PCP_RESULTS } from './pcp.ts';
import { upnpDelete, upnpMap, type UpnpMapping } from './upnp.ts';

export type PortMapProtocol = 'pcp' | 'pmp' | 'upnp';

export type PortMapErrorCode =
  /** No default route: nothing to ask. */
  | 'PORTMAP_NO_GATEWAY'
  /** The gateway did not answer any protocol (or nothing listens there). */
  | 'PORTMAP_NO_ANSWER'
  /** The gateway answered with an error (mapping disabled, no resources, ...). */
  | 'PORTMAP_REFUSED'
  /** An answer that cannot be right (port 0, lifetime 0). */
  | 'PORTMAP_BAD_RESPONSE'
  /** A mapping on an external address that is not public: the gateway is behind another NAT, or lies. */
  | 'PORTMAP_BAD_EXTERNAL'
  /** The mapping could not be renewed before it expired. */
  | 'PORTMAP_EXPIRED';

export interface PortMapError {
  code: PortMapErrorCode;
  message: string;
  hint: string;
}

export interface PortMapStatus {
  enabled: boolean;
  state: 'off' | 'probing' | 'mapped' | 'failed';
  protocol: PortMapProtocol | null;
  gateway: string | null;
  /** The mapped endpoint advertised as our "mapped" candidate, host:port. */
  external: string | null;
  internalPort: number;
  lifetimeSec: number | null;
  expiresInSec: number | null;
  renewals: number;
  /** Restarts of the gateway noticed by its epoch going back (each one re-maps at once). */
  gatewayRestarts: number;
  /** Datagrams from the gateway that were not an answer to us (wrong nonce, port, size). */
  ignored: number;
  error: PortMapError | null;
}

export interface PortMapperOptions {
  /** The daemon's UDP port (the mapping's internal port; the requests come from other sockets). */
  internalPort: number;
  log?: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
  /** Default: the default route's gateway (/proc/net/route). */
  gateway?: () => string | undefined;
  /** Port of the PCP/NAT-PMP server (tests); default 5351. */
  serverPort?: number;
  /** Requested lifetime (s); default 7200 as Tailscale. */
  lifetimeSec?: number;
  /** How often a PCP/NAT-PMP gateway is asked its epoch, to notice a restart that lost our mapping (ms). */
  checkMs?: number;
  /** Per-exchange resend schedule (ms). */
  timeoutsMs?: readonly number[];
  /** First retry after a failed attempt (ms); doubles up to 10 min. */
  retryMs?: number;
  protocols?: readonly PortMapProtocol[];
  now?: () => number;
}

interface Mapped {
  protocol: PortMapProtocol;
  gateway: string;
  externalIp: string;
  externalPort: number;
  lifetimeSec: number;
  expiresAt: number;
  upnp?: UpnpMapping;
  /** PCP/NAT-PMP: the gateway's seconds since its start, and when we heard it (ms). */
  epoch?: { sec: number; at: number };
}

type Attempt = { ok: true; m: Omit<Mapped, 'expiresAt' | 'gateway' | 'epoch'>; epochSec?: number } | { ok: false; err: PortMapError; silent: boolean };

const DEFAULT_TIMEOUTS = [250, 500, 1000] as const;
const DELETE_TIMEOUTS = [250, 250] as const;
const MAX_RETRY_MS = 10 * 60_000;
/** stop() waits at most this long for an attempt in flight before deleting what it has. */
const STOP_GRACE_MS = 300;

export interface PortMapperEvents {
  /** The mapped endpoint appeared, moved or went away. */
  change: [external: string | undefined];
}

export class PortMapper extends EventEmitter<PortMapperEvents> {
  private readonly o: Required<Omit<PortMapperOptions, 'log'>> & Pick<PortMapperOptions, 'log'>;
  private mapped: Mapped | undefined;
  private state: PortMapStatus['state'] = 'off';
  private lastGateway: string | undefined;
  private error: PortMapError | null = null;
  private renewals = 0;
  private ignoredCount = 0;
  private timer: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  /** Gateway restarts noticed by their epoch (status). */
  private restarts = 0;
  private retryMs: number;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** PCP: one nonce per mapping; renewals and the delete must repeat it (RFC 6887 11.2). */
  private nonce = crypto.randomBytes(PCP_NONCE_BYTES);

  constructor(opts: PortMapperOptions) {
    super();
    this.o = {
      gateway: () => defaultGateway(),
      serverPort: NATPMP_PORT,
      lifetimeSec: 7200,
      timeoutsMs: DEFAULT_TIMEOUTS,
      retryMs: 30_000,
      checkMs: 60_000,
      protocols: ['pcp', 'pmp', 'upnp'],
      now: () => Date.now(),
      ...opts,
    };
    this.retryMs = this.o.retryMs;
  }

  /** Starts mapping in the background; never waits for the gateway. */
  start(): void {
    this.stopped = false;
    this.state = 'probing';
    this.kick(0);
    clearInterval(this.checkTimer);
    this.checkTimer = setInterval(() => void this.checkEpoch(), this.o.checkMs);
    this.checkTimer.unref();
  }

  /**
   * A router that restarts forgets its mappings and says so only through its epoch (seconds
   * since it started): RFC 6886 3.6 / RFC 6887 8.5, and what Tailscale's portmapper watches.
   * One small request per minute (NAT-PMP external address, PCP ANNOUNCE); an epoch that went
   * back means our mapping is gone: ask again now instead of at the next half-life renewal.
   */
  private async checkEpoch(): Promise<void> {
    const m = this.mapped;
    if (!m?.epoch || this.running || this.stopped || (m.protocol !== 'pcp' && m.protocol !== 'pmp')) return;
    const base = { gateway: m.gateway, port: this.o.serverPort, timeoutsMs: this.o.timeoutsMs, ignored: this.ignored };
    const r =
      m.protocol === 'pmp'
        ? await exchange({ ...base, request: () => encodePmpAddressRequest(), accept: (msg) => decodePmpAddress(msg) })
        : await exchange({ ...base, request: (ip) => encodePcpAnnounce(ip), accept: (msg) => decodePcpAnnounce(msg) });
    if (!r.ok || r.value.result !== 0 || this.mapped !== m || this.stopped) return; // silence: the renewal timer still runs
    const now = this.o.now();
    const expected = m.epoch.sec + ((now - m.epoch.at) / 1000) * (7 / 8) - 2;
    if (r.value.epoch < expected) {
      this.restarts++;
      this.o.log?.warn(
        { gateway: m.gateway, epoch: r.value.epoch, expected: Math.floor(expected) },
        'the gateway restarted (its epoch went back): mapping again',
      );
      this.kick(0);
    } else {
      m.epoch = { sec: r.value.epoch, at: now };
    }
  }

  /** The mapped endpoint (host:port) while a live mapping exists. */
  external(): string | undefined {
    const m = this.mapped;
    return m && this.o.now() < m.expiresAt ? `${m.externalIp}:${m.externalPort}` : undefined;
  }

  status(): PortMapStatus {
    const m = this.mapped;
    return {
      enabled: true,
      state: this.state,
      protocol: m?.protocol ?? null,
      gateway: m?.gateway ?? this.lastGateway ?? null,
      external: this.external() ?? null,
      internalPort: this.o.internalPort,
      lifetimeSec: m?.lifetimeSec ?? null,
      expiresInSec: m ? Math.max(0, Math.round((m.expiresAt - this.o.now()) / 1000)) : null,
      renewals: this.renewals,
      gatewayRestarts: this.restarts,
      ignored: this.ignoredCount,
      error: this.error,
    };
  }

  /** The network changed (new gateway, new address): map again now. */
  refresh(): void {
    if (!this.stopped) this.kick(0);
  }

  /** Delete the mapping at the gateway (bounded: ~0.5 s per protocol at most) and stop. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.checkTimer);
    // A cycle in flight (a slow gateway) gets a short grace, never the stop's whole budget.
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([this.running?.catch(() => {}), new Promise<void>((r) => (grace = setTimeout(r, STOP_GRACE_MS)))]);
    clearTimeout(grace);
    const m = this.mapped;
    this.mapped = undefined;
    this.state = 'off';
    if (!m) return;
    const ok = await this.remove(m).catch(() => false);
    this.o.log?.info(
      { protocol: m.protocol, external: `${m.externalIp}:${m.externalPort}`, deleted: ok },
      ok ? 'port mapping deleted' : 'port mapping not deleted (it expires by itself)',
    );
  }

  private kick(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (this.running || this.stopped) return;
      this.running = this.cycle().finally(() => {
        this.running = undefined;
      });
    }, delayMs);
    this.timer.unref();
  }

  /** One attempt: renew the mapping we have, else ask every protocol in turn; then schedule the next. */
  private async cycle(): Promise<void> {
    const gw = this.o.gateway();
    this.lastGateway = gw;
    const before = this.external();
    if (gw === undefined) {
      this.fail({
        code: 'PORTMAP_NO_GATEWAY',
        message: 'no default route: no gateway to ask for a port mapping',
        hint: 'nothing to do: candidates without a mapping are still tried',
      });
    } else {
      const renewing = this.mapped !== undefined && this.mapped.gateway === gw;
      if (this.mapped && !renewing) this.mapped = undefined; // a new gateway: the old mapping is not ours to renew
      const res = await this.tryAll(gw, renewing ? this.mapped!.protocol : undefined);
      if (this.stopped) {
        if (res.ok) {
          // Granted while stopping: stop() may have returned already, so delete it here.
          const late: Mapped = { ...res.m, gateway: gw, expiresAt: this.o.now() + res.m.lifetimeSec * 1000 };
          if (this.mapped === undefined) void this.remove(late).catch(() => false);
          else this.mapped = late; // stop() is still waiting: it deletes this one
        }
        return;
      }
      if (res.ok) {
        if (renewing) this.renewals++;
        this.mapped = {
          ...res.m,
          gateway: gw,
          expiresAt: this.o.now() + res.m.lifetimeSec * 1000,
          ...(res.epochSec !== undefined ? { epoch: { sec: res.epochSec, at: this.o.now() } } : {}),
        };
        this.state = 'mapped';
        this.error = null;
        this.retryMs = this.o.retryMs;
        // Half-life renewal, as Tailscale and RFC 6886 3.3 advise.
        this.kick(Math.max(1000, (res.m.lifetimeSec * 1000) / 2));
        if (!renewing || before !== this.external())
          this.o.log?.info({ protocol: res.m.protocol, gateway: gw, external: this.external(), lifetimeSec: res.m.lifetimeSec }, 'port mapped');
      } else {
        this.fail(res.err);
      }
    }
    if (before !== this.external()) this.emit('change', this.external());
  }

  private fail(err: PortMapError): void {
    const m = this.mapped;
    const now = this.o.now();
    if (m && now < m.expiresAt) {
      // Renewal failed but the mapping still holds: try again well before it lapses.
      this.error = err;
      this.kick(Math.max(1000, Math.min(this.retryMs, (m.expiresAt - now) / 4)));
      return;
    }
    if (m) {
      this.mapped = undefined;
      err = {
        code: 'PORTMAP_EXPIRED',
        message: `the ${m.protocol} mapping ${m.externalIp}:${m.externalPort} expired unrenewed (${err.message})`,
        hint: err.hint,
      };
    }
    if (this.error?.code !== err.code) this.o.log?.warn({ code: err.code, err: err.message, hint: err.hint }, 'no port mapping');
    this.error = err;
    this.state = 'failed';
    this.kick(this.retryMs);
    this.retryMs = Math.min(MAX_RETRY_MS, this.retryMs * 2);
  }

  private async tryAll(gw: string, first: PortMapProtocol | undefined): Promise<Attempt> {
    const order = first ? [first, ...this.o.protocols.filter((p) => p !== first)] : [...this.o.protocols];
    let firstErr: PortMapError | undefined;
    let skipPmp = false;
    for (const p of order) {
      if (this.stopped) break;
      if (p === 'pmp' && skipPmp) continue;
      const r = p === 'pcp' ? await this.pcp(gw) : p === 'pmp' ? await this.pmp(gw) : await this.upnp(gw);
      if (r.ok) return r;
      // Nothing listens on 5351 (ICMP unreachable): NAT-PMP shares that port, skip it.
      if (p === 'pcp' && r.err.code === 'PORTMAP_NO_ANSWER' && r.err.message.includes('refused')) skipPmp = true;
      // An answer with an error beats "no answer" for the status: it names the real cause.
      if (firstErr === undefined || (firstErr.code === 'PORTMAP_NO_ANSWER' && !r.silent)) firstErr = r.err;
    }
    return { ok: false, err: firstErr ?? noAnswer(gw, 'no protocol enabled'), silent: true };
  }

  private ignored = (): void => {
    this.ignoredCount++;
  };

  private suggestedPort(): number {
    return this.mapped?.externalPort ?? this.o.internalPort;
  }

  /** One PCP MAP exchange: `pmp-only` when the gateway speaks only NAT-PMP (RFC 6887 9). */
  private pcpExchange(gw: string, lifetimeSec: number, timeoutsMs: readonly number[]) {
    const nonce = this.nonce;
    return exchange<NonNullable<ReturnType<typeof decodePcpMap>> | 'pmp-only'>({
      gateway: gw,
      port: this.o.serverPort,
      timeoutsMs,
      ignored: this.ignored,
      request: (localIp) =>
        encodePcpMap({ nonce, clientIp: localIp, internalPort: this.o.internalPort, suggestedExternalPort: this.suggestedPort(), lifetimeSec }),
      accept: (msg) => {
        if (isPmpHeader(msg)) return 'pmp-only';
        const d = decodePcpMap(msg);
        return d?.nonce.equals(nonce) && d.internalPort === this.o.internalPort ? d : undefined;
      },
    });
  }

  private async pcp(gw: string): Promise<Attempt> {
    const r = await this.pcpExchange(gw, this.o.lifetimeSec, this.o.timeoutsMs);
    if (!r.ok) return { ok: false, err: outcomeError('PCP', gw, r), silent: true };
    if (r.value === 'pmp-only')
      return { ok: false, err: { code: 'PORTMAP_REFUSED', message: `PCP: ${gw} speaks only NAT-PMP`, hint: 'NAT-PMP is tried next' }, silent: true };
    const d = r.value;
    if (d.result !== 0) return { ok: false, err: refused('PCP', gw, d.result, PCP_RESULTS), silent: false };
    const a = this.checked('pcp', gw, d.externalIp, d.externalPort, d.lifetimeSec);
    if (a.ok) a.epochSec = d.epoch;
    return a;
  }

  private async pmp(gw: string): Promise<Attempt> {
    const base = { gateway: gw, port: this.o.serverPort, timeoutsMs: this.o.timeoutsMs, ignored: this.ignored };
    const addr = await exchange({ ...base, request: () => encodePmpAddressRequest(), accept: (msg) => decodePmpAddress(msg) });
    if (!addr.ok) return { ok: false, err: outcomeError('NAT-PMP', gw, addr), silent: true };
    if (addr.value.result !== 0) return { ok: false, err: refused('NAT-PMP', gw, addr.value.result, NATPMP_RESULTS), silent: false };
    const map = await exchange({
      ...base,
      request: () => encodePmpMap(this.o.internalPort, this.suggestedPort(), this.o.lifetimeSec),
      accept: (msg) => {
        const d = decodePmpMap(msg);
        return d && d.internalPort === this.o.internalPort ? d : undefined;
      },
    });
    if (!map.ok) return { ok: false, err: outcomeError('NAT-PMP', gw, map), silent: true };
    if (map.value.result !== 0) return { ok: false, err: refused('NAT-PMP', gw, map.value.result, NATPMP_RESULTS), silent: false };
    const a = this.checked('pmp', gw, addr.value.address, map.value.externalPort, map.value.lifetimeSec);
    if (a.ok) a.epochSec = map.value.epoch;
    return a;
  }

  private async upnp(gw: string): Promise<Attempt> {
    const r = await upnpMap({
      gateway: gw,
      internalPort: this.o.internalPort,
      externalPort: this.suggestedPort(),
      lifetimeSec: this.o.lifetimeSec,
      timeoutsMs: this.o.timeoutsMs,
      previous: this.mapped?.upnp,
    });
    if (!r.ok) return { ok: false, err: r.err, silent: r.silent };
    const a = this.checked('upnp', gw, r.externalIp, r.externalPort, r.lifetimeSec);
    if (a.ok) a.m.upnp = r.mapping;
    else await upnpDelete(r.mapping, DELETE_TIMEOUTS); // granted but unusable: do not leave it open
    return a;
  }

  /** The gateway said yes: believe it only if the answer can be right. */
  private checked(protocol: PortMapProtocol, gw: string, ip: string | undefined, port: number, lifetimeSec: number): Attempt {
    const name = protocol === 'pmp' ? 'NAT-PMP' : protocol.toUpperCase();
    if (port === 0 || lifetimeSec === 0)
      return {
        ok: false,
        err: {
          code: 'PORTMAP_BAD_RESPONSE',
          message: `${name}: ${gw} granted port ${port} for ${lifetimeSec} s`,
          hint: 'the gateway is broken; the mapping is not used',
        },
        silent: false,
      };
    if (ip === undefined || !isPublicIPv4(ip))
      return {
        ok: false,
        err: {
          code: 'PORTMAP_BAD_EXTERNAL',
          message: `${name}: ${gw} mapped us on ${ip ?? 'a non-IPv4 address'}, which is not a public address`,
          hint: 'the gateway is itself behind a NAT (double NAT or carrier-grade NAT), or lies: the mapping is not advertised; ask for a public address or a mapping at the outer router',
        },
        silent: false,
      };
    return { ok: true, m: { protocol, externalIp: ip, externalPort: port, lifetimeSec: Math.min(lifetimeSec, 86_400) } };
  }

  private async remove(m: Mapped): Promise<boolean> {
    if (m.protocol === 'pcp') {
      // RFC 6887 15: the same nonce with lifetime 0 deletes it.
      const r = await this.pcpExchange(m.gateway, 0, DELETE_TIMEOUTS);
      return r.ok && r.value !== 'pmp-only' && r.value.result === 0;
    }
    if (m.protocol === 'upnp') return m.upnp ? upnpDelete(m.upnp, DELETE_TIMEOUTS) : false;
    const r = await exchange({
      gateway: m.gateway,
      port: this.o.serverPort,
      timeoutsMs: DELETE_TIMEOUTS,
      request: () => encodePmpMap(this.o.internalPort, 0, 0), // RFC 6886 3.4: lifetime 0, external port 0
      accept: (msg) => {
        const d = decodePmpMap(msg);
        return d && d.internalPort === this.o.internalPort ? d : undefined;
      },
    });
    return r.ok && r.value.result === 0;
  }
}

function noAnswer(gw: string, why: string): PortMapError {
  return {
    code: 'PORTMAP_NO_ANSWER',
    message: `no port mapping from ${gw}: ${why}`,
    hint: 'the router offers no PCP, NAT-PMP or UPnP-IGD (or has it disabled): enable one on it for direct paths behind symmetric NAT; the relay still works',
  };
}

function outcomeError(name: string, gw: string, r: Extract<ExchangeOutcome<unknown>, { ok: false }>): PortMapError {
  const why = r.why === 'refused' ? 'refused (nothing listens on its port 5351)' : r.why === 'timeout' ? 'no answer' : `socket error ${r.detail ?? ''}`;
  return noAnswer(gw, `${name} ${why}`);
}

function refused(name: string, gw: string, code: number, names: Record<number, string>): PortMapError {
  return {
    code: 'PORTMAP_REFUSED',
    message: `${name}: ${gw} refused the mapping: result ${code} (${names[code] ?? 'unknown'})`,
    hint: 'enable PCP/NAT-PMP/UPnP port mapping for this host on the router, or free the port there; the relay still works',
  };
}
