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
import { PacketType, RELAY_OVERHEAD } from '../wire/packet-types.ts';
import { readAddress, writeAddress, type Address, ADDRESS_BYTES } from '../wire/address.ts';
import { formatHostPort, parseHostPort, type HostPort } from '../util/hostport.ts';
import { PilotError } from '../util/errors.ts';
import { listenError } from '../util/listen-error.ts';
import { createUdpSocket } from '../util/udp-socket.ts';
import { UdpBatcher } from '../util/udp-batcher.ts';
import { loadGso, socketFd, type GsoBinding } from '../util/udp-gso.ts';
import { UdpBatchReceiver } from '../util/udp-receiver.ts';
import type { Logger } from '../util/logger.ts';
import type { Path, UplinkKind } from '../nat/path.ts';
import { TcpUplink, type TcpUplinkMode } from '../uplink/tcp-uplink.ts';
import { wssLinkOptions, type WssConfig } from '../uplink/wss-config.ts';
import { EdgeAddresses, noIpv6, socketOptions, socketPlans, type SocketPlan } from './dual-stack.ts';

/** What the underlay counts (a slice of the daemon's `counters`, shared by reference: `pilotctl stats` shows them). */
export interface UnderlayCounters {
  garbage: number;
  relayIn: number;
  relayOut: number;
  udpIn: number;
  udpOut: number;
  /** UDP GSO sends (one sendmsg for many packets) and the packets they carried (also counted in udpOut). */
  gsoSends: number;
  gsoPackets: number;
  /** Batched receives (one recvmmsg and one JavaScript call) and the packets they carried (also counted in udpIn). */
  rxBatches: number;
  rxBatchPackets: number;
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
  uplink: 'auto' | 'udp' | 'tcp' | 'websocket' | 'wss';
  /** WebSocket over TLS (--wss URL, --tls-ca, --proxy): tried last in auto mode, or forced by uplink 'wss'. */
  wss?: WssConfig;
  identity: Identity;
  /** The pinned rendezvous key, read when a probe client is made (learnt by the first hello). */
  serverKey: () => Buffer | undefined;
  /** Seams for unit tests: does the rendezvous answer on UDP, and how a TCP/WebSocket link is opened. */
  probeUdp?: () => Promise<boolean>;
  makeLink?: (mode: TcpUplinkMode) => RendezvousLink;
  /** An IPv6-only host behind NAT64: the /96 prefix IPv4 destinations are synthesised in (dual-stack.ts). */
  nat64?: Uint8Array;
  /** Seam for the no-IPv6-kernel fallback test: makes the socket of a plan. */
  makeSocket?: (plan: SocketPlan) => dgram.Socket;
}

function newSocket(plan: SocketPlan): dgram.Socket {
  return createUdpSocket({ ...socketOptions(plan), recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
}

export class Underlay {
  private readonly host: UnderlayHost;
  private readonly opts: UnderlayOptions;
  private readonly rv: HostPort;
  private socket!: dgram.Socket;
  /** The main socket's sends, coalesced into UDP GSO batches where the kernel allows (src/util/udp-batcher.ts). */
  private batcher: UdpBatcher | undefined;
  /** The main socket's reads, a batch of datagrams per system call and per JavaScript call (src/util/udp-receiver.ts); undefined: dgram's. */
  private receiver: UdpBatchReceiver | undefined;
  /** IPv4-mapped and NAT64 addresses in and out of the socket (one udp6 socket for both families). */
  private edge: EdgeAddresses;
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
  /** The last source address as the socket gave it, and as inbound() made it. */
  private lastRawSource = '';
  private lastSource = '';
  /** The Path of the last relayed datagram and its sender's addressKey (relayPath()). */
  private lastRelay: Path | undefined;
  private lastRelayKey = -1;
  /** The Path of the last session datagram (directPath()). */
  private lastPath: (Path & { kind: 'direct' }) | undefined;

  constructor(host: UnderlayHost, opts: UnderlayOptions) {
    this.host = host;
    this.opts = opts;
    this.edge = new EdgeAddresses('ipv4', opts.nat64);
    this.rv = { host: this.edge.normalize(opts.rendezvous.host), port: opts.rendezvous.port };
  }

  /** dual (one udp6 socket for both), ipv4 or ipv6: what the bound socket reaches. */
  get family(): EdgeAddresses['family'] {
    return this.edge.family;
  }

  /** `--listen none`: no UDP socket at all (serverless/sandboxed nodes); everything goes over a TCP uplink and the relay. */
  private get noUdp(): boolean {
    return this.opts.listen === 'none';
  }

  /** The rendezvous's IP as the UDP socket reaches it (relayed packets go there). */
  get rendezvousHost(): string {
    return this.rv.host;
  }

  /** UDP, or the TCP/WebSocket uplink in use. */
  get kind(): UplinkKind {
    return this.uplinkKind;
  }

  /** The main socket's bound address and port; port 0 once it is closed (a check still running at stop must not throw). */
  address(): { address: string; port: number } {
    if (this.noUdp) return { address: '0.0.0.0', port: 0 };
    try {
      return this.socket.address();
    } catch {
      return { address: '0.0.0.0', port: 0 }; // ERR_SOCKET_DGRAM_NOT_RUNNING: closed
    }
  }

  /**
   * Bind the one UDP socket. With no fixed port we reuse the port of the last
   * run, so peers holding a session to our old endpoint reach the restarted
   * daemon at once (and get the "unknown session" hint that makes them re-handshake).
   */
  async bind(): Promise<void> {
    if (this.noUdp) return;
    const listen = parseHostPort(this.opts.listen, 0);
    const portFile = path.join(this.opts.home, 'udp-port');
    const previous = listen.port === 0 && fs.existsSync(portFile) ? Number(fs.readFileSync(portFile, 'utf8')) : 0;
    const plans = socketPlans(listen.host);
    let plan = plans[0]!;
    const make = (p: SocketPlan): dgram.Socket => (this.opts.makeSocket ?? newSocket)(p);
    const bind = (port: number): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        // A failed bind leaves the socket unusable: every try gets a fresh one.
        this.socket = make(plan);
        this.socket.once('error', reject);
        this.socket.bind(port, plan.host, () => {
          this.socket.off('error', reject);
          resolve();
        });
      });
    /** The plans in order: a kernel without IPv6 refuses the dual-stack socket, then IPv4 alone. */
    const bindAny = async (port: number): Promise<void> => {
      for (let i = 0; ; i++) {
        plan = plans[i]!;
        try {
          return await bind(port);
        } catch (err) {
          if (i + 1 >= plans.length || !noIpv6(err)) throw err;
          this.host.log.info({ err: (err as Error).message }, 'no IPv6 here: one IPv4 socket');
        }
      }
    };
    const bindListen = (): Promise<void> =>
      bindAny(listen.port).catch((err: unknown) => {
        throw listenError(err, 'udp', listen.host, listen.port, '--listen');
      });
    if (previous > 0 && previous < 65536) {
      try {
        await bindAny(previous);
      } catch {
        // Taken by someone else.
        await bindListen();
      }
    } else {
      await bindListen();
    }
    this.edge = new EdgeAddresses(plan.family, this.opts.nat64);
    this.batcher = new UdpBatcher(this.socket, { log: this.host.log, gso: this.dfForGso(loadGso()), counters: this.host.counters });
    if (listen.port === 0) fs.writeFileSync(portFile, `${this.socket.address().port}\n`, { mode: 0o600 });
    this.socket.on('error', (err) => this.host.log.warn({ err }, 'udp socket error'));
    // dgram's listener stays: it reads whenever the batched reader is off or has handed the socket back
    this.socket.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo.address, rinfo.port, undefined));
    this.receiver = UdpBatchReceiver.start(this.socket, (msg, host, port) => this.onDatagram(msg, host, port, undefined), {
      log: this.host.log,
      counters: this.host.counters,
    });
  }

  /**
   * GSO only with DF on every datagram: a GSO send is one datagram bigger than the path MTU, which
   * Linux's default mode sends without DF, so routers fragmented its segments and the path MTU
   * discoverer never saw a black hole (test/nat/path-mtu.test.ts failed with GSO on). We discover
   * the path MTU ourselves (RFC 8899), as QUIC stacks do, so DF always is what we want anyway.
   */
  private dfForGso(gso: GsoBinding | undefined): GsoBinding | undefined {
    if (!gso) return undefined;
    const fd = socketFd(this.socket);
    const rc = fd === undefined ? -1 : gso.dfAlways(fd);
    if (rc === 0) return gso;
    this.host.log.info({ rc }, 'cannot set DF on the UDP socket: sending without GSO');
    return undefined;
  }

  sendUdp(pkt: Buffer, host: string, port: number, sock?: number): void {
    if (this.noUdp) return;
    this.host.counters.udpOut++;
    if (!this.edge.reaches(host)) return;
    if (sock === undefined) this.batcher?.send(pkt, this.edge.outboundUdp(host), port);
    else this.spray.get(sock)?.sock.send(pkt, port, this.edge.outboundUdp(host));
  }

  /** Registry, beacon and relay traffic: UDP on the one socket (the TCP uplink when UDP is blocked). */
  sendToRendezvous(pkt: Buffer): void {
    if (this.uplink) {
      this.uplink.send(pkt);
      return;
    }
    this.sendUdp(pkt, this.rv.host, this.rv.port);
  }

  /**
   * An outer packet for `dst`, through the rendezvous relay. `room`: the RELAY_OVERHEAD bytes in
   * front of `inner`, in its memory, are the caller's to overwrite (a transport packet, built with
   * that much spare headroom: peer-table.ts); the relay header is written there and the packet
   * leaves without a copy. Otherwise (handshakes, probes, cookies) it is copied behind a header.
   */
  sendRelay(dst: Address, inner: Buffer, room = false): void {
    let pkt: Buffer;
    if (room && inner.byteOffset >= RELAY_OVERHEAD) {
      pkt = Buffer.from(inner.buffer, inner.byteOffset - RELAY_OVERHEAD, inner.length + RELAY_OVERHEAD);
    } else {
      pkt = Buffer.allocUnsafe(RELAY_OVERHEAD + inner.length);
      inner.copy(pkt, RELAY_OVERHEAD);
    }
    pkt[0] = PacketType.RelaySend;
    writeAddress(pkt, 1, dst);
    this.host.counters.relayOut++;
    this.sendToRendezvous(pkt);
  }

  // ---------- uplink: UDP, or TCP / WebSocket when UDP is blocked ----------

  /** Per config: UDP, TCP or WebSocket; `auto` = UDP if the rendezvous answers there, else TCP, else WebSocket. */
  async chooseUplink(): Promise<void> {
    const mode = this.opts.uplink;
    if (mode === 'udp') return;
    if (mode === 'tcp' || mode === 'websocket' || mode === 'wss') return this.useLink(mode);
    const failures: UplinkFailure[] = [];
    if (this.noUdp) failures.push({ kind: 'udp', target: 'udp', reason: 'no UDP socket (--listen none)' });
    else {
      if (await this.udpAnswers()) return;
      this.host.log.warn({ registry: this.opts.registry }, 'no UDP answer from the rendezvous: trying TCP');
      failures.push({ kind: 'udp', target: `udp ${formatHostPort(this.rv)}`, reason: 'no answer to a hello' });
    }
    // Every way tried, and why each failed: the last one alone (WebSocket) hid a plain wrong port.
    // Then WebSocket over TLS (through a proxy when one is set), for networks that let only HTTPS out.
    for (const kind of this.opts.wss ? (['tcp', 'websocket', 'wss'] as const) : (['tcp', 'websocket'] as const)) {
      try {
        await this.useLink(kind);
        return;
      } catch (err) {
        const message = (err as Error).message;
        const m = /^cannot reach the rendezvous over (.+?): (.*)$/s.exec(message); // TcpUplink's own wording, see describe()
        failures.push({
          kind,
          target: m ? m[1]! : linkTarget(kind, this.rv),
          reason: m ? m[2]! : message,
          ...(err instanceof PilotError ? { error: err } : {}),
        });
      }
    }
    throw noUplinkError(this.opts.registry, failures);
  }

  /** Back to UDP once the rendezvous answers there again (auto mode). True when it switched (the caller registers again). */
  async maybeBackToUdp(): Promise<boolean> {
    if (!this.uplink || this.opts.uplink !== 'auto' || this.noUdp || Date.now() < this.tcpUntil) return false;
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
    const up =
      this.opts.makeLink?.(mode) ??
      new TcpUplink(mode === 'wss' ? wssLinkOptions(this.opts.wss) : { host: this.edge.outboundTcp(this.rv.host), port: this.rv.port, mode });
    up.on('packet', (pkt: Buffer) => this.onLinkPacket(pkt));
    await up.connect();
    this.uplink = up;
    this.uplinkKind = mode;
    this.host.uplinkChanged(mode);
    this.host.log.info({ mode, ...(up instanceof TcpUplink ? { via: up.describe() } : {}) }, 'rendezvous uplink over TCP');
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
  onUdp(msg: Buffer, from: { address: string; port: number }, sock?: number): void {
    this.onDatagram(msg, from.address, from.port, sock);
  }

  private onDatagram(msg: Buffer, rawAddress: string, port: number, sock: number | undefined): void {
    // On the dual-stack socket every IPv4 source comes as "::ffff:a.b.c.d": unmapped once per
    // source, not sliced into a new string (and a new rinfo object) for every datagram.
    let address: string;
    if (rawAddress === this.lastRawSource) address = this.lastSource;
    else {
      address = this.edge.inbound(rawAddress);
      this.lastRawSource = rawAddress;
      this.lastSource = address;
    }
    const counters = this.host.counters;
    counters.udpIn++;
    if (msg.length === 0) {
      counters.garbage++;
      return;
    }
    const t = msg[0];
    const fromRegistry = sock === undefined && address === this.rv.host && port === this.rv.port;
    switch (t) {
      case PacketType.RegistryResponse:
      case PacketType.RegistryPush:
      case PacketType.RegistryCookie: // return-routability cookie: the client re-signs and retries
        if (fromRegistry) {
          this.udpProbe?.handlePacket(msg);
          if (!this.uplink) this.host.registryPacket(msg);
        } else if (sock === undefined && address === this.rv.host && port === this.altPort) this.altRegistry?.handlePacket(msg);
        else counters.garbage++;
        return;
      case PacketType.HandshakeInit:
      case PacketType.HandshakeResp:
      case PacketType.Data:
      case PacketType.SessionUnknown:
      case PacketType.HandshakeCookie: {
        this.host.sessionPacket(msg, this.directPath(address, port, sock));
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

  /**
   * The Path of a datagram from `host`:`port` (on birthday socket `sock`): the same object as
   * for the previous datagram when it came from the same place, which in a bulk transfer is
   * nearly every one. Paths are never mutated (they are compared by value and kept as the
   * peer's current path), so sharing one is safe; it spares an allocation per packet and
   * lets samePath() end at `a === b`.
   */
  private directPath(host: string, port: number, sock: number | undefined): Path {
    const last = this.lastPath;
    if (last !== undefined && last.port === port && last.host === host && last.sock === sock) return last;
    const p: Path & { kind: 'direct' } = sock === undefined ? { kind: 'direct', host, port } : { kind: 'direct', host, port, sock };
    this.lastPath = p;
    return p;
  }

  private onRelayDeliver(msg: Buffer): void {
    if (msg.length < 1 + ADDRESS_BYTES + 1) {
      this.host.counters.garbage++;
      return;
    }
    this.host.counters.relayIn++;
    // The session layer authenticates the inner packet by its keys alone; the
    // relay's word for the sender only scopes per-source handshake limits and cookies.
    this.host.sessionPacket(msg.subarray(1 + ADDRESS_BYTES), this.relayPath(msg));
  }

  /** The Path of a relayed datagram: like directPath(), the previous one while the relay names the same sender. */
  private relayPath(msg: Buffer): Path {
    const key = msg.readUInt16BE(1) * 0x100000000 + msg.readUInt32BE(3); // addressKey() of the 6 address bytes
    if (this.lastRelay !== undefined && this.lastRelayKey === key) return this.lastRelay;
    const p: Path = { kind: 'relay', from: readAddress(msg, 1) };
    this.lastRelay = p;
    this.lastRelayKey = key;
    return p;
  }

  // ---------- the beacon's second port (NAT classification) ----------

  /**
   * Hello to the beacon's second port from the main socket: the endpoint it
   * observed, or undefined (no second port, or no answer).
   */
  async helloAlt(altPort: number | undefined): Promise<string | undefined> {
    this.altPort = altPort;
    if (altPort === undefined || this.noUdp) return undefined;
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
    if (this.noUdp) return ids;
    for (let i = 0; i < n; i++) {
      const id = this.sprayNext++;
      const sock = createUdpSocket(socketOptions({ type: this.edge.family === 'ipv4' ? 'udp4' : 'udp6', host: '', family: this.edge.family }));
      sock.on('error', () => {});
      sock.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo.address, rinfo.port, id));
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
    if (this.noUdp) return Promise.resolve(); // never bound: there is no socket
    return new Promise<void>((resolve) => {
      try {
        this.batcher?.flush(); // a goodbye queued in this callback leaves before the socket closes
        this.receiver?.close(); // its own fd would keep the port bound past the socket's close
        this.socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}

/** One uplink tried while looking for the rendezvous, and why it failed. */
export interface UplinkFailure {
  kind: 'udp' | 'tcp' | 'websocket' | 'wss';
  /** "udp 127.0.0.1:9000", "tcp 127.0.0.1:9000", "websocket ws://127.0.0.1:9000/pilot". */
  target: string;
  reason: string;
  /** The coded error, when it says more than UNREACHABLE (PROXY_AUTH, TLS_UNTRUSTED, ...). */
  error?: PilotError;
}

function linkTarget(kind: TcpUplinkMode, rv: HostPort): string {
  return kind === 'tcp' ? `tcp ${formatHostPort(rv)}` : kind === 'wss' ? 'wss' : `websocket ws://${formatHostPort(rv)}/pilot`;
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
  // A proxy or certificate problem on the last resort (wss) is the cause worth naming: its code and hint win.
  const coded = [...failures].reverse().find((f) => f.error && f.error.code !== 'UNREACHABLE');
  if (coded?.error)
    return new PilotError(
      coded.error.code,
      `no uplink reached the rendezvous ${registry}: ${failures.map((f) => `${f.target}: ${f.reason}`).join('; ')}`,
      coded.error.hint,
    );
  return new PilotError('UNREACHABLE', `no uplink reached the rendezvous ${registry}: ${failures.map((f) => `${f.target}: ${f.reason}`).join('; ')}`, hint);
}
