// The daemon's underlay: its one UDP socket (registry, beacon, relay and peer
// sessions all share it), the extra birthday sockets, and the TCP/WebSocket
// uplink to the rendezvous when UDP does not get through. Incoming datagrams
// are sorted here by type and source and handed to the host; nothing above
// this class touches a socket.
import type dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import type { Identity } from '../crypto/identity.ts';
import { RegistryClient } from '../registry/client.ts';
import { PacketType } from '../wire/packet-types.ts';
import { readAddress, writeAddress, type Address, ADDRESS_BYTES } from '../wire/address.ts';
import { formatHostPort, parseHostPort, type HostPort } from '../util/hostport.ts';
import { PilotError } from '../util/errors.ts';
import { listenError } from '../util/listen-error.ts';
import { createUdpSocket } from '../util/udp-socket.ts';
import type { Logger } from '../util/logger.ts';
import type { Path, UplinkKind } from '../nat/path.ts';
import { TcpUplink, type TcpUplinkMode } from '../uplink/tcp-uplink.ts';

/** What the underlay counts (a slice of the daemon's `counters`, shared by reference: `pilotctl stats` shows them). */
export interface UnderlayCounters {
  garbage: number;
  relayIn: number;
  relayOut: number;
  udpIn: number;
  udpOut: number;
}

/** The part of a TcpUplink the underlay uses (a fake in unit tests). */
export interface RendezvousLink {
  /** The first connection; rejects if it fails (the caller tries another mode). */
  connect(): Promise<void>;
  send(pkt: Buffer): boolean;
  reconnect(reason?: string): void;
  close(): void;
  on<E extends keyof RendezvousLinkEvents>(event: E, listener: (...args: RendezvousLinkEvents[E]) => void): unknown;
}

export interface RendezvousLinkEvents {
  packet: [pkt: Buffer];
  up: [];
  down: [reason: string];
}

export interface UnderlayHost {
  readonly log: Logger;
  readonly counters: UnderlayCounters;
  now(): number;
  /** A registry response, push or cookie from the rendezvous: over its UDP port while no uplink is in use, or over the uplink. */
  registryPacket(pkt: Buffer): void;
  /** A session packet (0x10-0x14) and the path it came on (direct, possibly on a birthday socket, or the relay). */
  sessionPacket(pkt: Buffer, path: Path): void;
  /** The uplink now in use changed (a TCP/WebSocket uplink was chosen, or UDP again). */
  uplinkChanged(kind: UplinkKind): void;
  /** A (re)opened TCP/WebSocket connection is a new link at the server: register again. */
  uplinkUp(): void;
  uplinkDown(reason: string): void;
  /** Birthday sockets a peer path uses now (never closed). */
  spraySocketsInUse(): Set<number>;
  /** A birthday attempt is running (its sockets stay open for 10 s). */
  birthdayActive(now: number): boolean;
}

export interface UnderlayOptions {
  /** `host:port` to bind; port 0 = the port of the last run (kept in `<home>/udp-port`), else any. */
  listen: string;
  home: string;
  /** The rendezvous, already resolved to an IP, and as configured (for logs). */
  rendezvous: HostPort;
  registry: string;
  uplink: 'auto' | 'udp' | 'tcp' | 'websocket';
  identity: Identity;
  /** The pinned rendezvous key, read when a probe client is made (learnt by the first hello). */
  serverKey: () => Buffer | undefined;
  /** Seams for unit tests: does the rendezvous answer on UDP, and how a TCP/WebSocket link is opened. */
  probeUdp?: () => Promise<boolean>;
  makeLink?: (mode: TcpUplinkMode) => RendezvousLink;
}

function newSocket(): dgram.Socket {
  return createUdpSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
}

export class Underlay {
  private readonly host: UnderlayHost;
  private readonly opts: UnderlayOptions;
  private readonly rv: HostPort;
  private socket: dgram.Socket = newSocket();
  /** Extra sockets for birthday probing (id -> socket); id 0 is never used (the main socket). */
  private readonly spray = new Map<number, { sock: dgram.Socket; opened: number }>();
  private sprayNext = 1;
  private uplink: RendezvousLink | undefined;
  private uplinkKind: UplinkKind = 'udp';
  /** Issue 19: UDP is policed: the uplink stays on TCP until then (src/daemon/policed-paths.ts). */
  private tcpUntil = 0;
  private switchingToTcp = false;
  /** A hello client on UDP while the uplink choice asks whether UDP gets through. */
  private udpProbe: RegistryClient | undefined;
  /** The beacon's second, hello-only port (NAT classification) and the client that asks it. */
  private altPort: number | undefined;
  private altRegistry: RegistryClient | undefined;

  constructor(host: UnderlayHost, opts: UnderlayOptions) {
    this.host = host;
    this.opts = opts;
    this.rv = opts.rendezvous;
  }

  /** UDP, or the TCP/WebSocket uplink in use. */
  get kind(): UplinkKind {
    return this.uplinkKind;
  }

  /** The main socket's bound address and port. */
  address(): { address: string; port: number } {
    return this.socket.address();
  }

  /**
   * Bind the one UDP socket. With no fixed port we reuse the port of the last
   * run, so peers holding a session to our old endpoint reach the restarted
   * daemon at once (and get the "unknown session" hint that makes them re-handshake).
   */
  async bind(): Promise<void> {
    const listen = parseHostPort(this.opts.listen, 0);
    const portFile = path.join(this.opts.home, 'udp-port');
    const previous = listen.port === 0 && fs.existsSync(portFile) ? Number(fs.readFileSync(portFile, 'utf8')) : 0;
    const bind = (port: number): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        this.socket.once('error', reject);
        this.socket.bind(port, listen.host, () => {
          this.socket.off('error', reject);
          resolve();
        });
      });
    const bindListen = (): Promise<void> =>
      bind(listen.port).catch((err: unknown) => {
        throw listenError(err, 'udp', listen.host, listen.port, '--listen');
      });
    if (previous > 0 && previous < 65536) {
      try {
        await bind(previous);
      } catch {
        // Taken by someone else: the socket object is unusable after a failed bind.
        this.socket = newSocket();
        await bindListen();
      }
    } else {
      await bindListen();
    }
    if (listen.port === 0) fs.writeFileSync(portFile, `${this.socket.address().port}\n`, { mode: 0o600 });
    this.socket.on('error', (err) => this.host.log.warn({ err }, 'udp socket error'));
    this.socket.on('message', (msg, rinfo) => this.onUdp(msg, rinfo));
  }

  sendUdp(pkt: Buffer, host: string, port: number, sock?: number): void {
    this.host.counters.udpOut++;
    const s = sock === undefined ? this.socket : this.spray.get(sock)?.sock;
    s?.send(pkt, port, host);
  }

  /** Registry, beacon and relay traffic: UDP on the one socket (the TCP uplink when UDP is blocked). */
  sendToRendezvous(pkt: Buffer): void {
    if (this.uplink) {
      this.uplink.send(pkt);
      return;
    }
    this.sendUdp(pkt, this.rv.host, this.rv.port);
  }

  /** An outer packet for `dst`, through the rendezvous relay. */
  sendRelay(dst: Address, inner: Buffer): void {
    const pkt = Buffer.allocUnsafe(1 + ADDRESS_BYTES + inner.length);
    pkt[0] = PacketType.RelaySend;
    writeAddress(pkt, 1, dst);
    inner.copy(pkt, 1 + ADDRESS_BYTES);
    this.host.counters.relayOut++;
    this.sendToRendezvous(pkt);
  }

  // ---------- uplink: UDP, or TCP / WebSocket when UDP is blocked ----------

  /** Per config: UDP, TCP or WebSocket; `auto` = UDP if the rendezvous answers there, else TCP, else WebSocket. */
  async chooseUplink(): Promise<void> {
    const mode = this.opts.uplink;
    if (mode === 'udp') return;
    if (mode === 'tcp' || mode === 'websocket') return this.useLink(mode);
    if (await this.udpAnswers()) return;
    this.host.log.warn({ registry: this.opts.registry }, 'no UDP answer from the rendezvous: trying TCP');
    // Every way tried, and why each failed: the last one alone (WebSocket) hid a plain wrong port.
    const failures: UplinkFailure[] = [{ kind: 'udp', target: `udp ${formatHostPort(this.rv)}`, reason: 'no answer to a hello' }];
    for (const kind of ['tcp', 'websocket'] as const) {
      try {
        await this.useLink(kind);
        return;
      } catch (err) {
        const target = linkTarget(kind, this.rv);
        const message = (err as Error).message;
        const prefix = `cannot reach the rendezvous over ${target}: `; // TcpUplink's own wording, see describe()
        failures.push({ kind, target, reason: message.startsWith(prefix) ? message.slice(prefix.length) : message });
      }
    }
    throw noUplinkError(this.opts.registry, failures);
  }

  /** Back to UDP once the rendezvous answers there again (auto mode). True when it switched (the caller registers again). */
  async maybeBackToUdp(): Promise<boolean> {
    if (!this.uplink || this.opts.uplink !== 'auto' || Date.now() < this.tcpUntil) return false;
    if (!(await this.udpAnswers())) return false;
    const old = this.uplink;
    this.uplink = undefined;
    this.uplinkKind = 'udp';
    old.close();
    this.host.log.info('rendezvous answers on UDP again: uplink back to UDP');
    this.host.uplinkChanged('udp');
    return true;
  }

  /** Issue 19: carry the relay over TCP until `until` (auto mode, from UDP only). True when it switched (the caller registers again). */
  async preferTcp(until: number): Promise<boolean> {
    this.tcpUntil = Math.max(this.tcpUntil, until);
    if (this.uplink || this.opts.uplink !== 'auto' || this.switchingToTcp) return false; // two policed peers at once: one switch
    this.switchingToTcp = true;
    try {
      await this.useLink('tcp');
    } finally {
      this.switchingToTcp = false;
    }
    return true;
  }

  /** A TCP link can be dead without knowing it (no RST through a NAT): start a fresh one. */
  reconnectUplink(reason: string): void {
    this.uplink?.reconnect(reason);
  }

  /** A quick hello over UDP: does the rendezvous answer us on UDP at all? */
  private async udpAnswers(): Promise<boolean> {
    if (this.opts.probeUdp) return this.opts.probeUdp();
    const serverKey = this.opts.serverKey();
    const probe = new RegistryClient({
      identity: this.opts.identity,
      send: (pkt: Buffer) => this.sendUdp(pkt, this.rv.host, this.rv.port),
      ...(serverKey ? { serverKey } : {}),
      timeoutMs: 300,
      retries: 3,
    });
    this.udpProbe = probe;
    try {
      await probe.hello();
      return true;
    } catch {
      return false;
    } finally {
      this.udpProbe = undefined;
      probe.close?.();
    }
  }

  private async useLink(mode: TcpUplinkMode): Promise<void> {
    const up = this.opts.makeLink?.(mode) ?? new TcpUplink({ host: this.rv.host, port: this.rv.port, mode });
    up.on('packet', (pkt: Buffer) => this.onLinkPacket(pkt));
    await up.connect();
    this.uplink = up;
    this.uplinkKind = mode;
    this.host.uplinkChanged(mode);
    this.host.log.info({ mode }, 'rendezvous uplink over TCP');
    up.on('down', (reason: string) => this.host.uplinkDown(reason));
    up.on('up', () => this.host.uplinkUp());
  }

  /** What comes over the TCP/WebSocket uplink: registry answers and pushes, relayed session packets. */
  private onLinkPacket(pkt: Buffer): void {
    switch (pkt[0]) {
      case PacketType.RegistryResponse:
      case PacketType.RegistryPush:
        this.host.registryPacket(pkt);
        return;
      case PacketType.RelayDeliver:
        this.onRelayDeliver(pkt);
        return;
      default:
        this.host.counters.garbage++;
    }
  }

  // ---------- demux of incoming datagrams ----------

  /** One datagram on the main socket (`sock` undefined) or on birthday socket `sock`. */
  onUdp(msg: Buffer, rinfo: { address: string; port: number }, sock?: number): void {
    const counters = this.host.counters;
    counters.udpIn++;
    if (msg.length === 0) {
      counters.garbage++;
      return;
    }
    const t = msg[0];
    const fromRegistry = sock === undefined && rinfo.address === this.rv.host && rinfo.port === this.rv.port;
    switch (t) {
      case PacketType.RegistryResponse:
      case PacketType.RegistryPush:
      case PacketType.RegistryCookie: // return-routability cookie: the client re-signs and retries
        if (fromRegistry) {
          this.udpProbe?.handlePacket(msg);
          if (!this.uplink) this.host.registryPacket(msg);
        } else if (sock === undefined && rinfo.address === this.rv.host && rinfo.port === this.altPort) this.altRegistry?.handlePacket(msg);
        else counters.garbage++;
        return;
      case PacketType.HandshakeInit:
      case PacketType.HandshakeResp:
      case PacketType.Data:
      case PacketType.SessionUnknown:
      case PacketType.HandshakeCookie: {
        const p: Path =
          sock === undefined ? { kind: 'direct', host: rinfo.address, port: rinfo.port } : { kind: 'direct', host: rinfo.address, port: rinfo.port, sock };
        this.host.sessionPacket(msg, p);
        return;
      }
      case PacketType.RelayDeliver:
        if (!fromRegistry || this.uplink) {
          counters.garbage++;
          return;
        }
        this.onRelayDeliver(msg);
        return;
      default:
        counters.garbage++;
    }
  }

  private onRelayDeliver(msg: Buffer): void {
    if (msg.length < 1 + ADDRESS_BYTES + 1) {
      this.host.counters.garbage++;
      return;
    }
    this.host.counters.relayIn++;
    // The session layer authenticates the inner packet by its keys alone; the
    // relay's word for the sender only scopes per-source handshake limits and cookies.
    this.host.sessionPacket(msg.subarray(1 + ADDRESS_BYTES), { kind: 'relay', from: readAddress(msg, 1) });
  }

  // ---------- the beacon's second port (NAT classification) ----------

  /**
   * Hello to the beacon's second port from the main socket: the endpoint it
   * observed, or undefined (no second port, or no answer).
   */
  async helloAlt(altPort: number | undefined): Promise<string | undefined> {
    this.altPort = altPort;
    if (altPort === undefined) return undefined;
    this.altRegistry ??= new RegistryClient({
      identity: this.opts.identity,
      send: (pkt: Buffer) => this.sendUdp(pkt, this.rv.host, altPort),
      serverKey: this.opts.serverKey()!,
      timeoutMs: 500,
      retries: 2,
    });
    return (await this.altRegistry.hello().catch(() => undefined))?.observed;
  }

  // ---------- birthday sockets ----------

  openSprayPorts(n: number): number[] {
    const ids: number[] = [];
    for (let i = 0; i < n; i++) {
      const id = this.sprayNext++;
      const sock = createUdpSocket({ type: 'udp4' });
      sock.on('error', () => {});
      sock.on('message', (msg, rinfo) => this.onUdp(msg, rinfo, id));
      // bind synchronously enough: send() binds an unbound socket to an ephemeral port
      sock.bind(0);
      this.spray.set(id, { sock, opened: this.host.now() });
      ids.push(id);
    }
    return ids;
  }

  /** Close birthday sockets that no peer path uses, once no attempt is running. */
  releaseSprayPorts(): void {
    if (this.spray.size === 0) return;
    const now = this.host.now();
    const keep = this.host.spraySocketsInUse();
    const active = this.host.birthdayActive(now);
    for (const [id, s] of this.spray) {
      if (keep.has(id) || (active && now - s.opened < 10_000)) continue;
      s.sock.close();
      this.spray.delete(id);
    }
  }

  get sprayCount(): number {
    return this.spray.size;
  }

  /** Birthday sockets, the beacon client and the uplink (the main socket stays until closeSocket()). */
  close(): void {
    for (const s of this.spray.values()) s.sock.close();
    this.spray.clear();
    this.altRegistry?.close?.();
    this.uplink?.close();
  }

  closeSocket(): Promise<void> {
    return new Promise<void>((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}

/** One uplink tried while looking for the rendezvous, and why it failed. */
export interface UplinkFailure {
  kind: 'udp' | 'tcp' | 'websocket';
  /** "udp 127.0.0.1:9000", "tcp 127.0.0.1:9000", "websocket ws://127.0.0.1:9000/pilot". */
  target: string;
  reason: string;
}

function linkTarget(kind: TcpUplinkMode, rv: HostPort): string {
  return kind === 'tcp' ? `tcp ${formatHostPort(rv)}` : `websocket ws://${formatHostPort(rv)}/pilot`;
}

/**
 * One error when no uplink reached the rendezvous: each one tried with its
 * reason, and a hint from what the reasons have in common (refused = nothing
 * listens on that port; timeouts = a firewall or a wrong host).
 */
export function noUplinkError(registry: string, failures: readonly UplinkFailure[]): PilotError {
  const links = failures.filter((f) => f.kind !== 'udp');
  const all = (re: RegExp): boolean => links.length > 0 && links.every((f) => re.test(f.reason));
  let hint: string;
  if (all(/ECONNREFUSED|refused/i))
    hint = `nothing accepts connections on ${registry}: is pilot-rendezvous running there, and is that its --listen port? check --registry HOST:PORT`;
  else if (all(/timeout|timed out|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH/i))
    hint = `${registry} did not answer at all: check the host in --registry HOST:PORT, and that a firewall lets UDP or TCP to it through`;
  else hint = `check --registry HOST:PORT (${registry}) and that pilot-rendezvous runs there; --uplink tcp or websocket forces one way`;
  return new PilotError('UNREACHABLE', `no uplink reached the rendezvous ${registry}: ${failures.map((f) => `${f.target}: ${f.reason}`).join('; ')}`, hint);
}
