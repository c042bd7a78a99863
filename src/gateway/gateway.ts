// The gateway: each mapping gives a remote agent a local IPv4 address and
// proxies TCP on each mapped port to the same (or a chosen) virtual port of
// that agent through the encrypted overlay. It listens only on the mapped
// addresses. State lives in the daemon and in $PILOT_HOME/gateway.json, so
// mappings come back after a daemon restart.
import net from 'node:net';
import * as v from 'valibot';
import { asPilotError, PilotError } from '../util/errors.ts';
import { int } from '../util/schema.ts';
import type { OverlayHost } from './host.ts';
import { ensureLocal, isLocalAddress, removeAlias } from './loopback-alias.ts';
import { LocalPeers } from './local-peer.ts';
import type { PortMap } from './port-spec.ts';
import { checkPortAllowed, currentPrivileges, privilegedPortError, type Privileges } from './privileges.ts';
import { readState, writeState } from './state-file.ts';
import { splice } from './splice.ts';
import { DEFAULT_SUBNET, NO_ROOT_SUBNET, hostAddresses, inSubnet, ipToInt, parseSubnet, type Subnet } from './subnet.ts';

import { GATEWAY_FILE } from './state-names.ts';

export { GATEWAY_FILE };

const PortMapSchema = v.object({ local: int(1, 65535), virtual: int(0, 65535) });
const StateSchema = v.object({
  version: v.literal(1),
  subnet: v.nullable(v.string()),
  ports: v.array(PortMapSchema),
  mappings: v.array(v.object({ ip: v.string(), target: v.string(), ports: v.pipe(v.array(PortMapSchema), v.minLength(1)), alias: v.boolean() })),
});
type State = v.InferOutput<typeof StateSchema>;

/** Auto-allocation skips addresses that turn out to be busy, up to this many. */
const MAX_TRIES = 16;

interface Mapping {
  ip: string;
  target: string;
  ports: PortMap[];
  /** We added the lo alias and remove it on unmap/stop. */
  aliasOwned: boolean;
  servers: net.Server[];
  conns: Set<net.Socket>;
  error: string | null;
  stats: { connections: number; refused: number; notLocal: number; bytesIn: number; bytesOut: number };
  lastRefusal: { code: string; message: string; at: number } | null;
}

export interface MappingInfo {
  ip: string;
  target: string;
  ports: PortMap[];
  listening: boolean;
  alias: 'added' | 'none';
  error: string | null;
  connections: number;
  active: number;
  refused: number;
  /** Connections from another host (a LAN neighbour routing the subnet to us), reset unanswered. */
  notLocal: number;
  bytesIn: number;
  bytesOut: number;
  lastRefusal: { code: string; message: string; at: number } | null;
}

export interface MapOptions {
  ip?: string;
  ports?: PortMap[];
  subnet?: string;
}

export class Gateway {
  private readonly host: OverlayHost;
  private readonly privileges: () => Privileges;
  private readonly mappings = new Map<string, Mapping>();
  private subnet: string | null = null;
  private defaultPorts: PortMap[] = [{ local: 80, virtual: 80 }];
  /** Only this host may use the mapped addresses (see local-peer.ts). */
  private readonly localPeers = new LocalPeers();
  /** When a non-local connection was last logged (one line per minute, not one per packet of a flood). */
  private notLocalLoggedAt = -Infinity;
  /** Map/unmap run one at a time (address allocation, alias add/remove). */
  private lock: Promise<unknown> = Promise.resolve();

  constructor(host: OverlayHost, privileges: () => Privileges = currentPrivileges) {
    this.host = host;
    this.privileges = privileges;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.lock.then(fn, fn);
    this.lock = next.catch(() => {});
    return next;
  }

  /** Explicit, else the one in use, else 10.4.0.0/16 when we can make it local, else 127.4.0.0/16. */
  private async chooseSubnet(explicit: string | undefined): Promise<Subnet> {
    if (explicit !== undefined) return parseSubnet(explicit);
    if (this.subnet !== null) return parseSubnet(this.subnet);
    const dflt = parseSubnet(DEFAULT_SUBNET);
    if (this.privileges().netAdmin || (await isLocalAddress('10.4.0.1'))) return dflt;
    return parseSubnet(NO_ROOT_SUBNET);
  }

  /** `gateway start`: set the gateway's subnet and ports, map every target not mapped yet. */
  start(targets: string[], opts: { ports?: PortMap[]; subnet?: string }): Promise<MappingInfo[]> {
    return this.serial(async () => {
      const subnet = await this.chooseSubnet(opts.subnet);
      if (opts.ports) this.checkPorts(subnet, opts.ports);
      this.subnet = subnet.cidr;
      if (opts.ports) this.defaultPorts = opts.ports;
      const out: MappingInfo[] = [];
      for (const target of targets) {
        const existing = [...this.mappings.values()].find((m) => m.target === target);
        out.push(existing ? this.info(existing) : await this.mapLocked(target, { subnet: subnet.cidr }));
      }
      this.persist();
      return out;
    });
  }

  map(target: string, opts: MapOptions = {}): Promise<MappingInfo> {
    return this.serial(async () => {
      const info = await this.mapLocked(target, opts);
      this.persist();
      return info;
    });
  }

  private checkPorts(subnet: Subnet, ports: PortMap[]): void {
    const p = this.privileges();
    const first = hostAddresses(subnet).next().value ?? subnet.cidr;
    for (const pm of ports) checkPortAllowed(first, pm.local, pm.virtual, p);
  }

  private async mapLocked(target: string, opts: MapOptions): Promise<MappingInfo> {
    const subnet = await this.chooseSubnet(opts.subnet);
    const ports = opts.ports ?? this.defaultPorts;
    this.subnet ??= subnet.cidr;
    if (opts.ip !== undefined) {
      ipToInt(opts.ip);
      if (this.mappings.has(opts.ip))
        throw new PilotError(
          'BAD_ARGUMENT',
          `${opts.ip} is already mapped to ${this.mappings.get(opts.ip)!.target}`,
          `unmap it first: pilotctl gateway unmap ${opts.ip}`,
        );
      for (const pm of ports) checkPortAllowed(opts.ip, pm.local, pm.virtual, this.privileges());
      const m = this.newMapping(opts.ip, target, ports);
      await this.setup(m, false, subnet.cidr);
      this.mappings.set(m.ip, m);
      return this.info(m);
    }
    let tries = 0;
    let lastErr: unknown;
    for (const ip of hostAddresses(subnet)) {
      if (this.mappings.has(ip)) continue;
      for (const pm of ports) checkPortAllowed(ip, pm.local, pm.virtual, this.privileges());
      const m = this.newMapping(ip, target, ports);
      try {
        await this.setup(m, false, subnet.cidr);
      } catch (err) {
        // Busy address (another program, another gateway): take the next one.
        if ((err as { busy?: boolean }).busy === true && ++tries < MAX_TRIES) {
          lastErr = err;
          continue;
        }
        throw err;
      }
      this.mappings.set(ip, m);
      return this.info(m);
    }
    throw lastErr ?? new PilotError('BAD_ARGUMENT', `no free address left in ${subnet.cidr}`, 'unmap something or use a larger --subnet');
  }

  private newMapping(ip: string, target: string, ports: PortMap[]): Mapping {
    return {
      ip,
      target,
      ports,
      aliasOwned: false,
      servers: [],
      conns: new Set(),
      error: null,
      stats: { connections: 0, refused: 0, notLocal: 0, bytesIn: 0, bytesOut: 0 },
      lastRefusal: null,
    };
  }

  /** Make the address local and listen on every port; on failure nothing is left behind. */
  private async setup(m: Mapping, wasOwned: boolean, subnet: string): Promise<void> {
    const local = await ensureLocal(m.ip, this.privileges().netAdmin, subnet, wasOwned);
    m.aliasOwned = local.owned;
    try {
      for (const pm of m.ports) m.servers.push(await this.listen(m, pm));
      m.error = null;
    } catch (err) {
      await this.teardown(m);
      throw err;
    }
  }

  private listen(m: Mapping, pm: PortMap): Promise<net.Server> {
    // pauseOnConnect: nothing is read from the client until the overlay stream is open.
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (sock) => this.onConnection(m, pm, sock));
    return new Promise((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EACCES') reject(privilegedPortError(m.ip, pm.local, pm.virtual, this.privileges().unprivilegedPortStart));
        else if (err.code === 'EADDRINUSE')
          reject(
            Object.assign(
              new PilotError(
                'BAD_ARGUMENT',
                `${m.ip}:${pm.local} is already in use`,
                'pick another address (gateway map <target> <ip>) or local port (--ports 8080=80)',
              ),
              { busy: true },
            ),
          );
        else reject(new PilotError('BAD_ARGUMENT', `cannot listen on ${m.ip}:${pm.local}: ${err.code ?? err.message}`));
      });
      server.listen({ host: m.ip, port: pm.local, exclusive: true }, () => {
        server.removeAllListeners('error');
        server.on('error', (err) => this.host.log.warn({ err: err.message, ip: m.ip }, 'gateway listener error'));
        resolve(server);
      });
    });
  }

  private onConnection(m: Mapping, pm: PortMap, sock: net.Socket): void {
    if (!this.localPeers.isLocal(sock.remoteAddress, sock.localAddress)) {
      // Another host: reset before a byte is read or the overlay is touched.
      m.stats.notLocal++;
      sock.on('error', () => {});
      sock.resetAndDestroy();
      const now = Date.now();
      if (now - this.notLocalLoggedAt >= 60_000) {
        this.notLocalLoggedAt = now;
        this.host.log.warn(
          { ip: m.ip, from: sock.remoteAddress, refusedSoFar: m.stats.notLocal },
          'gateway: connection from another host reset (the gateway serves this host only)',
        );
      }
      return;
    }
    m.stats.connections++;
    m.conns.add(sock);
    sock.setNoDelay(true);
    sock.on('error', () => {}); // a client reset before the stream is open; splice takes over after
    sock.on('close', () => {
      m.conns.delete(sock);
      m.stats.bytesIn += sock.bytesRead;
      m.stats.bytesOut += sock.bytesWritten;
    });
    this.host.dial(m.target, pm.virtual).then(
      (stream) => {
        if (sock.destroyed) stream.destroy();
        else splice(sock, stream);
      },
      (err: unknown) => {
        // Not trusted, unknown target, unreachable: the client gets a TCP RST at once.
        const e = asPilotError(err);
        m.stats.refused++;
        m.lastRefusal = { code: e.code, message: e.message, at: Date.now() };
        this.host.log.warn({ ip: m.ip, target: m.target, port: pm.virtual, code: e.code, err: e.message }, 'gateway: stream refused');
        if (!sock.destroyed) sock.resetAndDestroy();
      },
    );
  }

  /** Stop listening, reset open connections, drop the alias if we added it. */
  private async teardown(m: Mapping): Promise<void> {
    for (const s of m.servers.splice(0)) s.close();
    for (const c of m.conns) c.resetAndDestroy();
    if (m.aliasOwned) {
      await removeAlias(m.ip).catch((err: unknown) => this.host.log.warn({ err: (err as Error).message, ip: m.ip }, 'gateway: alias not removed'));
      m.aliasOwned = false;
    }
  }

  unmap(ipOrTarget: string): Promise<MappingInfo> {
    return this.serial(async () => {
      const m = this.mappings.get(ipOrTarget) ?? [...this.mappings.values()].find((x) => x.target === ipOrTarget);
      if (!m) throw new PilotError('NOT_FOUND', `no gateway mapping for ${ipOrTarget}`, 'see: pilotctl gateway list');
      const info = this.info(m);
      await this.teardown(m);
      this.mappings.delete(m.ip);
      this.persist();
      return { ...info, listening: false };
    });
  }

  /** `gateway stop`: every mapping goes, with its alias; nothing comes back on restart. */
  stop(): Promise<MappingInfo[]> {
    return this.serial(async () => {
      const out: MappingInfo[] = [];
      for (const m of this.mappings.values()) {
        out.push({ ...this.info(m), listening: false });
        await this.teardown(m);
      }
      this.mappings.clear();
      this.subnet = null;
      this.defaultPorts = [{ local: 80, virtual: 80 }];
      this.persist();
      return out;
    });
  }

  list(): { running: boolean; subnet: string | null; ports: PortMap[]; privileges: Privileges; mappings: MappingInfo[] } {
    return {
      running: this.mappings.size > 0,
      subnet: this.subnet,
      ports: this.defaultPorts,
      privileges: this.privileges(),
      mappings: [...this.mappings.values()].map((m) => this.info(m)),
    };
  }

  private info(m: Mapping): MappingInfo {
    let bytesIn = m.stats.bytesIn;
    let bytesOut = m.stats.bytesOut;
    for (const c of m.conns) {
      bytesIn += c.bytesRead;
      bytesOut += c.bytesWritten;
    }
    return {
      ip: m.ip,
      target: m.target,
      ports: m.ports,
      listening: m.servers.length === m.ports.length,
      alias: m.aliasOwned ? 'added' : 'none',
      error: m.error,
      connections: m.stats.connections,
      active: m.conns.size,
      refused: m.stats.refused,
      notLocal: m.stats.notLocal,
      bytesIn,
      bytesOut,
      lastRefusal: m.lastRefusal,
    };
  }

  private persist(): void {
    const state: State = {
      version: 1,
      subnet: this.subnet,
      ports: this.defaultPorts,
      mappings: [...this.mappings.values()].map((m) => ({ ip: m.ip, target: m.target, ports: m.ports, alias: m.aliasOwned })),
    };
    writeState(this.host.home, GATEWAY_FILE, state);
  }

  /** Daemon start: bring the saved mappings back. One that fails stays listed (and saved) with its error. */
  restore(): Promise<void> {
    return this.serial(async () => {
      const { state, error } = readState<State>(this.host.home, GATEWAY_FILE, StateSchema, { version: 1, subnet: null, ports: [], mappings: [] });
      if (error) this.host.log.warn({ err: error }, 'gateway state ignored');
      this.subnet = state.subnet;
      if (state.ports.length > 0) this.defaultPorts = state.ports;
      for (const saved of state.mappings) {
        const m = this.newMapping(saved.ip, saved.target, saved.ports);
        this.mappings.set(m.ip, m);
        try {
          const subnet = this.subnet !== null && inSubnet(parseSubnet(this.subnet), m.ip) ? this.subnet : `${m.ip}/32`;
          await this.setup(m, saved.alias, subnet);
          this.host.log.info({ ip: m.ip, target: m.target, ports: m.ports }, 'gateway mapping restored');
        } catch (err) {
          m.error = asPilotError(err).message;
          this.host.log.warn({ ip: m.ip, target: m.target, err: m.error }, 'gateway mapping not restored');
        }
      }
    });
  }

  /** Daemon stop: close everything but keep the saved state for the next start. */
  close(): Promise<void> {
    return this.serial(async () => {
      for (const m of this.mappings.values()) await this.teardown(m);
      this.mappings.clear();
    });
  }
}
