// The agent daemon: one UDP socket for everything (registry, beacon, relay,
// encrypted peer sessions), a Connection (streams + datagrams) per peer, the
// built-in services, and the IPC socket for pilotctl and the SDK.
import type dgram from 'node:dgram';
import dns from 'node:dns/promises';
import os from 'node:os';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import { loadOrCreateIdentity, type Identity } from '../crypto/identity.ts';
import { SessionManager } from '../crypto/session-manager.ts';
import { Connection } from '../transport/connection.ts';
import { RegistryClient } from '../registry/client.ts';
import { PacketType } from '../wire/packet-types.ts';
import { addressKey, formatAddress, parseAddress, readAddress, writeAddress, type Address, ADDRESS_BYTES } from '../wire/address.ts';
import { PilotError } from '../util/errors.ts';
import { parseHostPort, type HostPort } from '../util/hostport.ts';
import { createUdpSocket } from '../util/udp-socket.ts';
import type { Logger } from '../util/logger.ts';
import { saveConfig, type DaemonConfig } from './config.ts';
import { PortTable, type IncomingStream } from './ports.ts';
import { describePath, parseEndpoint, type Path, type UplinkKind } from '../nat/path.ts';
import { PathManager } from '../nat/path-manager.ts';
import { onLinkPayload } from '../nat/link-mtu.ts';
import { TcpUplink } from '../uplink/tcp-uplink.ts';
import { Inner } from '../nat/inner.ts';
import { classifyNat, type NatType } from '../nat/nat-type.ts';
import { DATA_HEADER_BYTES } from '../crypto/session.ts';
import { TAG_BYTES } from '../crypto/aead.ts';
import { DEFAULT_MAX_PLAINTEXT } from '../wire/packet-types.ts';
import { startEcho } from './services/echo.ts';
import { startSink } from './services/sink.ts';
import { parseTarget, resolveTargetText, type ResolvedNode } from './targets.ts';
import { VERSION } from './version.ts';
import { TrustBook } from './trust.ts';
import { handshakeLimits, handshakeSource, PeerVerifier } from './handshake-guard.ts';
import { ECHO_PORT } from './services/echo.ts';
import { startBuiltinServices, type BuiltinServices } from './builtin-services.ts'; // built-in services
import { GatewayService } from '../gateway/service.ts'; // gateway + expose
import { daemonReport } from './report.ts'; // heartbeat self-report for rendezvous metrics
import { AccessPolicy } from './access-policy.ts'; // who may reach which port (issue 15 hole 1)
import { PeerLimit } from './peer-limit.ts'; // bounded untrusted peers (hole 7)

const HEARTBEAT_MS = 20_000;
const RESOLVE_TTL_MS = 30_000;
const MAX_CANDIDATES = 4;
/** Path timers (punching rounds, keepalives, dead-path checks). */
const PATH_TICK_MS = 100;
/** How often the local network and the NAT type are re-checked. */
const NETWORK_CHECK_MS = 5_000;
const NAT_RECHECK_MS = 60_000;
/** Session plaintext = [inner type byte][transport packet]: room for encryption in place around it. */
const HEADROOM = DATA_HEADER_BYTES + 1;

export interface Peer {
  readonly key: number;
  readonly address: Address;
  publicKey: Buffer;
  hostname: string | undefined;
  candidates: HostPort[];
  /** Public nodes may be pinged by anyone (echo only); everything else needs trust. */
  public: boolean;
  conn: Connection;
  resolvedAt: number;
  lastSeen: number;
}

export interface DaemonOptions {
  home: string;
  config: DaemonConfig;
  logger: Logger;
}

export class Daemon extends EventEmitter {
  readonly home: string;
  readonly config: DaemonConfig;
  readonly log: Logger;
  readonly identity: Identity;
  readonly ports = new PortTable();
  readonly trust: TrustBook;
  /** built-in services: inbox + files (1001), pub/sub (1002), tasks (1003), webhooks (src/services). */
  services: BuiltinServices | undefined;
  /** gateway + expose: remote agents as local IPs, virtual ports forwarded to local services. */
  readonly gateway: GatewayService = new GatewayService(this);
  readonly bootId = crypto.randomBytes(8);
  readonly startedAt = Date.now();
  readonly version = VERSION;
  address: Address | undefined;
  observed: string | undefined;
  registryOnline = false;
  natType: NatType = 'unknown';
  uplinkKind: UplinkKind = 'udp';
  private socket: dgram.Socket;
  /** Extra sockets for birthday probing (id -> socket); id 0 is never used (the main socket). */
  private readonly spray = new Map<number, { sock: dgram.Socket; opened: number }>();
  private sprayNext = 1;
  private paths!: PathManager;
  private pathTimer: NodeJS.Timeout | undefined;
  private netTimer: NodeJS.Timeout | undefined;
  private lastLan = '';
  private lastNatCheck = 0;
  private altPort: number | undefined;
  private registryEndpoint!: HostPort;
  private registry!: RegistryClient;
  private sessions!: SessionManager;
  private readonly peers = new Map<number, Peer>();
  /** Registry checks of the key a message 1 claims (src/daemon/handshake-guard.ts). */
  readonly verifier = new PeerVerifier({ lookup: (address: Address) => this.resolve({ address }) });
  /** The one place that decides who may reach which port. */
  readonly access: AccessPolicy = new AccessPolicy({
    isTrusted: (a) => this.isTrusted(a),
    amPublic: () => this.config.public,
    peerIsPublic: (a) => this.peers.get(addressKey(a))?.public === true,
  });
  private readonly peerLimit: PeerLimit;
  private peerLimitTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private stopServices: Array<() => void> = [];
  readonly counters = { garbage: 0, relayIn: 0, relayOut: 0, udpIn: 0, udpOut: 0, refusedUntrusted: 0, untrustedEvicted: 0 };

  private constructor(opts: DaemonOptions) {
    super();
    this.home = opts.home;
    this.config = opts.config;
    this.log = opts.logger;
    this.identity = loadOrCreateIdentity(opts.home);
    this.trust = new TrustBook(opts.home);
    this.peerLimit = new PeerLimit({ idleMs: opts.config.untrustedIdleMs, maxUntrusted: opts.config.maxUntrustedPeers });
    this.socket = createUdpSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
  }

  static async start(opts: DaemonOptions): Promise<Daemon> {
    const d = new Daemon(opts);
    try {
      await d.init();
    } catch (err) {
      await d.stop();
      throw err;
    }
    return d;
  }

  private async init(): Promise<void> {
    const reg = parseHostPort(this.config.registry, 9000);
    const ip = await dns.lookup(reg.host, { family: 4 }).catch(() => {
      throw new PilotError('UNREACHABLE', `cannot resolve rendezvous host ${reg.host}`, 'check --registry HOST:PORT');
    });
    this.registryEndpoint = { host: ip.address, port: reg.port };
    await this.bindSocket();
    this.socket.on('error', (err) => this.log.warn({ err }, 'udp socket error'));
    this.socket.on('message', (msg, rinfo) => this.onUdp(msg, rinfo));

    this.registry = new RegistryClient({
      identity: this.identity,
      send: (pkt: Buffer) => this.sendToRendezvous(pkt),
      rendezvous: this.config.registry,
      ...(this.config.serverKey ? { serverKey: Buffer.from(this.config.serverKey, 'base64') } : {}),
    });
    this.registry.on('push', (push: { event: string; data: Record<string, unknown> }) => this.onPush(push));
    await this.chooseUplink();

    if (!this.config.serverKey) {
      const hello = await this.registry.hello();
      this.config.serverKey = Buffer.from(hello.serverKey).toString('base64');
      saveConfig(this.home, this.config);
    }
    await this.register();

    this.sessions = new SessionManager({
      identity: this.identity,
      localAddress: this.address!,
      bootId: this.bootId,
      send: (peerKey: number, packet: Buffer, via?: unknown) => this.sendToPeer(peerKey, packet, via as Path | undefined),
      sendRaw: (packet: Buffer, p: unknown) => {
        const where = p as Path;
        if (where.kind === 'direct') this.sendUdp(packet, where.host, where.port, where.sock);
        // A cookie reply goes back to the node the rendezvous says sent the message 1 (smaller than it).
        else if (where.from !== undefined && packet[0] === PacketType.HandshakeCookie) this.sendRelay(where.from, packet);
      },
      sourceOf: handshakeSource,
      ...handshakeLimits(this.config),
      verifyPeer: (address: Address, publicKey: Buffer) => this.verifyPeer(address, publicKey),
    });
    this.paths = new PathManager(
      {
        now: () => Date.now(),
        sendVia: (peerKey, msg, via) => {
          const peer = this.peers.get(peerKey);
          return peer !== undefined && this.sessions.sendVia({ address: peer.address, publicKey: peer.publicKey }, msg, via);
        },
        local: () => ({ eps: this.localCandidates(), nat: this.natType }),
        openSprayPorts: (n) => this.openSprayPorts(n),
        releaseSprayPorts: () => this.releaseSprayPorts(),
        mayPunch: (peerKey) => {
          const peer = this.peers.get(peerKey);
          return peer !== undefined && this.isTrusted(peer.address);
        },
      },
      { probeBudgetPeer: this.config.probeBudgetPeer, probeBudgetTotal: this.config.probeBudgetTotal },
    );
    this.paths.on('change', (peerKey, p, reason) => {
      const peer = this.peers.get(peerKey);
      if (peer) peer.conn.setMaxPacketSize(this.packetSizeFor(p));
      this.log.info({ peer: peer ? formatAddress(peer.address) : peerKey, path: describePath(p, this.uplinkKind), reason }, 'peer path');
      if (peer) this.emit('peer-path', peer, reason); // for SDK event subscribers (src/daemon/sdk-handlers.ts)
    });
    this.sessions.on('message', (peerKey: number, plaintext: Buffer, via: Path) => {
      const peer = this.peers.get(peerKey);
      if (!peer) return;
      peer.lastSeen = Date.now();
      // First byte: the transport, or the path layer's own messages (probes, candidates).
      if (plaintext[0] === Inner.Transport) peer.conn.receivePacket(plaintext.subarray(1));
      else this.paths.onInner(peerKey, plaintext, via);
    });
    this.sessions.on('session', (peerKey: number, info: { address: Address; publicKey: Buffer }) => {
      this.adoptPeer(info.address, info.publicKey);
      this.log.info({ peer: formatAddress(info.address) }, 'session established');
      this.emit('peer-session', info.address); // SDK 'peer-up' (src/daemon/sdk-handlers.ts)
      this.paths.onSession(peerKey);
    });
    this.sessions.on('path', (peerKey: number, p: Path) => this.paths.onAuthenticated(peerKey, p));
    this.sessions.on('peer-restarted', (peerKey: number) => {
      const peer = this.peers.get(peerKey);
      if (!peer) return;
      this.log.info({ peer: formatAddress(peer.address) }, 'peer restarted: resetting its streams');
      this.emit('peer-lost', peer.address, 'peer restarted'); // SDK 'peer-down'
      peer.conn.reset('peer restarted');
      peer.conn = this.newConnection(peer.address);
    });

    this.sessions.on('handshake-failed', (peerKey: number) => {
      const peer = this.peers.get(peerKey);
      if (!peer) return;
      // The peer may have moved: ask the registry again next time.
      peer.resolvedAt = 0;
      this.emit('peer-lost', peer.address, 'unreachable'); // SDK 'peer-down'
    });
    this.pathTimer = setInterval(() => this.paths.tick(), PATH_TICK_MS);
    this.pathTimer.unref();
    this.peerLimitTimer = setInterval(() => this.forgetIdleUntrusted(), this.peerLimit.sweepEveryMs);
    this.peerLimitTimer.unref();
    this.lastLan = JSON.stringify(this.lanEndpoints());
    await this.checkNat();
    this.netTimer = setInterval(() => void this.checkNetwork(), NETWORK_CHECK_MS);
    this.netTimer.unref();

    this.stopServices.push(startEcho(this.ports, (to, src, dst, data) => this.replyDatagram(to, src, dst, data)));
    this.stopServices.push(startSink(this.ports));
    // built-in services (services.json can disable each one)
    this.services = startBuiltinServices(this);
    this.stopServices.push(() => this.services?.stop());

    this.trust.on('revoked', (peer: string) => this.dropPeer(peer));
    this.trust.on('persist-error', (err: Error) => this.log.warn({ err: err.message }, 'trust.json not written (enforced from memory; retried)'));
    await this.syncTrust().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'trust sync failed'));

    this.heartbeatTimer = setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
    this.heartbeatTimer.unref();
    await this.gateway.restore(); // gateway + expose: saved mappings and exposes come back
  }

  // ---------- trust ----------

  /** Pull the registry's view (trust pairs, pending requests both ways). */
  async syncTrust(): Promise<void> {
    // Revocations the registry missed go first, so the list below no longer has them.
    for (const peer of this.trust.pendingRevocations()) {
      await this.registry.trustRevoke(peer).then(
        () => this.trust.settleRevocation(peer),
        (err: unknown) => this.log.warn({ peer, err: (err as Error).message }, 'revocation not yet confirmed by the registry'),
      );
    }
    const [list, pending] = await Promise.all([this.registry.trustList(), this.registry.trustPending()]);
    this.trust.replace(
      list.trusted.map((t) => ({ peer: t.peer, hostname: t.hostname ?? null, since: t.since, mutual: true })),
      pending.incoming.map((p) => ({ from: p.from, hostname: p.hostname ?? null, reason: p.reason ?? null, created: p.created })),
      pending.outgoing.map((o) => ({ to: o.to, hostname: o.hostname ?? null, reason: o.reason ?? null, created: o.created })),
    );
  }

  private onPush(push: { event: string; data: Record<string, unknown> }): void {
    const d = push.data ?? {};
    const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
    this.log.info({ event: push.event, data: d }, 'registry push');
    switch (push.event) {
      case 'trust_request': {
        const from = str(d.from);
        if (from)
          this.trust.addIncoming({ from, hostname: str(d.hostname), reason: str(d.reason), created: typeof d.created === 'number' ? d.created : Date.now() });
        break;
      }
      case 'trust_approved': {
        const peer = str(d.peer);
        if (peer) this.trust.addTrusted(peer, str(d.hostname));
        break;
      }
      case 'trust_rejected': {
        const peer = str(d.peer);
        if (peer) this.trust.removeOutgoing(peer);
        break;
      }
      case 'trust_revoked': {
        const peer = str(d.peer);
        if (peer) this.trust.removeTrusted(peer);
        break;
      }
    }
    this.emit('push', push);
  }

  isTrusted(address: Address): boolean {
    return this.trust.isTrusted(this.addressText(address));
  }

  /** formatAddress, memoized: trust is checked for every datagram and stream, and formatting costs more than the lookup. */
  private readonly addrTexts = new Map<number, string>();
  private addressText(a: Address): string {
    const k = addressKey(a);
    let t = this.addrTexts.get(k);
    if (t === undefined) {
      if (this.addrTexts.size >= 4096) this.addrTexts.clear();
      this.addrTexts.set(k, (t = formatAddress(a)));
    }
    return t;
  }

  /** Tear down everything we have with a peer (trust revoked). */
  private dropPeer(peerText: string): void {
    let key: number;
    try {
      key = addressKey(parseAddress(peerText));
    } catch {
      return;
    }
    this.forgetPeer(key, 'trust revoked');
    this.log.info({ peer: peerText }, 'trust revoked: session closed');
    this.emit('peer-lost', parseAddress(peerText), 'trust revoked'); // SDK 'peer-down'
  }

  /**
   * Session, connection and path state of a peer: all gone. The peer leaves the
   * table first, so the connection's last words (reset, close) go nowhere:
   * sent after closeSession they would start a new handshake and leave a new
   * session-layer entry behind.
   */
  private forgetPeer(key: number, reason: string): void {
    const peer = this.peers.get(key);
    this.peers.delete(key);
    if (peer) {
      peer.conn.reset(reason);
      peer.conn.close();
    }
    this.sessions?.closeSession(key);
    this.paths?.forget(key);
  }

  // ---------- bounded untrusted peers (src/daemon/peer-limit.ts) ----------

  private *untrustedPeers(): Iterable<{ key: number; lastActive: number }> {
    for (const p of this.peers.values()) if (!this.isTrusted(p.address)) yield { key: p.key, lastActive: Math.max(p.lastSeen, p.resolvedAt) };
  }

  private forgetIdleUntrusted(): void {
    for (const key of this.peerLimit.idle(this.untrustedPeers(), Date.now())) this.evictPeer(key, 'idle');
  }

  private evictPeer(key: number, why: string): void {
    const peer = this.peers.get(key);
    if (!peer) return;
    this.counters.untrustedEvicted++;
    this.forgetPeer(key, `untrusted peer ${why}`);
    this.log.debug({ peer: formatAddress(peer.address), why }, 'untrusted peer forgotten');
  }

  async trustRequest(target: string, reason?: string): Promise<{ status: string; peer: string }> {
    const addr = await this.addressOfTarget(target);
    this.trust.settleRevocation(formatAddress(addr)); // asking again overrides an unconfirmed revocation
    const r = await this.registry.trustRequest(formatAddress(addr), reason);
    if (r.status === 'trusted') this.trust.addTrusted(formatAddress(addr), null);
    else this.trust.addOutgoing({ to: formatAddress(addr), hostname: null, reason: reason ?? null, created: Date.now() });
    await this.syncTrust().catch(() => {});
    return { status: r.status, peer: formatAddress(addr) };
  }

  async trustApprove(node: string): Promise<{ status: string; peer: string }> {
    const addr = this.addressOfPending(node);
    this.trust.settleRevocation(addr);
    const r = await this.registry.trustApprove(addr);
    const pend = this.trust.listIncoming().find((p) => p.from === addr);
    this.trust.addTrusted(addr, pend?.hostname ?? null);
    return { status: r.status, peer: addr };
  }

  async trustReject(node: string, reason?: string): Promise<{ status: string; peer: string }> {
    const addr = this.addressOfPending(node);
    await this.registry.trustReject(addr, reason);
    this.trust.removeIncoming(addr);
    return { status: 'rejected', peer: addr };
  }

  async trustRevoke(node: string): Promise<{ status: string; peer: string }> {
    const known = this.trust.listTrusted().find((t) => t.peer === node || t.hostname === node);
    const addr = known ? known.peer : formatAddress(await this.addressOfTarget(node));
    // Enforced here first: the peer is cut at once, whether or not the registry answers.
    this.trust.revoke(addr);
    try {
      await this.registry.trustRevoke(addr);
    } catch (err) {
      this.log.warn({ peer: addr, err: (err as Error).message }, 'revoked here; the registry will be told on the next sync');
      return { status: 'revoked-locally', peer: addr };
    }
    this.trust.settleRevocation(addr);
    return { status: 'revoked', peer: addr };
  }

  /** A pending requester named by address, node id or the hostname it sent. */
  private addressOfPending(node: string): string {
    const pend = this.trust.listIncoming();
    const byHost = pend.find((p) => p.hostname === node);
    if (byHost) return byHost.from;
    const t = parseTarget(node, this.address?.network ?? 0);
    if ('address' in t) return formatAddress(t.address);
    throw new PilotError('NOT_FOUND', `no pending trust request from ${node}`, 'see: pilotctl pending');
  }

  private async addressOfTarget(target: string): Promise<Address> {
    const t = parseTarget(target, this.address?.network ?? 0);
    if ('address' in t) return t.address;
    return (await this.resolve({ hostname: t.hostname })).address;
  }

  /**
   * Bind the one UDP socket. With no fixed port we reuse the port of the last
   * run, so peers holding a session to our old endpoint reach the restarted
   * daemon at once (and get the "unknown session" hint that makes them re-handshake).
   */
  private async bindSocket(): Promise<void> {
    const listen = parseHostPort(this.config.listen, 0);
    const portFile = path.join(this.home, 'udp-port');
    const previous = listen.port === 0 && fs.existsSync(portFile) ? Number(fs.readFileSync(portFile, 'utf8')) : 0;
    const bind = (port: number): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        this.socket.once('error', reject);
        this.socket.bind(port, listen.host, () => {
          this.socket.off('error', reject);
          resolve();
        });
      });
    if (previous > 0 && previous < 65536) {
      try {
        await bind(previous);
      } catch {
        // Taken by someone else: the socket object is unusable after a failed bind.
        this.socket = createUdpSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
        await bind(listen.port);
      }
    } else {
      await bind(listen.port);
    }
    if (listen.port === 0) fs.writeFileSync(portFile, `${this.socket.address().port}\n`, { mode: 0o600 });
  }

  // ---------- registry ----------

  private lanEndpoints(): string[] {
    const port = this.socket.address().port;
    const bound = this.socket.address().address;
    if (bound !== '0.0.0.0') return [`${bound}:${port}`];
    const out: string[] = [];
    for (const list of Object.values(os.networkInterfaces())) {
      for (const ni of list ?? []) {
        if (ni.family === 'IPv4' && !ni.internal) out.push(`${ni.address}:${port}`);
      }
    }
    return out.slice(0, MAX_CANDIDATES);
  }

  private async register(): Promise<void> {
    const res = await this.registry.register({
      email: this.config.email,
      ...(this.config.hostname ? { hostname: this.config.hostname } : {}),
      lanEndpoints: this.lanEndpoints(),
      public: this.config.public,
      ...(this.config.invite ? { invite: this.config.invite } : {}),
    });
    this.address = typeof res.address === 'string' ? parseAddress(res.address) : res.address;
    this.observed = res.observed;
    this.registryOnline = true;
    fs.writeFileSync(path.join(this.home, 'address'), formatAddress(this.address) + '\n', { mode: 0o600 });
  }

  private async heartbeat(): Promise<void> {
    try {
      const res = await this.registry.heartbeat({ lanEndpoints: this.lanEndpoints(), ...daemonReport(this.natType, this.paths) });
      this.observed = res.observed;
      this.registryOnline = true;
      await this.syncTrust();
    } catch (err) {
      const code = (err as PilotError).code;
      this.registryOnline = false;
      // A TCP link can be dead without knowing it (no RST through a NAT): start a fresh one.
      if (this.uplink && code === 'TIMEOUT') this.uplink.reconnect('heartbeat unanswered');
      if (code === 'NOT_REGISTERED' || code === 'NOT_FOUND') await this.register().catch(() => {});
      this.log.warn({ err: (err as Error).message }, 'heartbeat failed');
    }
  }

  async setHostname(hostname: string | undefined): Promise<void> {
    if (hostname === undefined) await this.registry.clearHostname();
    else await this.registry.setHostname(hostname);
    if (hostname === undefined) delete this.config.hostname;
    else this.config.hostname = hostname;
    saveConfig(this.home, this.config);
  }

  async setVisibility(pub: boolean): Promise<void> {
    await this.registry.setVisibility(pub);
    this.config.public = pub;
    saveConfig(this.home, this.config);
  }

  async resolve(query: { address?: Address; hostname?: string }): Promise<ResolvedNode> {
    const params: { address?: string; hostname?: string } = {};
    if (query.address) params.address = formatAddress(query.address);
    if (query.hostname) params.hostname = query.hostname;
    const r = await this.registry.resolve(params);
    return {
      address: typeof r.address === 'string' ? parseAddress(r.address) : r.address,
      publicKey: Buffer.isBuffer(r.publicKey) ? r.publicKey : Buffer.from(String(r.publicKey), 'base64'),
      hostname: r.hostname ?? undefined,
      endpoints: r.endpoints ?? [],
      public: Boolean(r.public),
      online: Boolean(r.online),
    };
  }

  /** Target text (address, node id or hostname) -> registry record. */
  resolveTarget(target: string): Promise<ResolvedNode> {
    return resolveTargetText(target, this.address?.network ?? 0, (q) => this.resolve(q));
  }

  private async verifyPeer(address: Address, publicKey: Buffer): Promise<boolean> {
    // Zero trust: only trusted peers get a session, unless we are public (pingable by anyone).
    if (!this.config.public && !this.isTrusted(address)) {
      this.counters.refusedUntrusted++;
      return false;
    }
    const known = this.peers.get(addressKey(address));
    if (known?.publicKey.equals(publicKey) && Date.now() - known.resolvedAt < RESOLVE_TTL_MS) return true;
    const r = await this.verifier.verify(address, publicKey); // shared, cached and rate-limited lookups
    if (r) this.upsertPeer(r);
    return r !== undefined;
  }

  // ---------- peers ----------

  private newConnection(address: Address): Connection {
    const key = addressKey(address);
    const conn = new Connection({
      role: addressKey(this.address!) < key ? 'low' : 'high',
      // One byte of every session plaintext is the inner type (transport vs path messages).
      maxPacketSize: DEFAULT_MAX_PLAINTEXT - 1,
      ...(this.config.cc ? { congestionControl: this.config.cc } : {}),
      headroom: HEADROOM,
      tailroom: TAG_BYTES,
      sendPacket: (p: Buffer) => {
        const peer = this.peers.get(key);
        if (!peer) return;
        // [session header][inner type][packet][tag] in the packet's own memory: encrypted in place, no copy.
        const whole = Buffer.from(p.buffer, p.byteOffset - HEADROOM, p.length + HEADROOM + TAG_BYTES);
        whole[DATA_HEADER_BYTES] = Inner.Transport;
        this.sessions.sendToInPlace({ address: peer.address, publicKey: peer.publicKey }, whole);
      },
    });
    conn.on('stream', (stream: IncomingStream) => this.onIncomingStream(address, stream));
    conn.on('datagram', (dg: { srcPort: number; dstPort: number; data: Buffer }) => {
      if (!this.access.mayReceiveDatagram(address, dg.srcPort, dg.dstPort)) {
        this.counters.refusedUntrusted++;
        return;
      }
      this.ports.deliverDatagram({ from: address, ...dg });
    });
    return conn;
  }

  private upsertPeer(r: ResolvedNode): Peer {
    const key = addressKey(r.address);
    let peer = this.peers.get(key);
    const candidates = r.endpoints
      .map(parseEndpoint)
      .filter((e): e is HostPort => e !== undefined)
      .slice(0, MAX_CANDIDATES);
    if (!peer) {
      if (!this.isTrusted(r.address)) for (const old of this.peerLimit.makeRoom(this.untrustedPeers())) this.evictPeer(old, 'evicted for a newer one');
      peer = {
        key,
        address: r.address,
        publicKey: r.publicKey,
        hostname: r.hostname,
        candidates,
        public: r.public,
        conn: this.newConnection(r.address),
        resolvedAt: Date.now(),
        lastSeen: 0,
      };
      this.peers.set(key, peer);
    } else {
      if (!peer.publicKey.equals(r.publicKey)) {
        // Key changed at the registry: the old session belongs to someone else now.
        this.sessions.closeSession(key);
        peer.conn.reset('peer key changed');
        peer.conn = this.newConnection(r.address);
        this.paths.forget(key);
      }
      peer.publicKey = r.publicKey;
      peer.hostname = r.hostname;
      peer.public = r.public;
      peer.candidates = candidates;
      peer.resolvedAt = Date.now();
    }
    this.paths.setRegistryCandidates(key, candidates);
    return peer;
  }

  private adoptPeer(address: Address, publicKey: Buffer): void {
    const key = addressKey(address);
    if (!this.peers.has(key)) {
      this.upsertPeer({ address, publicKey, hostname: undefined, endpoints: [], public: false, online: true });
    }
  }

  async peerFor(target: string | Address): Promise<Peer> {
    return this.revive(await this.findPeer(target));
  }

  /**
   * A peer that closed its connection (CONNECTION_CLOSE when it stopped) gets a fresh one when we next
   * send to it, as after a restart: a closed Connection sends nothing.
   */
  private revive(peer: Peer): Peer {
    if (peer.conn.isClosed) peer.conn = this.newConnection(peer.address);
    return peer;
  }

  private async findPeer(target: string | Address): Promise<Peer> {
    if (typeof target !== 'string') {
      const known = this.peers.get(addressKey(target));
      if (known && Date.now() - known.resolvedAt < RESOLVE_TTL_MS) return known;
      return this.upsertPeer(await this.resolve({ address: target }));
    }
    // A peer resolved within the TTL needs no registry round trip: without this,
    // every dial and every SDK datagram by name paid one (~1 ms on loopback).
    const t = parseTarget(target, this.address?.network ?? 0);
    const cached = 'address' in t ? this.peers.get(addressKey(t.address)) : this.peerNamed(t.hostname);
    if (cached && Date.now() - cached.resolvedAt < RESOLVE_TTL_MS) return cached;
    const r = await this.resolveTarget(target);
    if (addressKey(r.address) === addressKey(this.address!)) {
      throw new PilotError('BAD_ARGUMENT', 'that target is this node itself', 'name another agent');
    }
    const known = this.peers.get(addressKey(r.address));
    if (known?.publicKey.equals(r.publicKey) && Date.now() - known.resolvedAt < RESOLVE_TTL_MS) return known;
    return this.upsertPeer(r);
  }

  private peerNamed(hostname: string): Peer | undefined {
    for (const p of this.peers.values()) if (p.hostname === hostname) return p;
    return undefined;
  }

  listPeers(): Peer[] {
    return [...this.peers.values()];
  }

  sessionInfo(peer: Peer): unknown {
    return this.sessions.sessionInfo(peer.key);
  }

  sessionStats(): unknown {
    return this.sessions.stats;
  }

  /** Per peer, for --metrics (src/daemon/metrics.ts): connection stats and whether a session is up. */
  peerStats(): { conn: ReturnType<Connection['stats']>; session: boolean }[] {
    return [...this.peers.values()].map((p) => ({ conn: p.conn.stats(), session: this.sessions?.hasSession(p.key) ?? false }));
  }

  /** Hole-punch counters and peers by path kind, for --metrics. */
  pathStats(): { counters: PathManager['counters']; paths: { direct: number; relay: number } } | undefined {
    return this.paths ? { counters: this.paths.counters, paths: this.paths.pathCounts() } : undefined;
  }

  // ---------- data plane ----------

  private onIncomingStream(from: Address, stream: IncomingStream): void {
    stream.on('error', () => {}); // a refusal below errors with nobody listening: must not crash an SDK-embedded node
    if (!this.access.mayAcceptStream(from, stream.localPort)) {
      this.counters.refusedUntrusted++;
      stream.destroy(new PilotError('NOT_TRUSTED', 'peer is not trusted'));
      return;
    }
    const handler = this.ports.streamHandler(stream.localPort);
    if (!handler) {
      stream.destroy(new PilotError('CONNECTION_REFUSED', `nothing listens on virtual port ${stream.localPort}`));
      return;
    }
    handler(stream, from);
  }

  private notTrusted(peer: Peer): PilotError {
    return new PilotError(
      'NOT_TRUSTED',
      `${formatAddress(peer.address)} is not a trusted peer`,
      `ask for trust first: pilotctl handshake ${peer.hostname ?? formatAddress(peer.address)}`,
    );
  }

  async dial(target: string | Address, port: number): Promise<IncomingStream & { readonly id: number }> {
    const peer = await this.peerFor(target);
    if (!this.access.mayOpenStream(peer.address, port)) throw this.notTrusted(peer);
    return peer.conn.openStream(port, this.ports.ephemeral());
  }

  sendDatagram(to: string | Address, srcPort: number, dstPort: number, data: Buffer): Promise<void> {
    // A known peer by address (ping): sent before returning, no wait for a promise hop.
    const known = this.freshPeer(to);
    if (known) {
      try {
        this.sendDatagramTo(known, srcPort, dstPort, data);
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return this.peerFor(to).then((peer) => this.sendDatagramTo(peer, srcPort, dstPort, data));
  }

  /**
   * Best effort (echo replies): synchronous for a known peer, no promise per packet.
   * Not checked by the access policy: it answers a datagram the policy let in.
   */
  private replyDatagram(to: Address, srcPort: number, dstPort: number, data: Buffer): void {
    const known = this.freshPeer(to);
    if (!known) {
      void this.peerFor(to)
        .then((peer) => this.sendDatagramTo(peer, srcPort, dstPort, data, true))
        .catch(() => {});
      return;
    }
    try {
      this.sendDatagramTo(known, srcPort, dstPort, data, true);
    } catch {
      // congested or too large: dropped, as datagrams are
    }
  }

  private freshPeer(to: string | Address): Peer | undefined {
    const p = typeof to === 'string' ? undefined : this.peers.get(addressKey(to));
    return p && Date.now() - p.resolvedAt < RESOLVE_TTL_MS ? this.revive(p) : undefined;
  }

  private sendDatagramTo(peer: Peer, srcPort: number, dstPort: number, data: Buffer, echoReply = false): void {
    const refusal = echoReply ? undefined : this.access.sendRefusal(peer.address, srcPort, dstPort);
    if (refusal === 'echo-source')
      throw new PilotError(
        'BAD_ARGUMENT',
        `source port ${ECHO_PORT} belongs to the echo service`,
        'send from another port (leave srcPort out for an ephemeral one)',
      );
    if (refusal === 'not-trusted') throw this.notTrusted(peer);
    if (!peer.conn.sendDatagram(srcPort, dstPort, data)) {
      throw new PilotError(
        'BAD_ARGUMENT',
        `datagram of ${data.length} bytes not sent (too large or congested)`,
        'datagrams must fit one packet (about 1180 bytes); use a stream for more',
      );
    }
  }

  private sendUdp(pkt: Buffer, host: string, port: number, sock?: number): void {
    this.counters.udpOut++;
    const s = sock === undefined ? this.socket : this.spray.get(sock)?.sock;
    s?.send(pkt, port, host);
  }

  /** Registry, beacon and relay traffic: UDP on the one socket (the TCP uplink when UDP is blocked). */
  private sendToRendezvous(pkt: Buffer): void {
    if (this.uplink) {
      this.uplink.send(pkt);
      return;
    }
    this.sendUdp(pkt, this.registryEndpoint.host, this.registryEndpoint.port);
  }

  // ---------- uplink: UDP, or TCP / WebSocket when UDP is blocked ----------

  private uplink: TcpUplink | undefined;
  private udpProbe: RegistryClient | undefined;

  private async chooseUplink(): Promise<void> {
    const mode = this.config.uplink;
    if (mode === 'udp') return;
    if (mode === 'tcp' || mode === 'websocket') return this.useTcpUplink(mode);
    if (await this.udpAnswers()) return;
    this.log.warn({ registry: this.config.registry }, 'no UDP answer from the rendezvous: trying TCP');
    try {
      await this.useTcpUplink('tcp');
    } catch {
      await this.useTcpUplink('websocket');
    }
  }

  /** A quick hello over UDP: does the rendezvous answer us on UDP at all? */
  private async udpAnswers(): Promise<boolean> {
    const probe = new RegistryClient({
      identity: this.identity,
      send: (pkt: Buffer) => this.sendUdp(pkt, this.registryEndpoint.host, this.registryEndpoint.port),
      ...(this.config.serverKey ? { serverKey: Buffer.from(this.config.serverKey, 'base64') } : {}),
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

  private async useTcpUplink(mode: 'tcp' | 'websocket'): Promise<void> {
    const up = new TcpUplink({ host: this.registryEndpoint.host, port: this.registryEndpoint.port, mode });
    up.on('packet', (pkt: Buffer) => this.onRendezvousPacket(pkt));
    await up.connect();
    this.uplink = up;
    this.uplinkKind = mode;
    this.natType = 'unknown';
    this.log.info({ mode }, 'rendezvous uplink over TCP');
    up.on('down', (reason: string) => {
      this.registryOnline = false;
      this.log.warn({ reason }, 'rendezvous uplink down');
    });
    // A new connection is a new link at the server: register again so pushes and relay find us.
    up.on('up', () => void this.register().catch(() => {}));
  }

  /** Back to UDP once the rendezvous answers there again (auto mode). */
  private async maybeBackToUdp(): Promise<void> {
    if (!this.uplink || this.config.uplink !== 'auto') return;
    if (!(await this.udpAnswers())) return;
    const old = this.uplink;
    this.uplink = undefined;
    this.uplinkKind = 'udp';
    old.close();
    this.log.info('rendezvous answers on UDP again: uplink back to UDP');
    await this.register().catch(() => {});
  }

  private onRendezvousPacket(pkt: Buffer): void {
    switch (pkt[0]) {
      case PacketType.RegistryResponse:
      case PacketType.RegistryPush:
        this.registry.handlePacket(pkt);
        return;
      case PacketType.RelayDeliver:
        this.onRelayDeliver(pkt);
        return;
      default:
        this.counters.garbage++;
    }
  }

  /**
   * Called by the session layer with an encrypted packet for a peer. `via`: a
   * path probe's chosen path. Otherwise the current direct path, or the relay
   * (handshakes are also sprayed to every candidate, which punches cone NATs).
   */
  private sendToPeer(peerKey: number, packet: Buffer, via?: Path): void {
    const peer = this.peers.get(peerKey);
    if (!peer) return;
    const p = via ?? this.paths.current(peerKey);
    if (p?.kind === 'direct') {
      if (via === undefined) this.paths.noteSent(peerKey);
      return this.sendUdp(packet, p.host, p.port, p.sock);
    }
    const t = packet[0];
    if (via === undefined && (t === PacketType.HandshakeInit || t === PacketType.HandshakeResp)) {
      for (const c of this.paths.handshakeTargets(peerKey, t === PacketType.HandshakeInit ? 'init' : 'resp')) this.sendUdp(packet, c.host, c.port);
    }
    this.sendRelay(peer.address, packet);
  }

  private sendRelay(dst: Address, inner: Buffer): void {
    const pkt = Buffer.allocUnsafe(1 + ADDRESS_BYTES + inner.length);
    pkt[0] = PacketType.RelaySend;
    writeAddress(pkt, 1, dst);
    inner.copy(pkt, 1 + ADDRESS_BYTES);
    this.counters.relayOut++;
    this.sendToRendezvous(pkt);
  }

  private onUdp(msg: Buffer, rinfo: dgram.RemoteInfo, sock?: number): void {
    this.counters.udpIn++;
    if (msg.length === 0) {
      this.counters.garbage++;
      return;
    }
    const t = msg[0];
    const fromRegistry = sock === undefined && rinfo.address === this.registryEndpoint.host && rinfo.port === this.registryEndpoint.port;
    switch (t) {
      case PacketType.RegistryResponse:
      case PacketType.RegistryPush:
      case PacketType.RegistryCookie: // return-routability cookie: the client re-signs and retries
        if (fromRegistry) {
          this.udpProbe?.handlePacket(msg);
          if (!this.uplink) this.registry.handlePacket(msg);
        } else if (sock === undefined && rinfo.address === this.registryEndpoint.host && rinfo.port === this.altPort) this.altRegistry?.handlePacket(msg);
        else this.counters.garbage++;
        return;
      case PacketType.HandshakeInit:
      case PacketType.HandshakeResp:
      case PacketType.Data:
      case PacketType.SessionUnknown:
      case PacketType.HandshakeCookie: {
        const path: Path =
          sock === undefined ? { kind: 'direct', host: rinfo.address, port: rinfo.port } : { kind: 'direct', host: rinfo.address, port: rinfo.port, sock };
        this.sessions?.handlePacket(msg, path);
        return;
      }
      case PacketType.RelayDeliver:
        if (!fromRegistry || this.uplink) {
          this.counters.garbage++;
          return;
        }
        this.onRelayDeliver(msg);
        return;
      default:
        this.counters.garbage++;
    }
  }

  private onRelayDeliver(msg: Buffer): void {
    if (msg.length < 1 + ADDRESS_BYTES + 1) {
      this.counters.garbage++;
      return;
    }
    this.counters.relayIn++;
    // The session layer authenticates the inner packet by its keys alone; the
    // relay's word for the sender only scopes per-source handshake limits and cookies.
    this.sessions?.handlePacket(msg.subarray(1 + ADDRESS_BYTES), { kind: 'relay', from: readAddress(msg, 1) } satisfies Path);
  }

  // ---------- NAT traversal: local candidates, NAT type, birthday sockets ----------

  /** What peers should probe to reach us: our mapped endpoint (as the beacon saw it) and LAN endpoints. */
  private localCandidates(): string[] {
    const out: string[] = [];
    if (this.uplinkKind === 'udp' && this.observed && parseEndpoint(this.observed)) out.push(this.observed);
    for (const e of this.lanEndpoints()) if (!out.includes(e)) out.push(e);
    return out;
  }

  private altRegistry: RegistryClient | undefined;

  /**
   * Ask the beacon's two ports from our one socket: the same mapped endpoint
   * twice = endpoint-independent mapping (cone), different = symmetric.
   */
  private async checkNat(): Promise<void> {
    this.lastNatCheck = Date.now();
    if (this.uplinkKind !== 'udp') {
      this.natType = 'unknown';
      return;
    }
    try {
      const first = await this.registry.hello();
      this.observed = first.observed;
      this.altPort = first.altPort;
      let second: string | undefined;
      if (first.altPort !== undefined) {
        const altPort = first.altPort;
        this.altRegistry ??= new RegistryClient({
          identity: this.identity,
          send: (pkt: Buffer) => this.sendUdp(pkt, this.registryEndpoint.host, altPort),
          serverKey: Buffer.from(this.config.serverKey!, 'base64'),
          timeoutMs: 500,
          retries: 2,
        });
        second = (await this.altRegistry.hello().catch(() => undefined))?.observed;
      }
      const before = this.natType;
      this.natType = classifyNat(first.observed, second, this.localAddresses());
      if (before !== this.natType) {
        this.log.info({ nat: this.natType, observed: first.observed, alt: second ?? null }, 'nat type');
        // The rendezvous learns the class from heartbeats: tell it now, not in 20 s.
        setImmediate(() => void this.heartbeat());
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'nat check failed');
    }
  }

  private localAddresses(): string[] {
    const out: string[] = [];
    for (const list of Object.values(os.networkInterfaces())) for (const ni of list ?? []) if (ni.family === 'IPv4') out.push(ni.address);
    return out;
  }

  /** A new network (addresses changed): re-register, re-classify, tell peers, re-punch. */
  private async checkNetwork(): Promise<void> {
    const lan = JSON.stringify(this.lanEndpoints());
    const changed = lan !== this.lastLan;
    if (!changed && Date.now() - this.lastNatCheck < NAT_RECHECK_MS) return;
    this.lastLan = lan;
    await this.maybeBackToUdp();
    const observedBefore = this.observed;
    if (changed) {
      this.log.info({ lan: this.lanEndpoints() }, 'local network changed');
      await this.heartbeat();
    }
    await this.checkNat();
    if (changed || this.observed !== observedBefore) this.paths.localChanged();
  }

  private openSprayPorts(n: number): number[] {
    const ids: number[] = [];
    for (let i = 0; i < n; i++) {
      const id = this.sprayNext++;
      const sock = createUdpSocket({ type: 'udp4' });
      sock.on('error', () => {});
      sock.on('message', (msg, rinfo) => this.onUdp(msg, rinfo, id));
      // bind synchronously enough: send() binds an unbound socket to an ephemeral port
      sock.bind(0);
      this.spray.set(id, { sock, opened: Date.now() });
      ids.push(id);
    }
    return ids;
  }

  /** Close birthday sockets that no peer path uses, once no attempt is running. */
  private releaseSprayPorts(): void {
    if (this.spray.size === 0) return;
    const now = Date.now();
    const keep = this.paths.socketsInUse();
    const active = this.paths.birthdayActive(now);
    for (const [id, s] of this.spray) {
      if (keep.has(id) || (active && now - s.opened < 10_000)) continue;
      s.sock.close();
      this.spray.delete(id);
    }
  }

  /**
   * Transport packet size for a path: the 1280-safe default, or more on a path
   * known to carry it unfragmented (same host or an attached subnet).
   */
  private packetSizeFor(p: Path | undefined): number {
    const dflt = DEFAULT_MAX_PLAINTEXT - 1;
    if (p?.kind !== 'direct' || p.sock !== undefined) return dflt;
    const payload = onLinkPayload(p.host);
    if (payload === undefined) return dflt;
    // UDP payload = session header + inner byte + transport packet + tag
    return Math.max(dflt, payload - DATA_HEADER_BYTES - 1 - TAG_BYTES);
  }

  /** How a peer is reached now, for peers/ping output. */
  pathInfo(peer: Peer): { path: string; pathType: 'direct' | 'relay' | 'none'; endpoint: string | null; relay: UplinkKind | null } {
    const p = this.paths.current(peer.key);
    return {
      path: describePath(p, this.uplinkKind),
      pathType: p?.kind ?? 'none',
      endpoint: p?.kind === 'direct' ? `${p.host}:${p.port}` : null,
      relay: p?.kind === 'relay' ? this.uplinkKind : null,
    };
  }

  async stop(): Promise<void> {
    await this.gateway.close(); // gateway + expose: listeners closed, aliases removed (state kept)
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.pathTimer) clearInterval(this.pathTimer);
    if (this.netTimer) clearInterval(this.netTimer);
    if (this.peerLimitTimer) clearInterval(this.peerLimitTimer);
    for (const s of this.spray.values()) s.sock.close();
    this.spray.clear();
    this.altRegistry?.close?.();
    this.uplink?.close();
    for (const s of this.stopServices) s();
    for (const peer of this.peers.values()) peer.conn.close();
    this.sessions?.destroy();
    this.registry?.close?.();
    await new Promise<void>((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}
