// pilot-rendezvous: registry + beacon + relay on one port number, UDP and TCP.
// Every packet, whatever the transport, goes through dispatch() on its Link.
import type dgram from 'node:dgram';
import net from 'node:net';
import path from 'node:path';
import { PacketType } from '../wire/packet-types.ts';
import { silentLogger, type Logger } from '../util/logger.ts';
import { PilotError } from '../util/errors.ts';
import { listenError } from '../util/listen-error.ts';
import { createUdpSocket } from '../util/udp-socket.ts';
import { formatEndpoint, normalizeIp } from '../registry/endpoint.ts';
import { bindFirst, noIpv6, udpDestination } from '../util/dual-stack-listen.ts';
import { startAltBeacon } from './alt-beacon.ts';
import { startTlsListener, type TlsListener } from './tls-listener.ts';
import { createWebSocketAcceptor } from './websocket-link.ts';
import { sniffTcp } from './tcp-sniff.ts';
import { buildResponse, errorBody } from '../registry/envelope.ts';
import type { RegistryStore } from './store/store.ts';
import { importOptional } from '../util/optional-dep.ts';
import { formatAddress } from '../wire/address.ts';
import { loadOrCreateServerIdentity } from './server-identity.ts';
import { OnlineIndex } from './online-index.ts';
import { RegistryService, type RegistryCounters } from './registry-service.ts';
import { DEFAULT_RELAY_RATE, Relay, storeRelayPolicy, type RelayCounters } from './relay.ts';
import { KeyedLimiter, sourceKey, type Rate } from './rate-limit.ts';
import type { RegistryLimits } from './registry-limits.ts';
import { DEFAULT_MAX_FRAME, encodeFrame, FrameDecoder } from '../wire/tcp-framing.ts';
import { type Link, UdpLinks, type UdpSender } from './link.ts';
import { startHttpServer, type HttpServer } from './http-server.ts';
import { loadOrCreateAdminToken } from './admin-token.ts';
import { DEFAULT_COOKIE_ROTATE_MS, ReturnRoutability, type ReturnRoutabilityCounters } from './return-routability.ts';
import { UdpBatchReceiver } from '../util/udp-receiver.ts';
import { UdpBatcher } from '../util/udp-batcher.ts';
import { TurnCork } from '../util/turn-cork.ts';
import { type GsoBinding, loadGso, socketFd } from '../util/udp-gso.ts';

export interface RendezvousOptions {
  host: string;
  /** 0 = ephemeral (UDP and TCP still share the number). */
  port: number;
  dataDir: string;
  /** Default: SQLite in dataDir/registry.db (owned and closed by the server). */
  store?: RegistryStore;
  /**
   * postgres://… : the registry lives in PostgreSQL, shared with other
   * instances (scale-out: presence, pushes and relay across instances).
   * Exclusive with `store`.
   */
  storeUrl?: string;
  /** With storeUrl: the UDP address other instances reach this one at (default: the listen host and bound port; required when listening on a wildcard). */
  advertise?: { host: string; port?: number };
  logger?: Logger;
  /** Registry requests per source IP. */
  requestRate?: Rate;
  /** Relayed bytes per sending node. */
  relayRate?: Rate;
  /** trust_request calls per node (default: bursts of 20, then 10 a minute). */
  trustRequestRate?: Rate;
  maxTcpFrame?: number;
  maxTcpConnections?: number;
  tcpIdleMs?: number;
  replayCacheSize?: number;
  /** Registry abuse limits (replay state, unregistered keys, registrations, leases): see registry-limits.ts. */
  registryLimits?: Partial<RegistryLimits>;
  /** How long answers are kept to re-send to retransmitted requests (default and max: 60 s). */
  responseCacheMs?: number;
  /** UDP address-validation cookies: how often the secret rotates (a cookie lives 1-2 periods; default 120 s). */
  cookieRotateMs?: number;
  /** Second UDP port answering only hello, for NAT classification (0 = ephemeral; absent = none). */
  altPort?: number;
  /** Operators' HTTP listener (metrics, dashboard); absent = none. Token default: generated into dataDir/admin-token. */
  http?: { host: string; port: number; adminToken?: string };
  /** WebSocket over TLS (wss://) for HTTPS-only networks: certificate and key PEM files; absent = none. */
  tls?: { host: string; port: number; certFile: string; keyFile: string; watchMs?: number };
}

export interface RendezvousStats {
  registry: RegistryCounters;
  relay: RelayCounters;
  /** UDP return-routability cookies (cookie replies sent/withheld, validated requests). */
  routability: ReturnRoutabilityCounters;
  udpIn: number;
  tcpFramesIn: number;
  garbage: number;
  rateLimited: number;
  tcpConnections: number;
  /** Of tcpConnections, those upgraded to WebSocket. */
  websockets: number;
  online: number;
  /** How the UDP socket's sends left: GSO sendmsg calls and their packets, and packets sent one by one (dgram). */
  udpOut: { gsoSends: number; gsoPackets: number; plainPackets: number; onePackets: number };
}

export interface Rendezvous {
  host: string;
  port: number;
  /** The hello-only beacon port, when one was asked for. */
  altPort: number | undefined;
  /** The dashboard/metrics listener, when one was asked for. */
  http: { host: string; port: number; adminToken: string } | undefined;
  /** The wss listener, when one was asked for. */
  tls: { host: string; port: number } | undefined;
  /** Reads the TLS certificate and key files again (SIGHUP); false = kept the old pair (see the log). */
  reloadTls(): boolean;
  publicKey: Buffer;
  stats(): RendezvousStats;
  push(address: string, event: string, data: unknown): boolean;
  close(): Promise<void>;
}

const DEFAULT_REQUEST_RATE: Rate = { perSec: 500, burst: 1000 };
/** A TCP link with this much unsent data is congested: further packets to it are dropped. */
const TCP_MAX_BACKLOG = 1 << 20;

async function openSqliteStore(file: string): Promise<RegistryStore> {
  const { SqliteStore } = await importOptional(
    'better-sqlite3',
    "the rendezvous's default store (SQLite)",
    () => import('./store/sqlite-store.ts'),
    'keep the registry in PostgreSQL instead: --store postgres://USER:PASSWORD@HOST:PORT/DATABASE',
  );
  return new SqliteStore(file);
}

export async function startRendezvous(opts: RendezvousOptions): Promise<Rendezvous> {
  const log = opts.logger ?? silentLogger();
  const localIdentity = loadOrCreateServerIdentity(opts.dataDir);
  if (opts.store && opts.storeUrl) throw new PilotError('BAD_ARGUMENT', 'store and storeUrl are exclusive');
  const advertiseHost = opts.advertise?.host ?? opts.host;
  if (opts.storeUrl && isWildcard(advertiseHost)) {
    throw new PilotError(
      'BAD_ARGUMENT',
      `listening on ${opts.host} with a shared --store: other instances need an address to reach this one`,
      'add --advertise HOST[:PORT] (an address of this machine the other rendezvous instances can reach)',
    );
  }
  // prom-client is an optional peer dependency: loaded only for --http (metrics +
  // dashboard), before anything binds, so a missing one fails with the npm command.
  const metricsModule = opts.http
    ? await importOptional('prom-client', 'the metrics and dashboard listener (--http)', () => import('./metrics.ts'))
    : undefined;
  const ownsStore = opts.store === undefined;
  // The stores' drivers are optional peer dependencies (not every install runs a
  // rendezvous): each is loaded only when chosen, with an install hint if missing.
  const pgStore = opts.storeUrl
    ? await (await import('./store/postgres-store.ts')).PostgresStore.open(opts.storeUrl) // pg itself: see connectPg
    : undefined;
  const store: RegistryStore = opts.store ?? pgStore ?? (await openSqliteStore(path.join(opts.dataDir, 'registry.db')));
  const pgCluster = pgStore ? await import('./pg-cluster.ts') : undefined;
  const cluster = pgStore ? new pgCluster!.PgCluster(pgStore.pool, opts.storeUrl!, log) : undefined;
  // Instances sharing a database share one server key (pg-cluster.ts: sharedServerIdentity).
  const identity = pgStore ? await pgCluster!.sharedServerIdentity(pgStore.pool, localIdentity, log) : localIdentity;
  const online = new OnlineIndex();
  const relay = new Relay(online, opts.relayRate ?? DEFAULT_RELAY_RATE, storeRelayPolicy(store), cluster);
  const registry = new RegistryService({
    identity,
    store,
    online,
    log,
    replayCacheSize: opts.replayCacheSize,
    ...(opts.registryLimits ? { limits: opts.registryLimits } : {}),
    responseCacheMs: opts.responseCacheMs,
    trustRequestRate: opts.trustRequestRate,
    routability: new ReturnRoutability(opts.cookieRotateMs ?? DEFAULT_COOKIE_ROTATE_MS),
    onPairChanged: (x, y) => relay.invalidatePair(x, y),
    onNodeChanged: (a) => relay.invalidateNode(a),
    ...(cluster ? { cluster } : {}),
  });
  const requestLimiter = new KeyedLimiter(opts.requestRate ?? DEFAULT_REQUEST_RATE);
  const maxFrame = opts.maxTcpFrame ?? DEFAULT_MAX_FRAME;
  const counters = { udpIn: 0, tcpFramesIn: 0, garbage: 0, rateLimited: 0 };
  const conns = new Set<net.Socket>();

  /** `from`: the source IP as the socket gave it (normalised only where a request needs it, not per relayed packet). */
  function dispatch(pkt: Buffer, link: Link, from: string): void {
    const type = pkt[0];
    if (type === PacketType.RelaySend) {
      relay.handle(pkt, link);
    } else if (type === PacketType.RelayForward && cluster && link.kind === 'udp') {
      relay.handleFromPeer(pkt);
    } else if (type === PacketType.RegistryRequest) {
      const ip = normalizeIp(from);
      // Per IPv4 address, or per IPv6 /64 (one subscriber's prefix): now that IPv6 clients reach us directly.
      if (!requestLimiter.take(net.isIPv6(ip) ? sourceKey(link.observed) : ip)) {
        counters.rateLimited++;
        return;
      }
      registry.handle(pkt, link).catch((err) => log.error({ err }, 'registry request crashed'));
    } else if (type === PacketType.Keepalive && pkt.length === 1) {
      // A node keeping its NAT mapping to us open (issue 19): nothing to do, and nothing is sent back.
    } else {
      counters.garbage++;
    }
  }

  // ---------------- sockets ----------------
  let bound: Awaited<ReturnType<typeof bindBoth>>;
  try {
    bound = await bindBoth(opts.host, opts.port);
  } catch (err) {
    if (ownsStore) await store.close();
    throw err;
  }
  const { udp, tcp, port } = bound;
  /** A relay/cluster destination as the bound UDP socket needs it (IPv4-mapped on a dual-stack one). */
  const udpTo = (ip: string): string => udpDestination(bound.host, ip);
  // What goes out over UDP (relay forwards above all) leaves in GSO batches: the packets of one poll
  // phase for one node cost one sendmsg, not one each (src/util/udp-batcher.ts).
  const gso = loadGso();
  const udpOut = new UdpBatcher(udp, {
    log,
    gso,
    flushAt: 'immediate',
    onSendError: (err, to) => log.debug({ err: err.message, to }, 'udp send failed'),
  });
  /** What a UDP link answers through: the batcher (dgram's argument order, for UdpLink). */
  const udpSend: UdpSender = { send: (pkt, p, address) => udpOut.send(pkt, address, p) };
  const alt =
    opts.altPort === undefined
      ? undefined
      : await startAltBeacon(
          opts.host,
          opts.altPort,
          (pkt, link) => void registry.handle(pkt, link),
          () => counters.garbage++,
        ).catch(async (err: unknown) => {
          udp.close();
          await new Promise<void>((r) => tcp.close(() => r()));
          if (ownsStore) await store.close();
          const e = listenError(err, 'udp', opts.host, opts.altPort!, '--alt-port');
          if (e instanceof PilotError)
            throw new PilotError(e.code, `${e.message} (beacon alt port)`, e.hint?.replace('--alt-port HOST:PORT', '--alt-port PORT ("none" to disable)'));
          throw new PilotError(
            'BAD_ARGUMENT',
            `cannot listen on udp ${opts.host}:${opts.altPort} (beacon alt port): ${(err as Error).message}`,
            'pick another --alt-port',
          );
        });
  if (alt) registry.beacon.altPort = alt.port;
  if (relayDf(gso, udp, log)) registry.beacon.relayDf = true;
  if (cluster) {
    try {
      await cluster.start({
        advertise: { host: advertiseHost, port: opts.advertise?.port ?? port },
        sendUdp: (pkt, host, p) => udpOut.send(pkt, udpTo(host), p),
        events: {
          push: (to, event, data) => {
            try {
              registry.push(formatAddress(to), event, data);
            } catch (err) {
              log.warn({ err: (err as Error).message, event }, 'push from another instance not sent');
            }
          },
          pairChanged: (x, y) => relay.invalidatePair(x, y),
          nodeChanged: (a) => {
            relay.invalidateNode(a);
            // A node online here changed elsewhere (a key rotation, a removal): its entry must not
            // outlive that, since network methods take an online caller's entry as its record.
            const e = online.getByAddress(a);
            if (e)
              void store.getByAddress(a).then(
                (rec) => {
                  if (!rec?.active || rec.publicKey.toString('base64') !== e.keyB64) online.remove(e.keyB64);
                },
                (err: unknown) => log.warn({ err: (err as Error).message }, 'node change from another instance not checked'),
              );
          },
        },
      });
    } catch (err) {
      udp.close();
      await Promise.all([new Promise<void>((r) => tcp.close(() => r())), alt?.close()]);
      await cluster.close();
      await store.close();
      throw err;
    }
    log.info({ instance: cluster.instanceId, advertise: `${advertiseHost}:${opts.advertise?.port ?? port}` }, 'joined the rendezvous cluster');
  }
  log.info({ host: opts.host, port }, 'rendezvous listening');

  udp.on('error', (err) => log.warn({ err }, 'udp socket error'));
  const udpLinks = new UdpLinks(udpSend);
  const onUdp = (msg: Buffer, address: string, p: number): void => {
    counters.udpIn++;
    if (msg.length === 0 || msg.length > maxFrame) {
      counters.garbage++;
      return;
    }
    dispatch(msg, udpLinks.get(address, p), address);
  };
  // dgram's listener stays: it reads whenever the batched reader is off or has handed the socket back
  udp.on('message', (msg, rinfo) => onUdp(msg, rinfo.address, rinfo.port));
  // Relayed packets arrive in batches of up to 32 per system call and JavaScript call (src/util/udp-receiver.ts);
  // each batch's Buffer is its own, so a forward queued until the poll phase ends (udpOut) still holds its bytes.
  const udpIn = UdpBatchReceiver.start(udp, onUdp, { log });
  /** The UDP socket closed, its batched reader first (whose own fd would keep the port bound past the close). */
  const closeUdp = (): Promise<void> =>
    new Promise<void>((r) => {
      udpIn?.close();
      udp.close(() => r());
    });

  let connSeq = 0;
  tcp.maxConnections = opts.maxTcpConnections ?? 10_000;
  tcp.on('error', (err) => log.warn({ err }, 'tcp server error'));
  const tcpIdleMs = opts.tcpIdleMs ?? 90_000;
  const websockets = createWebSocketAcceptor({
    maxMessage: maxFrame,
    maxBacklog: TCP_MAX_BACKLOG,
    idleMs: tcpIdleMs,
    handshakeMs: Math.min(5_000, tcpIdleMs),
    onPacket: (pkt, link, ip) => {
      counters.tcpFramesIn++;
      dispatch(pkt, link, ip);
    },
    onGarbage: () => counters.garbage++,
    onClose: (link) => online.linkClosed(link.id),
  });
  tcp.on('connection', (sock) => {
    conns.add(sock);
    sock.on('close', () => conns.delete(sock));
    sock.setTimeout(tcpIdleMs, () => sock.destroy());
    sock.on('error', () => {});
    // Framed packets or a WebSocket upgrade? The first bytes tell.
    sniffTcp(sock, (protocol) => (protocol === 'http' ? websockets.accept(sock) : serveFramed(sock)));
  });
  const serveFramed = (sock: net.Socket): void => {
    const remote = sock.remoteAddress;
    const remotePort = sock.remotePort;
    if (!remote || !remotePort) {
      sock.destroy();
      return;
    }
    sock.setNoDelay(true);
    // the relay's forwards to this node in one turn leave in one writev, not one write() each
    const turn = new TurnCork(sock);
    const link: Link = {
      kind: 'tcp',
      id: `tcp:${++connSeq}`,
      observed: formatEndpoint(remote, remotePort),
      send: (pkt) => {
        if (sock.destroyed || !sock.writable || sock.writableLength > TCP_MAX_BACKLOG) return false;
        turn.beforeWrite();
        sock.write(encodeFrame(pkt));
        return true;
      },
    };
    const decoder = new FrameDecoder(maxFrame);
    let broken = false;
    sock.on('data', (data) => {
      if (broken) return;
      let frames: Buffer[];
      try {
        frames = decoder.push(data);
      } catch (err) {
        // An oversized frame desynchronises the stream: answer once, then hang up.
        broken = true;
        counters.garbage++;
        const e = err instanceof PilotError ? err : new PilotError('FRAME_TOO_LARGE', 'bad frame');
        const body = errorBody(new PilotError(e.code, e.message, `frames are at most ${maxFrame} bytes`));
        if (!sock.destroyed) sock.end(encodeFrame(buildResponse(identity, 'x', null, body, link.observed)));
        setTimeout(() => sock.destroy(), 1000).unref();
        return;
      }
      for (const f of frames) {
        counters.tcpFramesIn++;
        if (f.length === 0) {
          counters.garbage++;
          continue;
        }
        dispatch(f, link, remote);
      }
    });
    sock.on('error', (err) => log.debug({ err: err.message }, 'tcp connection error'));
    sock.on('close', () => online.linkClosed(link.id));
  };

  // ---------------- operators' HTTP (metrics, dashboard) ----------------
  const stats = (): RendezvousStats => ({
    registry: { ...registry.counters },
    relay: { ...relay.counters },
    routability: { ...registry.routability.counters },
    ...counters,
    tcpConnections: conns.size,
    websockets: websockets.size,
    online: online.size,
    udpOut: {
      gsoSends: udpOut.stats.gsoSends,
      gsoPackets: udpOut.stats.gsoPackets,
      plainPackets: udpOut.stats.plainPackets,
      onePackets: udpOut.stats.onePackets,
    },
  });
  let tlsListener: TlsListener | undefined;
  if (opts.tls) {
    try {
      tlsListener = await startTlsListener({
        ...opts.tls,
        handshakeMs: Math.min(5_000, tcpIdleMs),
        maxConnections: tcp.maxConnections,
        log,
        onHandshakeFailure: () => counters.garbage++,
        onConnection: (sock) => {
          // The same WebSocket acceptor as the plain port (its own upgrade deadline and limits), after TLS.
          conns.add(sock);
          sock.on('close', () => conns.delete(sock));
          sock.setTimeout(tcpIdleMs, () => sock.destroy());
          sock.on('error', () => {});
          websockets.accept(sock);
        },
      });
    } catch (err) {
      websockets.close();
      await Promise.all([closeUdp(), new Promise<void>((r) => tcp.close(() => r())), alt?.close()]);
      await cluster?.close();
      if (ownsStore) await store.close();
      throw err;
    }
    log.info({ host: opts.tls.host, port: tlsListener.port }, 'wss listening');
  }
  let web: (HttpServer & { adminToken: string }) | undefined;
  if (opts.http) {
    const adminToken = opts.http.adminToken ?? loadOrCreateAdminToken(opts.dataDir);
    const metrics = metricsModule!.createRendezvousMetrics({ stats, online, db: store.dbStats?.bind(store) });
    try {
      web = Object.assign(await startHttpServer({ host: opts.http.host, port: opts.http.port, adminToken, metrics, views: { online, store, stats }, log }), {
        adminToken,
      });
    } catch (err) {
      websockets.close();
      await Promise.all([closeUdp(), new Promise<void>((r) => tcp.close(() => r())), alt?.close(), tlsListener?.close()]);
      await cluster?.close();
      if (ownsStore) await store.close();
      throw err;
    }
  }

  // ---------------- housekeeping ----------------
  const sweeper = setInterval(() => {
    const now = Date.now();
    registry.prune(now);
    relay.prune(now);
    requestLimiter.prune(now);
    online.prune(now);
    cluster?.tick(now);
  }, 5_000);
  sweeper.unref();

  let closed = false;
  return {
    host: opts.host,
    port,
    altPort: alt?.port,
    publicKey: Buffer.from(identity.publicKey),
    http: web && { host: web.host, port: web.port, adminToken: web.adminToken },
    tls: tlsListener && { host: tlsListener.host, port: tlsListener.port },
    reloadTls: () => tlsListener?.reload() ?? false,
    stats,
    push: (address, event, data) => registry.push(address, event, data),
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(sweeper);
      await web?.close();
      for (const s of conns) s.destroy();
      websockets.close();
      udpOut.flush();
      await Promise.all([closeUdp(), new Promise<void>((r) => tcp.close(() => r())), alt?.close(), tlsListener?.close()]);
      await cluster?.close();
      if (ownsStore) await store.close();
      log.info('rendezvous closed');
    },
  };
}

function isWildcard(host: string): boolean {
  return host === '' || host === '0.0.0.0' || host === '::' || host === '[::]';
}

/** Binds TCP then UDP on the same port number; with port 0, retries until both get the same one. */
async function bindBoth(listenHost: string, port: number): Promise<{ udp: dgram.Socket; tcp: net.Server; port: number; host: string }> {
  // All addresses = both families: one "::" socket each for TCP and UDP (IPv4 arrives as ::ffff:a.b.c.d).
  return bindFirst(listenHost, (host) => bindBothOn(host, port, listenHost));
}

async function bindBothOn(host: string, port: number, shown: string): Promise<{ udp: dgram.Socket; tcp: net.Server; port: number; host: string }> {
  const type = net.isIPv6(host) ? 'udp6' : 'udp4';
  let lastErr: unknown;
  for (let attempt = 0; attempt < (port === 0 ? 20 : 1); attempt++) {
    const tcp = net.createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ host, port, exclusive: true }, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      if (host !== shown && noIpv6(err)) throw err; // the caller tries 0.0.0.0
      const e = listenError(err, 'tcp', shown, port, '--listen');
      throw e instanceof PilotError
        ? e
        : new PilotError('BAD_ARGUMENT', `cannot listen on tcp ${shown}:${port}: ${(err as Error).message}`, 'pick another --listen HOST:PORT');
    }
    const actual = (tcp.address() as net.AddressInfo).port;
    // Big buffers: relay bursts from many nodes arrive faster than one event-loop turn drains them.
    // Relay sends go to IP literals: no dns.lookup (and its tick) per packet.
    const udp = createUdpSocket({ type, reuseAddr: false, recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind({ port: actual, address: host, exclusive: true }, () => {
          udp.off('error', reject);
          resolve();
        });
      });
      return { udp, tcp, port: actual, host };
    } catch (err) {
      lastErr = err;
      udp.close();
      await new Promise<void>((r) => tcp.close(() => r()));
    }
  }
  if (host !== shown && noIpv6(lastErr)) throw lastErr;
  const e = listenError(lastErr, 'udp', shown, port, '--listen');
  throw e instanceof PilotError
    ? e
    : new PilotError('BAD_ARGUMENT', `cannot listen on udp ${shown}:${port}: ${(lastErr as Error)?.message}`, 'pick another --listen HOST:PORT');
}

/**
 * DF on every datagram of the main UDP socket (IP_PMTUDISC_PROBE), never fragmented here: a relayed
 * packet too big for the next leg is dropped instead of split. Linux's default (WANT) sent a GSO
 * batch's segments without DF, so routers fragmented them, and once an ICMP "fragmentation needed"
 * had lowered the route's PMTU it fragmented bigger packets itself: a daemon probing the relayed
 * path's MTU (RFC 8899) would then see its too-big probes acked. With DF the probe is lost and the
 * search stops below the path's MTU; hello answers say so (relayDf), and only then do daemons
 * probe a relayed path. Registry packets stay under 1,200 bytes, so DF costs them nothing.
 */
function relayDf(gso: GsoBinding | undefined, udp: dgram.Socket, log: Logger): boolean {
  const fd = gso === undefined ? undefined : socketFd(udp);
  if (gso === undefined || fd === undefined) return false;
  const rc = gso.dfAlways(fd);
  if (rc !== 0) log.info({ rc }, 'cannot set DF on the UDP socket: relayed paths keep the 1280-safe packet size');
  return rc === 0;
}
