// The agent daemon: one UDP socket for everything (registry, beacon, relay,
// encrypted peer sessions), a Connection (streams + datagrams) per peer, the
// built-in services, and the IPC socket for pilotctl and the SDK.
// This class wires its parts together (and the session and path layers); each owns its own state:
//   Underlay (underlay.ts)          the sockets, the TCP/WebSocket uplink, demux of what arrives;
//   Registration (registration.ts)  our address, heartbeats, hostname/visibility, lookups;
//   NetCheck (netcheck.ts)          NAT class, our candidates, network changes;
//   PeerTable (peer-table.ts)       peers, the resolve cache, one Connection per peer, bounded untrusted peers;
//   PeerTraffic (peer-traffic.ts)   streams and datagrams to and from peers' virtual ports;
//   TrustMirror (trust-mirror.ts)   trust relations kept in step with the registry;
//   AccessPolicy (access-policy.ts) who may reach which port;
//   Networks (networks.ts)          fleets: our memberships, peers' verified memberships, policies.
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import { loadOrCreateIdentity, type Identity } from '../crypto/identity.ts';
import { SessionManager, type SessionInfo, type SessionStats } from '../crypto/session-manager.ts';
import type { Connection } from '../transport/connection.ts';
import type { Stream } from '../transport/stream.ts';
import { RegistryClient } from '../registry/client.ts';
import { PacketType, RELAY_OVERHEAD } from '../wire/packet-types.ts';
import { ipUdpHeaders } from '../nat/link-mtu.ts';
import { TAG_BYTES } from '../crypto/aead.ts';
import type { MtuState } from '../ipc/api-types.ts';
import { addressKey, formatAddress, parseAddress as parseAddressText, type Address } from '../wire/address.ts';
import { PilotError } from '../util/errors.ts';
import { parseHostPort } from '../util/hostport.ts';
import { underlayAddresses } from './dual-stack.ts';
import type { Logger } from '../util/logger.ts';
import { saveConfig, type DaemonConfig } from './config.ts';
import { HomeLock, type HolderKind } from './home-lock.ts';
import { PortTable } from './ports.ts';
import { describePath, pathReport, type Path, type PathReport, type UplinkKind } from '../nat/path.ts';
import { PathManager } from '../nat/path-manager.ts';
import type { NatType } from '../nat/nat-type.ts';
import { startEcho } from './services/echo.ts';
import { startSink } from './services/sink.ts';
import { resolveTargetText, type ResolvedNode } from './targets.ts';
import { VERSION } from './version.ts';
import { TrustBook } from './trust.ts';
import { handshakeLimits, handshakeSource, PeerVerifier } from './handshake-guard.ts';
import { startBuiltinServices, type BuiltinServices } from './builtin-services.ts'; // built-in services
import type { GatewayService } from '../gateway/service.ts'; // gateway + expose
import { hasGatewayState } from '../gateway/state-names.ts';
import { daemonReport } from './report.ts'; // heartbeat self-report for rendezvous metrics
import { AccessPolicy } from './access-policy.ts'; // who may reach which port (issue 15 hole 1)
import { Registration } from './registration.ts';
import { PeerTraffic } from './peer-traffic.ts';
import { Underlay } from './underlay.ts';
import { NetCheck } from './netcheck.ts';
import { LocalInterfaces, parseInterfaceList } from './local-interfaces.ts'; // issue 19: no other overlay's tunnel as a candidate
import { onAttachedSubnet } from '../nat/ip-class.ts';
import { HEADROOM, PeerTable, type Peer } from './peer-table.ts';
import { TrustMirror, type TrustPush } from './trust-mirror.ts';
import { Networks } from './networks.ts';
import { presentMemberships, wireSessionEvents } from './session-events.ts';
import { expandRotation, KeyLinks, verifyRotation } from '../registry/rotation.ts'; // key rotation (issue 18)
import { afterFailure, discardPending, ownRotations, preparePending, promotePending, readPending, type PendingRotation } from './key-rotation.ts';
import { encodeGoodbye, type GoodbyeReason } from './goodbye.ts';
import { PortMapper, type PortMapStatus } from '../nat/portmap/portmapper.ts'; // port mapping (issue 19)
import { PolicedPaths } from './policed-paths.ts'; // issue 19: UDP-policed paths go to the TCP relay

export type { Peer } from './peer-table.ts';

/** Path timers (punching rounds, keepalives, dead-path checks). */
const PATH_TICK_MS = 100;

/** A packet this long after a registry exchange turns its conntrack flow into a stream (Linux: 2 s). */
const STREAM_AFTER_MS = 2_500;

/** One byte toward the rendezvous that only refreshes NAT mappings (PacketType.Keepalive). */
const RENDEZVOUS_KEEPALIVE = Buffer.from([PacketType.Keepalive]);

/** A clean stop waits at most this long (ms) for the rendezvous to hear of it (farewell). */
export const FAREWELL_WAIT_MS = 1000;

export interface DaemonOptions {
  home: string;
  config: DaemonConfig;
  logger: Logger;
  /** Who holds the home's lock (src/daemon/home-lock.ts): a daemon process, or startNode() in an app. */
  holder?: HolderKind;
  /** The IPC socket this node serves, if any: named to a second node refused by the lock. */
  socket?: string | undefined;
}

/** What the daemon tells the layers above it (built-in services, SDK event subscribers). */
export interface DaemonEvents {
  /** A session with a peer is up (SDK 'peer-up'). */
  'peer-session': [address: Address];
  /** A peer went away: restarted, unreachable or revoked (SDK 'peer-down'). */
  'peer-lost': [address: Address, reason: string];
  /** A peer's path changed (SDK 'path'). */
  'peer-path': [peer: Peer, reason: string];
  /** A registry push (trust requests, approvals, revocations), after the trust mirror saw it. */
  push: [push: TrustPush];
}

export class Daemon extends EventEmitter<DaemonEvents> {
  readonly home: string;
  readonly config: DaemonConfig;
  readonly log: Logger;
  readonly identity: Identity;
  readonly ports = new PortTable();
  readonly trust: TrustBook;
  /** built-in services: inbox + files (1001), pub/sub (1002), tasks (1003), webhooks (src/services). */
  services: BuiltinServices | undefined;
  /**
   * gateway + expose (remote agents as local IPs, virtual ports forwarded to local services),
   * loaded on first use, or at start when a mapping or expose was saved: most daemons never
   * map one, and an idle daemon without it is ~0.8 MB smaller.
   */
  private gatewayLoad: Promise<GatewayService> | undefined;
  gatewayService(): Promise<GatewayService> {
    return (this.gatewayLoad ??= import('../gateway/service.ts').then((m) => new m.GatewayService(this)));
  }
  readonly bootId = crypto.randomBytes(8);
  readonly startedAt = Date.now();
  readonly version = VERSION;
  readonly counters = {
    garbage: 0,
    relayIn: 0,
    relayOut: 0,
    udpIn: 0,
    udpOut: 0,
    gsoSends: 0,
    gsoPackets: 0,
    rxBatches: 0,
    rxBatchPackets: 0,
    refusedUntrusted: 0,
    untrustedEvicted: 0,
  };
  private underlay: Underlay | undefined;
  /** The rendezvous's last hello said it relays with DF (never fragments): relayed paths may be probed for a bigger packet size. */
  private relayDf = false;
  /** The transport packet being sealed and sent in place (sendInPlace), whose headroom a relayed send may use. */
  private relayRoom: Buffer | undefined;
  private readonly net: NetCheck;
  private readonly ifaces: LocalInterfaces;
  private readonly peers: PeerTable;
  /** Trust requests, approvals, rejections and revocations go through the registry here (trust-mirror.ts). */
  readonly mirror: TrustMirror;
  private readonly traffic: PeerTraffic;
  private paths!: PathManager;
  private pathTimer: NodeJS.Timeout | undefined;
  /** The keepalive that follows each heartbeat by STREAM_AFTER_MS (see the registration's `observed`). */
  private streamTimer: NodeJS.Timeout | undefined;
  private policing: PolicedPaths | undefined;
  private registry!: RegistryClient;
  private reg: Registration | undefined;
  private sessions!: SessionManager<Path>;
  /** Registry checks of the key a message 1 claims (src/daemon/handshake-guard.ts). */
  readonly verifier = new PeerVerifier({ lookup: (address: Address) => this.resolve({ address }) });
  /** The one place that decides who may reach which port. */
  readonly access: AccessPolicy = new AccessPolicy({
    isTrusted: (a) => this.isTrusted(a),
    amPublic: () => this.config.public,
    peerIsPublic: (a) => this.peers.byAddress(a)?.public === true,
    coMemberMayReach: (a, port) => this.networks.incomingAllowed(a, port),
    coMemberOutgoing: (a, port) => this.networks.outgoing(a, port),
    coMemberProofPending: (a) => this.networks.proofPending(a),
  });
  /** Fleets (issue 18): memberships, tickets, policies, and what peers proved to us. */
  readonly networks: Networks;
  /** Key rotations (ours and peers') whose old-key signature this node checked (src/registry/rotation.ts). */
  readonly links = new KeyLinks();
  /** A rotate-key in progress (one at a time). */
  private rotating: Promise<unknown> | undefined;
  private stopServices: Array<() => void> = [];
  private lock: HomeLock | undefined;
  /** The gateway's port mapping of our UDP socket (src/nat/portmap); undefined: off (--no-portmap). */
  private portmap: PortMapper | undefined;

  private constructor(opts: DaemonOptions) {
    super();
    this.home = opts.home;
    this.config = opts.config;
    this.log = opts.logger;
    this.identity = loadOrCreateIdentity(opts.home);
    for (const r of ownRotations(opts.home)) this.links.add(r);
    this.trust = new TrustBook(opts.home);
    const now = (): number => Date.now();
    this.mirror = new TrustMirror(this.trust, {
      log: this.log,
      now,
      registry: () => this.registry,
      network: () => this.address?.network ?? 0,
      resolveHostname: async (hostname) => (await this.resolve({ hostname })).address,
    });
    this.networks = new Networks({
      log: this.log,
      now,
      home: this.home,
      nodeKey: this.identity.publicKey,
      serverKey: () => (this.config.serverKey ? Buffer.from(this.config.serverKey, 'base64') : undefined),
      localAddress: () => this.address,
      client: () => this.registry.networks,
      broadcast: () => {
        for (const p of this.peers.list()) if (this.sessions?.hasSession(p.key)) presentMemberships(this.sessions, this.networks, p);
      },
      // A peer's proofs ended (kick, leave): its session goes too, unless it is trusted or still a co-member.
      linked: (older, current) => this.links.linked(older, current),
      learnRotation: async (key) => {
        const r = await this.registry.resolve({ publicKey: key.toString('base64') }).catch(() => undefined);
        if (r?.rotation) this.links.add(expandRotation(r.rotation, parseAddressText(r.address), key));
      },
      peerChanged: (a) => {
        if (!this.isTrusted(a) && !this.networks.isCoMember(a) && this.peers.forgetText(formatAddress(a), 'network membership ended'))
          this.emit('peer-lost', a, 'network membership ended');
      },
    });
    this.ifaces = new LocalInterfaces({ include: parseInterfaceList(this.config.candidateInterfaces) });
    this.net = new NetCheck({
      interfaces: () => this.ifaces.usable(),
      log: this.log,
      now,
      boundAddress: () => this.underlay!.address(),
      uplinkKind: () => this.uplinkKind,
      hello: async () => {
        const h = await this.registry.hello();
        this.relayDf = h.relayDf === true;
        return h;
      },
      helloAlt: (altPort) => this.underlay!.helloAlt(altPort),
      maybeBackToUdp: async () => {
        if (await this.underlay?.maybeBackToUdp()) await this.reg!.register().catch(() => {});
      },
      heartbeat: () => this.reg!.heartbeat(),
      natChanged: () => setImmediate(() => void this.reg!.heartbeat()),
      localChanged: () => {
        this.portmap?.refresh(); // a new network may have a new gateway: map there
        this.paths.localChanged();
      },
      mapped: () => this.portmap?.external(),
    });
    this.peers = new PeerTable(
      {
        log: this.log,
        counters: this.counters,
        now,
        localAddress: () => this.address,
        globalAddress: (a) => this.networks.globalAddress(a),
        // Co-members (or nodes the rendezvous lists as such) get sessions and are not evicted as untrusted.
        isTrusted: (a) => this.isTrusted(a) || this.networks.maybeCoMember(a),
        amPublic: () => this.config.public,
        inNetworks: () => this.networks.inAnyNetwork(),
        resolve: (q) => this.resolve(q),
        resolveTarget: (t) => this.resolveTarget(t),
        verify: (a, key) => this.verifier.verify(a, key),
        sendInPlace: (peer, whole) => this.sendInPlace(peer, whole),
        incomingStream: (from, stream) => this.traffic.incomingStream(from, stream),
        incomingDatagram: (from, dg) => this.traffic.incomingDatagram(from, dg),
        closeSession: (key) => this.sessions?.closeSession(key),
        forgetPath: (key) => this.paths?.forget(key),
        setCandidates: (key, candidates) => this.paths.setRegistryCandidates(key, candidates),
        relayProbeHost: () => (this.relayDf && this.uplinkKind === 'udp' ? this.underlay?.rendezvousHost : undefined),
      },
      { congestionControl: opts.config.cc, untrustedIdleMs: opts.config.untrustedIdleMs, maxUntrustedPeers: opts.config.maxUntrustedPeers },
    );
    this.traffic = new PeerTraffic({
      counters: this.counters,
      access: this.access,
      ports: this.ports,
      peerFor: (target) => this.peers.peerFor(target),
      freshPeer: (to) => this.peers.freshPeer(to),
    });
  }

  /** Interfaces left out of our direct-path candidates (other overlays' tunnels; src/daemon/local-interfaces.ts), with why. */
  excludedInterfaces(): Array<{ name: string; reason: string }> {
    return this.ifaces.excluded();
  }

  /** Our endpoint as the rendezvous saw it. */
  get observed(): string | undefined {
    return this.net.observed;
  }

  get natType(): NatType {
    return this.net.natType;
  }

  /** How we reach the rendezvous (and so the relay). */
  get uplinkKind(): UplinkKind {
    return this.underlay?.kind ?? 'udp';
  }

  /**
   * Start a node on `opts.home`: takes the home's lock first (a second node with this identity is
   * refused, DAEMON_RUNNING), and saves `opts.config` only once the node runs (a failed or refused
   * start leaves config.json as it was).
   */
  static async start(opts: DaemonOptions): Promise<Daemon> {
    const lock = HomeLock.acquire(opts.home, { kind: opts.holder ?? 'daemon', socket: opts.socket });
    let d: Daemon;
    try {
      d = new Daemon(opts);
    } catch (err) {
      lock.release();
      throw err;
    }
    d.lock = lock;
    try {
      await d.init();
      saveConfig(d.home, d.config);
    } catch (err) {
      await d.stop();
      throw err;
    }
    return d;
  }

  private async init(): Promise<void> {
    const reg = parseHostPort(this.config.registry, 9000);
    // The rendezvous as one IP of either family, and on an IPv6-only host the NAT64 prefix (dual-stack.ts).
    const { ip, nat64 } = await underlayAddresses(reg.host, this.log).catch((err: unknown): { ip: string; nat64?: Uint8Array } => {
      // Proxy-only networks often resolve no outside names: the proxy resolves the wss host itself.
      if (this.config.wss) return { ip: reg.host };
      throw err;
    });
    const underlay = new Underlay(
      {
        log: this.log,
        counters: this.counters,
        now: () => Date.now(),
        registryPacket: (pkt) => this.registry.handlePacket(pkt),
        sessionPacket: (pkt, p) => this.sessions?.handlePacket(pkt, p),
        uplinkChanged: (kind) => {
          if (kind !== 'udp') this.net.natType = 'unknown';
        },
        uplinkUp: () => void this.reg!.register().catch(() => {}),
        uplinkDown: (reason) => {
          if (this.reg) this.reg.online = false;
          this.log.warn({ reason }, 'rendezvous uplink down');
        },
        spraySocketsInUse: () => this.paths.socketsInUse(),
        birthdayActive: (now) => this.paths.birthdayActive(now),
      },
      {
        listen: this.config.listen,
        home: this.home,
        rendezvous: { host: ip, port: reg.port },
        ...(nat64 ? { nat64 } : {}),
        registry: this.config.registry,
        uplink: this.config.uplink,
        ...(this.config.wss
          ? {
              wss: {
                url: this.config.wss,
                ...(this.config.tlsCa ? { ca: this.config.tlsCa } : {}),
                ...(this.config.proxy ? { proxy: this.config.proxy } : {}),
              },
            }
          : {}),
        identity: this.identity,
        serverKey: () => this.networks.serverKey(),
      },
    );
    this.underlay = underlay;
    await underlay.bind();

    this.registry = new RegistryClient({
      identity: this.identity,
      send: (pkt: Buffer) => underlay.sendToRendezvous(pkt),
      rendezvous: this.config.registry,
      ...(this.config.serverKey ? { serverKey: Buffer.from(this.config.serverKey, 'base64') } : {}),
    });
    this.registry.on('push', (push) => {
      // The push schema leaves data open; every trust push carries an object.
      if (typeof push.data === 'object' && push.data !== null && !Array.isArray(push.data))
        this.onPush({ event: push.event, data: push.data as Record<string, unknown> });
    });
    this.reg = new Registration(
      {
        log: this.log,
        home: this.home,
        config: this.config,
        lanEndpoints: () => this.net.lanEndpoints(),
        report: () => daemonReport(this.natType, this.paths),
        observed: (endpoint) => {
          this.net.setObserved(endpoint); // a new reflexive address re-sends candidates (issue 19)
          // A request and its answer within 2 s leave a fresh conntrack UDP flow on the short
          // "unreplied" timeout (Linux: 30 s, 10 s on some routers); a packet after those 2 s makes
          // it a stream (120 s / 30 s). Without it, a rendezvous mapping that once lapsed was remade
          // by each heartbeat and lapsed again before the next one (half the time, under 10 s / 30 s).
          if (underlay.kind === 'udp') {
            clearTimeout(this.streamTimer);
            this.streamTimer = setTimeout(() => underlay.kind === 'udp' && underlay.sendToRendezvous(RENDEZVOUS_KEEPALIVE), STREAM_AFTER_MS);
            this.streamTimer.unref();
          }
        },
        syncTrust: () => this.syncTrust(),
        reconnectUplink: (reason) => underlay.reconnectUplink(reason),
      },
      this.registry,
    );
    await underlay.chooseUplink();
    if (!this.config.serverKey) {
      const hello = await this.registry.hello();
      // pinned from now on; saved with the rest of the config once the start succeeded (Daemon.start)
      this.config.serverKey = Buffer.from(hello.serverKey).toString('base64');
    }
    // A rotate-key cut short by a crash: finish it before registering (src/daemon/key-rotation.ts).
    await this.finishPendingRotation().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'pending key rotation not finished'));
    await this.reg!.register();

    this.sessions = new SessionManager<Path>({
      identity: this.identity,
      localAddress: this.address!,
      bootId: this.bootId,
      send: (peerKey: number, packet: Buffer, via?: Path) => this.sendToPeer(peerKey, packet, via),
      sendRaw: (packet: Buffer, where: Path) => {
        if (where.kind === 'direct') underlay.sendUdp(packet, where.host, where.port, where.sock);
        // A cookie reply goes back to the node the rendezvous says sent the message 1 (smaller than it).
        else if (where.from !== undefined && packet[0] === PacketType.HandshakeCookie) underlay.sendRelay(where.from, packet);
      },
      sourceOf: handshakeSource,
      ...handshakeLimits(this.config),
      ...(this.config.rekeyAfterMs !== undefined ? { rekeyAfterMs: this.config.rekeyAfterMs } : {}),
      verifyPeer: (address: Address, publicKey: Buffer) => this.peers.verifyPeer(address, publicKey),
    });
    this.paths = new PathManager(
      {
        now: () => Date.now(),
        sendVia: (peerKey, msg, via) => {
          const peer = this.peers.get(peerKey);
          return peer !== undefined && this.sessions.sendVia({ address: peer.address, publicKey: peer.publicKey }, msg, via);
        },
        local: () => ({ eps: this.net.localCandidates(), nat: this.natType }),
        openSprayPorts: (n) => underlay.openSprayPorts(n),
        releaseSprayPorts: () => underlay.releaseSprayPorts(),
        mayPunch: (peerKey) => {
          const peer = this.peers.get(peerKey);
          return peer !== undefined && (this.isTrusted(peer.address) || this.networks.isCoMember(peer.address));
        },
        pathLost: () => this.net.recheck(), // issue 19: a dead direct path may mean we moved
        probeable: (h) => onAttachedSubnet(h, this.ifaces.usable()), // a LAN candidate only on a subnet of ours that is no tunnel
      },
      { probeBudgetPeer: this.config.probeBudgetPeer, probeBudgetTotal: this.config.probeBudgetTotal },
    );
    this.paths.on('change', (peerKey, p, reason) => {
      const peer = this.peers.pathChanged(peerKey, p);
      this.log.info({ peer: peer ? formatAddress(peer.address) : peerKey, path: describePath(p, this.uplinkKind), reason }, 'peer path');
      if (peer) this.emit('peer-path', peer, reason); // for SDK event subscribers (src/daemon/sdk-handlers.ts)
    });
    wireSessionEvents({
      log: this.log,
      sessions: this.sessions,
      peers: this.peers,
      paths: this.paths,
      networks: this.networks,
      peerUp: (address) => this.emit('peer-session', address),
      peerLost: (address, reason) => this.emit('peer-lost', address, reason),
    });
    this.policing = new PolicedPaths({
      log: this.log,
      peers: () =>
        this.peers
          .list()
          .map((p) => ({ key: p.key, name: formatAddress(p.address), direct: this.paths.current(p.key)?.kind === 'direct', stats: () => p.conn.stats() })),
      pinRelay: (key, until, reason) => this.paths.pinRelay(key, until, reason),
      preferTcp: async (until) => {
        if (await underlay.preferTcp(until)) await this.reg!.register();
      },
    });
    this.pathTimer = setInterval(() => {
      this.paths.tick();
      this.policing?.tick(Date.now());
      // Issue 19: our NAT forgets mappings sooner than the heartbeat comes: keep the rendezvous one (relay, pushes) open too.
      if (underlay.kind === 'udp' && this.paths.tuner.rendezvousDue(Date.now())) underlay.sendToRendezvous(RENDEZVOUS_KEEPALIVE);
    }, PATH_TICK_MS);
    this.pathTimer.unref();
    // No UDP socket (--listen none): nothing to map.
    if (this.config.portmap !== false && underlay.address().port !== 0) {
      // In the background: the daemon never waits for the gateway; a new mapping is a new candidate for every peer.
      this.portmap = new PortMapper({ internalPort: underlay.address().port, log: this.log });
      this.portmap.on('change', () => this.paths.localChanged());
      this.portmap.start();
    }
    this.peers.start();
    await this.net.start();

    this.stopServices.push(startEcho(this.ports, (to, src, dst, data) => this.traffic.replyDatagram(to, src, dst, data)));
    this.stopServices.push(startSink(this.ports));
    // built-in services (services.json can disable each one)
    this.services = startBuiltinServices(this);
    this.stopServices.push(() => this.services?.stop());

    this.trust.on('revoked', (peer) => {
      const address = this.peers.forgetText(peer, 'trust revoked');
      if (address) this.emit('peer-lost', address, 'trust revoked'); // SDK 'peer-down'
    });
    this.trust.on('persist-error', (err: Error) => this.log.warn({ err: err.message }, 'trust.json not written (enforced from memory; retried)'));
    await this.syncTrust().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'trust sync failed'));

    this.reg.start();
    await this.networks.start();
    if (hasGatewayState(this.home)) await (await this.gatewayService()).restore(); // saved mappings and exposes come back
  }

  // ---------- trust (trust-mirror.ts) ----------

  /** Pull the registry's view (trust pairs, pending requests both ways). */
  syncTrust(): Promise<void> {
    return this.mirror.sync();
  }

  private onPush(push: TrustPush): void {
    if (push.event === 'key_rotated') this.peerRotated(push.data);
    this.mirror.onPush(push);
    this.networks.onPush(push.event, push.data);
    this.emit('push', push);
  }

  isTrusted(address: Address): boolean {
    return this.mirror.isTrusted(address);
  }

  // ---------- registry (registration.ts) ----------

  /** Ours, once registered. */
  get address(): Address | undefined {
    return this.reg?.address;
  }

  get registryOnline(): boolean {
    return this.reg?.online ?? false;
  }

  /** The rendezvous's key (base64) once pinned, for traceroute. */
  get rendezvousKey(): string | null {
    return this.registry?.serverKey?.toString('base64') ?? null;
  }

  /**
   * One round trip to the rendezvous (ms), over the uplink the relay uses too: an unsigned
   * hello, the one request it answers without a signature check or a store lookup.
   */
  async rendezvousRtt(): Promise<number> {
    const t0 = process.hrtime.bigint();
    await this.registry.hello();
    return Number(process.hrtime.bigint() - t0) / 1e6;
  }

  setHostname(hostname: string | undefined): Promise<void> {
    return this.reg!.setHostname(hostname);
  }

  setVisibility(pub: boolean): Promise<void> {
    return this.reg!.setVisibility(pub);
  }

  async resolve(query: { address?: Address; hostname?: string }): Promise<ResolvedNode> {
    const r = await this.reg!.resolve(query.address ? { address: this.networks.globalAddress(query.address) } : query); // N:<node> (fleets) = 0:<node>
    // Every answer about a node says which networks we share with it: the co-member hints (networks.ts).
    if (this.networks.inAnyNetwork()) this.networks.noteListed(r.address, r.networks ?? []);
    // A rotated node: the statement that bound its key, checked here (it links credentials made for its old key).
    if (r.rotation) this.links.add(r.rotation);
    return r;
  }

  // ---------- key rotation (key-rotation.ts, issue 18) ----------

  /**
   * `pilotctl rotate-key`: a new key pair for our address, authorised by the current one.
   * The new key is on disk before the rendezvous hears of it; the old one is dropped only
   * once the rendezvous bound the address to the new key. Sessions made with the old key end.
   */
  async rotateKey(): Promise<{ address: Address; publicKey: Buffer; oldKey: Buffer; already: boolean }> {
    if (this.rotating) throw new PilotError('RATE_LIMITED', 'a key rotation is already running', 'wait for it to finish');
    const address = this.address;
    if (!address) throw new PilotError('NOT_REGISTERED', 'this node has no address yet', 'wait until the daemon registered (pilotctl info)');
    const run = (async () => {
      const pending = readPending(this.home) ?? preparePending(this.home, this.identity, { network: 0, node: address.node }, Date.now());
      return this.sendRotation(pending);
    })();
    this.rotating = run;
    try {
      return await run;
    } finally {
      this.rotating = undefined;
    }
  }

  private async finishPendingRotation(): Promise<void> {
    const pending = readPending(this.home);
    if (pending) await this.sendRotation(pending);
  }

  private async sendRotation(pending: PendingRotation): Promise<{ address: Address; publicKey: Buffer; oldKey: Buffer; already: boolean }> {
    const oldKey = Buffer.from(this.identity.publicKey);
    let res: Awaited<ReturnType<RegistryClient['rotateKey']>>;
    try {
      res = await this.registry.rotateKey(pending.rotation, pending.next);
    } catch (err) {
      if (afterFailure(err) === 'discard') discardPending(this.home);
      throw err;
    }
    promotePending(this.home, pending);
    this.links.add(pending.rotation);
    // In place: every part holding the identity (registry client, sessions, networks, uplink) now signs with the new key.
    this.identity.publicKey.set(pending.next.publicKey);
    this.identity.secretKey.set(pending.next.secretKey);
    this.networks.keyRotated(oldKey, this.identity.publicKey, true);
    if (this.sessions) {
      this.sessions.identityChanged();
      // Streams over the old sessions break once; the next dial (ours or theirs) handshakes with the new key.
      for (const p of this.peers.list()) {
        this.peers.forget(p.key, 'our key rotated');
        this.emit('peer-lost', p.address, 'key rotated');
      }
      void this.resignPolicies(oldKey);
    }
    this.log.info({ old: oldKey.toString('base64'), new: this.identity.publicKey.toString('base64'), already: res.already }, 'node key rotated');
    return { address: this.address ?? parseAddressText(res.address), publicKey: Buffer.from(this.identity.publicKey), oldKey, already: res.already };
  }

  /**
   * Networks we administer: the policy members verify was signed by our old key; sign the same
   * text again with the new one. Only a text that verifies under the old key is signed (a
   * rendezvous must not get us to sign a policy we never set).
   */
  private async resignPolicies(oldKey: Buffer): Promise<void> {
    try {
      for (const n of await this.registry.networks.list()) {
        if (!n.admin) continue;
        const p = await this.registry.networks.getPolicy(n.net, oldKey);
        if (p.verified === true && p.text !== '') await this.registry.networks.setPolicy(n.net, p.text);
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'network policies not re-signed after key rotation');
    }
  }

  /** key_rotated push: a peer's new key, accepted only if its old key (as we knew it) signed the statement. */
  private peerRotated(d: Record<string, unknown>): void {
    if (typeof d.statement !== 'string' || typeof d.sig !== 'string') return;
    let r: ReturnType<typeof verifyRotation>;
    try {
      r = verifyRotation({ statement: d.statement, sig: Buffer.from(d.sig, 'base64') });
    } catch (err) {
      return void this.log.warn({ err: (err as Error).message }, 'key_rotated push refused');
    }
    const known = this.peers.byAddress(r.address);
    // A peer we know by another key than the statement's old one: not this rotation's to change.
    if (known && !known.publicKey.equals(r.oldKey) && !known.publicKey.equals(r.newKey)) return;
    this.links.add({ statement: d.statement, sig: Buffer.from(d.sig, 'base64') });
    this.networks.keyRotated(r.oldKey, r.newKey, false);
    if (known?.publicKey.equals(r.oldKey)) {
      // Its old sessions are dead (it closed them); the next dial resolves and handshakes with the new key.
      this.peers.forget(addressKey(known.address), 'peer key rotated');
      this.emit('peer-lost', known.address, 'peer key rotated');
    }
    this.log.info({ peer: formatAddress(r.address) }, 'peer rotated its key');
  }

  /** Target text (address, node id or hostname) -> registry record. */
  resolveTarget(target: string): Promise<ResolvedNode> {
    return resolveTargetText(target, this.address?.network ?? 0, (q) => this.resolve(q));
  }

  // ---------- peers (peer-table.ts) ----------

  peerFor(target: string | Address): Promise<Peer> {
    return this.peers.peerFor(target);
  }

  listPeers(): Peer[] {
    return this.peers.list();
  }

  sessionInfo(peer: Peer): SessionInfo | undefined {
    return this.sessions.sessionInfo(peer.key);
  }

  sessionStats(): Readonly<SessionStats> {
    return this.sessions.stats;
  }

  /** Per peer, for --metrics (src/daemon/metrics.ts): connection stats and whether a session is up. */
  peerStats(): { conn: ReturnType<Connection['stats']>; session: boolean }[] {
    return this.peers.list().map((p) => ({ conn: p.conn.stats(), session: this.sessions?.hasSession(p.key) ?? false }));
  }

  /** Hole-punch counters and peers by path kind, for --metrics. */
  pathStats(): { counters: PathManager['counters']; paths: { direct: number; relay: number } } | undefined {
    return this.paths ? { counters: this.paths.counters, paths: this.paths.pathCounts() } : undefined;
  }

  /** The port mapping, for status/info. */
  portmapStatus(): PortMapStatus | { enabled: false } {
    return this.portmap?.status() ?? { enabled: false };
  }

  /** Our candidates with their kind (mapped, observed, lan), for status/info. */
  candidates(): { endpoint: string; kind: 'mapped' | 'observed' | 'lan' }[] {
    return this.net.candidateKinds();
  }

  /** How a peer is reached now, for peers/ping output, and which local interface a direct path leaves by (issue 19: `via eth0`). */
  pathInfo(peer: Peer): PathReport & { via: string | null } {
    const p = this.paths.current(peer.key);
    const r = pathReport(p, this.uplinkKind);
    const via = p?.kind === 'direct' ? (this.ifaces.routeInterface(p.host) ?? null) : null;
    return { ...r, via }; // `path` keeps its form (scripts match it); `peers` prints the via
  }

  /** The size of the peer's full-size packets on the wire (IP datagram bytes) and how path MTU discovery stands. */
  packetSizeInfo(peer: Peer): { mtu: number; mtuState: MtuState } {
    const p = this.paths.current(peer.key);
    const s = peer.conn.mtuStatus();
    const headers = p?.kind === 'direct' ? ipUdpHeaders(p.host) : ipUdpHeaders('0.0.0.0') + RELAY_OVERHEAD;
    return { mtu: peer.conn.maxPacketSize + HEADROOM + TAG_BYTES + headers, mtuState: s?.state ?? 'disabled' };
  }

  // ---------- streams and datagrams (peer-traffic.ts) ----------

  dial(target: string | Address, port: number): Promise<Stream> {
    return this.traffic.dial(target, port);
  }

  sendDatagram(to: string | Address, srcPort: number, dstPort: number, data: Buffer): Promise<void> {
    return this.traffic.sendDatagram(to, srcPort, dstPort, data);
  }

  /**
   * Called by the session layer with an encrypted packet for a peer. `via`: a
   * path probe's chosen path. Otherwise the current direct path, or the relay
   * (handshakes are also sprayed to every candidate, which punches cone NATs).
   */
  private sendToPeer(peerKey: number, packet: Buffer, via?: Path): void {
    const peer = this.peers.get(peerKey);
    if (!peer) return;
    const underlay = this.underlay!;
    const p = via ?? this.paths.current(peerKey);
    if (p?.kind === 'direct') {
      if (via === undefined) this.paths.noteSent(peerKey);
      return underlay.sendUdp(packet, p.host, p.port, p.sock);
    }
    const t = packet[0];
    if (via === undefined && (t === PacketType.HandshakeInit || t === PacketType.HandshakeResp)) {
      for (const c of this.paths.handshakeTargets(peerKey, t === PacketType.HandshakeInit ? 'init' : 'resp')) underlay.sendUdp(packet, c.host, c.port);
    }
    underlay.sendRelay(peer.address, packet, packet === this.relayRoom);
  }

  /**
   * A transport packet sealed in place (peer-table.ts builds each with RELAY_OVERHEAD spare bytes in
   * front of it): while the session layer sends it, a relayed send may write its header into that
   * room instead of copying the packet (sendToPeer). Only within this call: a packet queued behind a
   * handshake is a copy, sent later without the room.
   */
  private sendInPlace(peer: { address: Address; publicKey: Buffer }, whole: Buffer): void {
    this.relayRoom = whole;
    try {
      this.sessions.sendToInPlace(peer, whole);
    } finally {
      this.relayRoom = undefined;
    }
  }

  // ---------- lifecycle (issue 18: ephemeral nodes, deregister, goodbye) ----------

  /** Deregistered (pilotctl deregister): no more heartbeats, and the stop says so to the peers. */
  private deregistered = false;
  private farewellDone = false;

  /** Removed at the rendezvous on a clean stop: --ephemeral, or joined with an ephemeral invite. */
  get ephemeral(): boolean {
    return this.config.ephemeral === true || this.networks.list().some((m) => m.ephemeral);
  }

  /**
   * `pilotctl deregister` (upstream parity; Tailscale's logout): the signed deregister. An
   * ephemeral node is removed (`removed`); any other keeps its address bound to its key,
   * hidden until it registers again, and its hostname is released. No more heartbeats
   * (they would register it again): the caller stops the daemon next.
   */
  async deregister(): Promise<{ removed: boolean }> {
    if (!this.reg?.address) throw new PilotError('NOT_REGISTERED', 'this node is not registered yet', 'wait for the daemon to start, then try again');
    this.reg.stop();
    const r = await this.registry.deregister().catch((err: unknown) => {
      this.reg!.start(); // still registered: keep our standing
      throw err;
    });
    this.deregistered = true;
    this.reg.online = false;
    if (r.removed) this.networks.released();
    return r;
  }

  /**
   * A clean stop says so (once): to the rendezvous, so the node shows offline at once (an
   * ephemeral node is deregistered: removed), and to every peer we have a session with, in
   * that session (GOODBYE, goodbye.ts), so their 'peer-down' fires now. Bounded: an
   * unreachable rendezvous costs at most FAREWELL_WAIT_MS, never a hung stop.
   */
  private async farewell(): Promise<void> {
    if (this.farewellDone || !this.reg?.address || !this.sessions) return;
    this.farewellDone = true;
    this.reg.stop();
    const ephemeral = !this.deregistered && this.ephemeral;
    // The rendezvous first (not awaited yet): a peer that re-resolves us on our goodbye finds us offline.
    const told = this.deregistered
      ? Promise.resolve()
      : ephemeral
        ? this.registry.deregister().then((r) => {
            if (r.removed) this.networks.released();
          })
        : this.registry.offline();
    const reason: GoodbyeReason = this.deregistered || ephemeral ? 'deregistered' : 'stopped';
    const bye = encodeGoodbye(reason);
    for (const p of this.peers.list()) {
      if (!this.sessions.hasSession(p.key)) continue;
      try {
        this.sessions.sendTo({ address: p.address, publicKey: p.publicKey }, bye);
      } catch {
        // best effort, as QUIC's CONNECTION_CLOSE
      }
    }
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      told.then(
        () => 'ok',
        (err: unknown) => (err as Error).message,
      ),
      new Promise<string>((r) => {
        timer = setTimeout(() => r('no answer in time'), FAREWELL_WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (outcome !== 'ok')
      this.log.warn({ err: outcome, ephemeral }, 'the rendezvous did not hear of the stop: it shows this node offline once its heartbeats are missed');
    else this.log.info({ ephemeral }, ephemeral ? 'deregistered (ephemeral)' : 'told the rendezvous we are going offline');
  }

  async stop(): Promise<void> {
    await this.farewell();
    if (this.gatewayLoad) await (await this.gatewayLoad).close(); // listeners closed, aliases removed (state kept)
    this.reg?.stop();
    this.networks.stop();
    if (this.pathTimer) clearInterval(this.pathTimer);
    clearTimeout(this.streamTimer);
    await this.portmap?.stop(); // deleted at the gateway (bounded)
    this.net.stop();
    this.underlay?.close();
    for (const s of this.stopServices) s();
    this.peers.close();
    this.sessions?.destroy();
    this.registry?.close?.();
    await this.underlay?.closeSocket();
    this.lock?.release(); // last: the identity is free for another node only once this one is silent
  }
}
