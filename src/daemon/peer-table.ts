// The daemon's peers: one entry per remote node we talk to, holding what the
// registry said about it (key, hostname, candidates, public) and the one
// Connection (streams + datagrams) to it. Entries come from registry lookups
// (resolve cache, 30 s) and from sessions a peer opened; untrusted ones are
// bounded in number and forgotten when idle (peer-limit.ts).
import { Connection } from '../transport/connection.ts';
import type { CongestionAlgorithm } from '../transport/congestion.ts';
import { addressKey, parseAddress, type Address } from '../wire/address.ts';
import { DEFAULT_MAX_PLAINTEXT, RELAY_OVERHEAD } from '../wire/packet-types.ts';
import { DATA_HEADER_BYTES } from '../crypto/session.ts';
import { TAG_BYTES } from '../crypto/aead.ts';
import { PilotError } from '../util/errors.ts';
import type { HostPort } from '../util/hostport.ts';
import type { Logger } from '../util/logger.ts';
import { formatAddress } from '../wire/address.ts';
import { parseEndpoint, type Path } from '../nat/path.ts';
import { ipUdpHeaders, onLinkPayload, remotePayloadCeiling, routePmtu, routePmtuSupported } from '../nat/link-mtu.ts';
import { Inner } from '../nat/inner.ts';
import type { IncomingStream } from './ports.ts';
import { parseTarget, type ResolvedNode } from './targets.ts';
import { PeerLimit } from './peer-limit.ts';
import { GoneBook, type GoodbyeReason } from './goodbye.ts';

export const RESOLVE_TTL_MS = 30_000;
/** A goodbye this soon (ms) after a peer's boot id changed is soft (PeerTable.goodbye). */
export const SOFT_GOODBYE_MS = 60_000;
const MAX_CANDIDATES = 4;
/** Boot ids remembered per peer (two copies of one identity flip between two). */
const MAX_BOOTS = 4;
/** Session plaintext = [inner type byte][transport packet]: room for encryption in place around it. */
export const HEADROOM = DATA_HEADER_BYTES + 1;

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
  /** Boot ids this key has shown us, newest last (a few): one seen before again = the identity runs twice. */
  boots?: string[];
  /** When a session came up with another boot id than the one before (a restart, or a second copy of the identity). */
  bootChangedAt?: number;
}

export interface PeerTableHost {
  readonly log: Logger;
  readonly counters: { refusedUntrusted: number; untrustedEvicted: number };
  now(): number;
  /** Our own address (once registered). */
  localAddress(): Address | undefined;
  /** N:<node> (a network we are in) as 0:<node>, the address peers are kept under; NOT_FOUND if we are not in N. */
  globalAddress(address: Address): Address;
  isTrusted(address: Address): boolean;
  /** Public nodes accept sessions from anyone (echo only); others only from trusted peers. */
  amPublic(): boolean;
  /** Are we a member of some network? (a stranger may then be a co-member: worth a registry lookup) */
  inNetworks(): boolean;
  /** Registry lookups: by address, and by target text (address, node id or hostname). */
  resolve(query: { address: Address }): Promise<ResolvedNode>;
  resolveTarget(target: string): Promise<ResolvedNode>;
  /** The shared, cached and rate-limited registry check of a message 1's key (handshake-guard.ts). */
  verify(address: Address, publicKey: Buffer): Promise<ResolvedNode | undefined>;
  /** A whole session packet ([session header][inner type][packet][tag]) to encrypt in place and send. */
  sendInPlace(peer: { address: Address; publicKey: Buffer }, whole: Buffer): void;
  incomingStream(from: Address, stream: IncomingStream): void;
  incomingDatagram(from: Address, dg: { srcPort: number; dstPort: number; data: Buffer }): void;
  /** The session layer's and the path layer's state of a peer. */
  closeSession(key: number): void;
  forgetPath(key: number): void;
  /** The registry's endpoints of a peer, for punching. */
  setCandidates(key: number, candidates: HostPort[]): void;
  /**
   * The rendezvous's UDP host when a relayed path's MTU may be probed: its hello said it relays with
   * DF and never fragments, and we reach it over UDP. Undefined: relayed paths keep the 1280-safe size.
   */
  relayProbeHost(): string | undefined;
}

export interface PeerTableOptions {
  congestionControl?: CongestionAlgorithm | undefined;
  untrustedIdleMs?: number | undefined;
  maxUntrustedPeers?: number | undefined;
}

export class PeerTable {
  /** Peers that said goodbye (goodbye.ts): a dial to one fails fast until it is back. */
  private readonly gone = new GoneBook();
  private readonly host: PeerTableHost;
  private readonly cc: CongestionAlgorithm | undefined;
  private readonly peers = new Map<number, Peer>();
  private readonly limit: PeerLimit;
  private timer: NodeJS.Timeout | undefined;

  constructor(host: PeerTableHost, opts: PeerTableOptions = {}) {
    this.host = host;
    this.cc = opts.congestionControl;
    this.limit = new PeerLimit({
      ...(opts.untrustedIdleMs !== undefined ? { idleMs: opts.untrustedIdleMs } : {}),
      ...(opts.maxUntrustedPeers !== undefined ? { maxUntrusted: opts.maxUntrustedPeers } : {}),
    });
  }

  /** Sweep idle untrusted peers from now on. */
  start(): void {
    this.timer = setInterval(() => this.forgetIdleUntrusted(), this.limit.sweepEveryMs);
    this.timer.unref();
  }

  get(key: number): Peer | undefined {
    return this.peers.get(key);
  }

  byAddress(address: Address): Peer | undefined {
    return this.peers.get(addressKey(address));
  }

  list(): Peer[] {
    return [...this.peers.values()];
  }

  get size(): number {
    return this.peers.size;
  }

  private newConnection(address: Address): Connection {
    const key = addressKey(address);
    const conn = new Connection({
      role: addressKey(this.host.localAddress()!) < key ? 'low' : 'high',
      // One byte of every session plaintext is the inner type (transport vs path messages).
      maxPacketSize: DEFAULT_MAX_PLAINTEXT - 1,
      ...(this.cc ? { congestionControl: this.cc } : {}),
      // RELAY_OVERHEAD more in front: a relayed packet's header is written there (Underlay.sendRelay), not copied around it
      headroom: HEADROOM + RELAY_OVERHEAD,
      tailroom: TAG_BYTES,
      sendPacket: (p: Buffer) => {
        const peer = this.peers.get(key);
        if (!peer) return;
        // [session header][inner type][packet][tag] in the packet's own memory: encrypted in place, no copy.
        const whole = Buffer.from(p.buffer, p.byteOffset - HEADROOM, p.length + HEADROOM + TAG_BYTES);
        whole[DATA_HEADER_BYTES] = Inner.Transport;
        this.host.sendInPlace(peer, whole);
      },
    });
    conn.on('stream', (stream: IncomingStream) => this.host.incomingStream(address, stream));
    conn.on('datagram', (dg: { srcPort: number; dstPort: number; data: Buffer }) => this.host.incomingDatagram(address, dg));
    return conn;
  }

  /** A registry record in the table: a new peer (room made among the untrusted), or an update (a new key = a new session). */
  upsert(r: ResolvedNode): Peer {
    const key = addressKey(r.address);
    let peer = this.peers.get(key);
    const candidates = r.endpoints
      .map(parseEndpoint)
      .filter((e): e is HostPort => e !== undefined)
      .slice(0, MAX_CANDIDATES);
    if (!peer) {
      if (!this.host.isTrusted(r.address)) for (const old of this.limit.makeRoom(this.untrusted())) this.evict(old, 'evicted for a newer one');
      peer = {
        key,
        address: r.address,
        publicKey: r.publicKey,
        hostname: r.hostname,
        candidates,
        public: r.public,
        conn: this.newConnection(r.address),
        resolvedAt: this.host.now(),
        lastSeen: 0,
      };
      this.peers.set(key, peer);
    } else {
      if (!peer.publicKey.equals(r.publicKey)) {
        // Key changed at the registry: the old session belongs to someone else now.
        this.host.closeSession(key);
        peer.conn.reset('peer key changed');
        peer.conn = this.newConnection(r.address);
        this.host.forgetPath(key);
      }
      peer.publicKey = r.publicKey;
      peer.hostname = r.hostname;
      peer.public = r.public;
      peer.candidates = candidates;
      peer.resolvedAt = this.host.now();
    }
    this.host.setCandidates(key, candidates);
    return peer;
  }

  /** A peer that opened a session with us (its key already checked): known from now on. */
  adopt(address: Address, publicKey: Buffer): void {
    if (!this.peers.has(addressKey(address))) {
      this.upsert({ address, publicKey, hostname: undefined, endpoints: [], public: false, online: true });
    }
  }

  /** The peer for a target (address, node id or hostname), from the cache or the registry, with a usable connection. */
  async peerFor(target: string | Address): Promise<Peer> {
    return this.revive(await this.find(target));
  }

  /**
   * A peer that closed its connection (CONNECTION_CLOSE when it stopped) gets a fresh one when we next
   * send to it, as after a restart: a closed Connection sends nothing.
   */
  private revive(peer: Peer): Peer {
    peer.conn.reopen(); // the same Connection: its packet numbers keep counting up (see renew)
    return peer;
  }

  /**
   * The peer's streams are reset (it restarted): fresh connection state, in the same Connection so its
   * packet numbers keep counting up (Connection.reset; reopened if it was closed). With `tellPeer` the peer is told too
   * (Connection.restart), for a peer that did not restart but missed our reset.
   */
  renew(peer: Peer, reason: string, tellPeer = false): void {
    peer.conn.reopen(); // closed by a copy of the peer that stopped: the other copy may still hold state
    if (tellPeer) peer.conn.restart(reason);
    else peer.conn.reset(reason);
  }

  /** Note a boot id of the peer's key; true if it was seen before (not a restart: a second copy of the identity). */
  noteBoot(peer: Peer, boot: string): boolean {
    const boots = (peer.boots ??= []);
    const at = boots.indexOf(boot);
    if (at >= 0) boots.splice(at, 1);
    boots.push(boot);
    if (boots.length > MAX_BOOTS) boots.shift();
    return at >= 0;
  }

  /** Tear down everything we have with a peer given as text (trust revoked); its address, if it parses. */
  forgetText(peerText: string, reason: string): Address | undefined {
    let address: Address;
    try {
      address = parseAddress(peerText);
    } catch {
      return undefined;
    }
    this.forget(addressKey(address), reason);
    this.host.log.info({ peer: peerText }, `${reason}: session closed`);
    return address;
  }

  /** A session with this key is up (either side): the peer is known from now on, and its boot id noted. */
  sessionUp(key: number, address: Address, publicKey: Buffer, bootId: Buffer): void {
    this.gone.clear(key); // back (a new session after its goodbye)
    this.adopt(address, publicKey);
    const known = this.peers.get(key);
    if (known) {
      const boot = bootId.toString('hex');
      const latest = known.boots?.[known.boots.length - 1];
      if (latest !== undefined && latest !== boot) known.bootChangedAt = this.host.now();
      this.noteBoot(known, boot);
    }
  }

  /**
   * The peer's key came back with another boot id: its streams are reset. A boot id this key had
   * shown before is no restart: the identity runs twice (a copy of its home on another machine),
   * and the newest authenticated handshake wins, as in WireGuard. The copy we were talking to in
   * between got our connection; the one back now still holds its state from before and would drop
   * our fresh packets as duplicates (minutes of silence): it is told to start over too, on the next
   * turn (after our message 2 and the new path, which the session layer sends once this returns).
   */
  restarted(key: number, remoteBoot: string | null | undefined): Peer | undefined {
    const peer = this.peers.get(key);
    if (!peer) return undefined;
    const again = remoteBoot !== null && remoteBoot !== undefined && this.noteBoot(peer, remoteBoot);
    peer.bootChangedAt = this.host.now(); // a goodbye soon after is soft (goodbye())
    this.host.log.info(
      { peer: formatAddress(peer.address) },
      again ? 'peer identity seen twice: back to an earlier boot, restarting its streams' : 'peer restarted: resetting its streams',
    );
    this.renew(peer, 'peer restarted');
    if (again)
      setImmediate(() => {
        const p = this.peers.get(key);
        if (p) this.renew(p, 'peer identity seen twice', true);
      });
    return peer;
  }

  /** The peer's path changed: its transport packets start over at what the path is known to carry, and probe for more. */
  pathChanged(key: number, p: Path | undefined): Peer | undefined {
    const peer = this.peers.get(key);
    if (!peer) return peer;
    const dflt = DEFAULT_MAX_PLAINTEXT - 1;
    const onLink = p?.kind === 'direct' && p.sock === undefined ? onLinkPayload(p.host) : undefined;
    const relayHost = p?.kind === 'relay' ? this.host.relayProbeHost() : undefined;
    if (onLink !== undefined) {
      // same host or an attached subnet: the interface MTU is the path MTU, nothing to probe
      const size = Math.max(dflt, packetSizeForPayload(onLink));
      peer.conn.setPathMtu(size, size);
    } else if (p?.kind === 'direct' && routePmtuSupported()) {
      // a remote direct path: probe between the 1280-safe default and 1500, each acked probe checked against the route cache
      this.probePathMtu(peer, p.host, 0);
    } else if (relayHost !== undefined && routePmtuSupported()) {
      // The relay: the probe crosses our leg to the rendezvous (checked against our route cache as
      // on a direct path) and its leg to the peer, where the rendezvous sends with DF and never
      // fragments (it said so in its hello): a probe too big for that leg is lost, not split. At
      // 1260 bytes instead of 1500 a relayed MB took 21% more packets at both daemons and the
      // rendezvous (BENCHMARKS.md, "The relayed path's CPU per MB").
      this.probePathMtu(peer, relayHost, RELAY_OVERHEAD);
    } else {
      // no path, or a relay that may fragment (an older rendezvous, a TCP uplink): the default, which fits the relay's wrapper
      peer.conn.setPathMtu(dflt, dflt);
    }
    return peer;
  }

  /**
   * Probe `peer`'s packet size between the 1280-safe default and what our widest interface (at
   * most 1500) carries toward `host`, each acked probe checked against the kernel's route cache for
   * `host`; `wrapper`: bytes each packet carries outside the session packet (the relay's header).
   */
  private probePathMtu(peer: Peer, host: string, wrapper: number): void {
    const headers = ipUdpHeaders(host) + wrapper;
    peer.conn.setPathMtu(
      DEFAULT_MAX_PLAINTEXT - 1,
      packetSizeForPayload(remotePayloadCeiling(host) - wrapper),
      (size, done) => {
        void routePmtu(host).then((mtu) => {
          if (mtu === undefined) return done(false);
          const ceiling = packetSizeForPayload(mtu - headers);
          done(size <= ceiling, ceiling);
        });
      },
      (size, why) => {
        const wire = size + HEADROOM + TAG_BYTES + headers;
        // a few lines per path at most: a search takes some ten probes, black holes back off
        this.host.log.info(
          { peer: formatAddress(peer.address), mtu: wire, why, ...(wrapper > 0 ? { relayed: true } : {}) },
          why === 'black-hole' ? 'path MTU black hole: back to the 1280-safe size' : 'path MTU',
        );
      },
    );
  }

  private fresh(p: Peer | undefined): p is Peer {
    return p !== undefined && this.host.now() - p.resolvedAt < RESOLVE_TTL_MS;
  }

  /**
   * A peer we heard from in its session lately needs no registry answer to be dialled by address:
   * the session proved its key and carries its path (a key rotation or a goodbye ends that session).
   * Without this, a fleet agent asked the rendezvous about the same worker every 30 s: with 1,000
   * agents, most of the registry's database statements (BENCHMARKS.md, "Fleets"). Not for
   * hostnames: a name may move to another node while a session with the old holder lives.
   */
  private live(p: Peer | undefined): p is Peer {
    return p !== undefined && p.lastSeen > 0 && this.host.now() - p.lastSeen < RESOLVE_TTL_MS;
  }

  private async find(target: string | Address): Promise<Peer> {
    if (typeof target !== 'string') {
      // Peers are kept under their 0:… address; N:… (a network's) names the same node.
      const known = this.peers.get(addressKey(this.host.globalAddress(target)));
      if (this.fresh(known) || this.live(known)) return known;
      return this.upsert(this.notGone(await this.host.resolve({ address: target })));
    }
    // A peer resolved within the TTL needs no registry round trip: without this,
    // every dial and every SDK datagram by name paid one (~1 ms on loopback).
    const t = parseTarget(target, this.host.localAddress()?.network ?? 0);
    const cached = 'address' in t ? this.peers.get(addressKey(this.host.globalAddress(t.address))) : this.named(t.hostname);
    if (this.fresh(cached) || ('address' in t && this.live(cached))) return cached;
    const r = await this.host.resolveTarget(target);
    if (addressKey(r.address) === addressKey(this.host.localAddress()!)) {
      throw new PilotError('BAD_ARGUMENT', 'that target is this node itself', 'name another agent');
    }
    this.notGone(r);
    const known = this.peers.get(addressKey(r.address));
    if (known?.publicKey.equals(r.publicKey) && this.fresh(known)) return known;
    return this.upsert(r);
  }

  /** A peer that said goodbye and is not online again: UNREACHABLE now, not a handshake timeout later. */
  private notGone(r: ResolvedNode): ResolvedNode {
    this.gone.check(addressKey(r.address), formatAddress(r.address), r.online, this.host.now());
    return r;
  }

  /**
   * The peer said goodbye in its session (it stopped or deregistered): everything we have with it
   * goes (its streams end with CONNECTION_RESET), and dials to it fail fast while it is offline.
   */
  goodbye(key: number, reason: GoodbyeReason): { peer: Peer; hard: boolean } | undefined {
    const peer = this.peers.get(key);
    if (!peer) return undefined;
    if (peer.bootChangedAt !== undefined && this.host.now() - peer.bootChangedAt < SOFT_GOODBYE_MS) {
      // Its boot id changed moments ago: a restart, or a second copy of the identity (a copy of its
      // home elsewhere) that may still be up. The goodbye may not speak for the other copy: the
      // session stays and dials are not failed fast; its CONNECTION_CLOSE and the usual recovery
      // (a new session with whichever copy answers) take it from here. Peer-down still fires.
      this.host.log.info({ peer: formatAddress(peer.address), reason }, 'goodbye soon after a boot change: session kept (the identity may run twice)');
      return { peer, hard: false };
    }
    this.gone.note(key, reason, this.host.now());
    this.forget(key, `peer ${reason}`);
    this.host.log.info({ peer: formatAddress(peer.address), reason }, 'peer said goodbye');
    return { peer, hard: true };
  }

  private named(hostname: string): Peer | undefined {
    for (const p of this.peers.values()) if (p.hostname === hostname) return p;
    return undefined;
  }

  /** A known peer by address resolved within the TTL (revived), without a registry round trip; else undefined. */
  freshPeer(to: string | Address): Peer | undefined {
    if (typeof to === 'string') return undefined;
    let p: Peer | undefined;
    try {
      p = this.peers.get(addressKey(this.host.globalAddress(to)));
    } catch {
      return undefined; // N:… of a network we are not in: peerFor says why
    }
    return this.fresh(p) ? this.revive(p) : undefined;
  }

  /** May this key open a session with us as `address`? (SessionManager's verifyPeer) */
  async verifyPeer(address: Address, publicKey: Buffer): Promise<boolean> {
    // Zero trust: only trusted peers (and co-members) get a session, unless we are public (pingable by anyone).
    const open = this.host.amPublic() || this.host.isTrusted(address);
    // A caller we know nothing of may be a co-member: only the lookup below can say (fleets: the
    // rendezvous's answer names the networks we share, and isTrusted then knows). Without
    // networks there is nothing to learn: refused without a lookup.
    if (!open && !this.host.inNetworks()) {
      this.host.counters.refusedUntrusted++;
      return false;
    }
    const known = this.peers.get(addressKey(address));
    if (open && known?.publicKey.equals(publicKey) && this.fresh(known)) return true;
    const r = await this.host.verify(address, publicKey); // shared, cached and rate-limited lookups
    if (!r) return false;
    if (!open && !this.host.isTrusted(address)) {
      this.host.counters.refusedUntrusted++;
      return false;
    }
    this.upsert(r);
    return true;
  }

  /**
   * Session, connection and path state of a peer: all gone. The peer leaves the
   * table first, so the connection's last words (reset, close) go nowhere:
   * sent after closeSession they would start a new handshake and leave a new
   * session-layer entry behind.
   */
  forget(key: number, reason: string): void {
    const peer = this.peers.get(key);
    this.peers.delete(key);
    if (peer) {
      peer.conn.reset(reason);
      peer.conn.close();
    }
    this.host.closeSession(key);
    this.host.forgetPath(key);
  }

  // ---------- bounded untrusted peers (src/daemon/peer-limit.ts) ----------

  private *untrusted(): Iterable<{ key: number; lastActive: number }> {
    for (const p of this.peers.values()) if (!this.host.isTrusted(p.address)) yield { key: p.key, lastActive: Math.max(p.lastSeen, p.resolvedAt) };
  }

  forgetIdleUntrusted(): void {
    for (const key of this.limit.idle(this.untrusted(), this.host.now())) this.evict(key, 'idle');
  }

  private evict(key: number, why: string): void {
    const peer = this.peers.get(key);
    if (!peer) return;
    this.host.counters.untrustedEvicted++;
    this.forget(key, `untrusted peer ${why}`);
    this.host.log.debug({ peer: formatAddress(peer.address), why }, 'untrusted peer forgotten');
  }

  /** Stop sweeping and close every connection (the daemon stops). */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    for (const peer of this.peers.values()) peer.conn.close();
  }
}

/** Transport packet size carried by a UDP payload: session header + inner type byte + packet + tag. */
function packetSizeForPayload(payload: number): number {
  return payload - DATA_HEADER_BYTES - 1 - TAG_BYTES;
}
