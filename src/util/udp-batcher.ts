// Coalesces the packets one event-loop callback sends to one destination into
// Linux UDP GSO sends (src/util/udp-gso.ts): a burst of N equal-size datagrams
// costs one sendmsg instead of N. On the veth + NAT paths of the lab that one
// system call also carries the routers' forwarding, so the per-packet cost the
// daemon paid in dgram's send was most of its CPU (BENCHMARKS.md, issue 20).
//
// What is batched: consecutive packets to the same host:port, all of the size of
// the first, plus at most one shorter packet that ends the batch (the kernel's rule:
// only the last segment may be short). The batch goes out when the callback that
// queued it returns (a microtask), so nothing waits for a later turn. A batch of
// one packet (a lone ack, ping or handshake) leaves through the addon's sendOne:
// one sendto, no GSO cmsg, so it is the same datagram dgram would send (the
// socket's DF mode decides about an MTU probe just the same), without dgram's
// per-packet SendWrap, lookup tick and libuv request (a receiver's ACKs were ~13%
// of its busy time in dgram's send; BENCHMARKS.md). A bigger packet (an MTU probe)
// never joins a batch of smaller ones and is never batched with a shorter packet
// behind it unless two of its size came first: a probe stays its own datagram.
//
// Order: dgram's send reaches the socket a tick later (its address lookup) and queues
// on a full buffer, so while a packet handed to dgram is on its way or queued, every
// later packet goes through dgram too: nothing overtakes it.
//
// Failures never lose a packet: a full socket buffer (EAGAIN, ENOBUFS) hands the
// packets to dgram one by one (it queues them). A lone packet that fails otherwise
// (EMSGSIZE, ENETUNREACH, EACCES...) is reported as dgram's send callback reports it:
// through onSendError, a tick later, the same Error (code, errno, syscall 'send',
// address, port); with no hook it is dropped, as dgram drops a failed send that has
// no callback. EIO on a GSO send: the device refuses UDP_SEGMENT (no checksum
// offload, IPsec): logged once, GSO off for good (lone packets keep sendOne).
// EMSGSIZE (EINVAL before Linux 6.x): a segment is bigger than the route's MTU
// (learnt from an ICMP "fragmentation needed", where a plain send is fragmented
// instead): that destination's batches of that segment size or more go out one
// datagram each; only when EINVAL comes before any GSO send ever worked (a kernel
// without UDP_SEGMENT, < 4.18) is GSO turned off for good.
import type dgram from 'node:dgram';
import { getSystemErrorName } from 'node:util';
import type { Logger } from './logger.ts';
import { Errno, GSO_MAX_BYTES, GSO_MAX_SEGMENTS, type GsoBinding, socketState } from './udp-gso.ts';

export interface UdpBatcherStats {
  /** sendmsg calls that carried a GSO batch, and the packets in them. */
  gsoSends: number;
  gsoPackets: number;
  /** Packets that went out through dgram (behind dgram's queue, a batch that fell back, no addon). */
  plainPackets: number;
  /** Lone packets sent with the addon's sendOne (one sendto each, no dgram). */
  onePackets: number;
  /** Lone packets sendOne could not send for good (not EAGAIN/ENOBUFS): reported through onSendError, if any. */
  sendErrors: number;
  /** Batches handed back to dgram because the GSO send failed. */
  fallbacks: number;
  /** Batches lost because the socket had closed by the time they were due. */
  dropped: number;
}

/** Bounded: a destination count is not ours to choose (the rendezvous answers anyone). */
const MAX_REFUSED = 1024;
/** Linux forgets a learnt path MTU after 10 minutes (net.ipv4.route.mtu_expires): so do we. */
const REFUSED_MS = 600_000;
/** EINVAL this many times before any GSO send worked: the kernel has no UDP_SEGMENT. */
const EINVAL_BEFORE_OFF = 3;

export interface GsoCounters {
  gsoSends: number;
  gsoPackets: number;
}

export interface UdpBatcherOptions {
  log: Pick<Logger, 'warn'>;
  /** The addon; undefined: every packet through dgram (not built, PILOT_GSO=0, not Linux). */
  gso: GsoBinding | undefined;
  /**
   * Lone packets through the addon's sendOne (default, with the addon); false: through dgram, as
   * before (PILOT_UDP_SEND1=0 in the environment: the switch benchmarks compare with).
   */
  sendOne?: boolean;
  /** Counters someone else shows (the daemon's stats), counted besides `stats`. */
  counters?: GsoCounters;
  /**
   * When a batch leaves: 'microtask' (default) when the callback that queued it returns (a sender
   * whose bursts come from one callback: the daemon's connection flush); 'immediate' after the
   * event loop's poll phase, so packets that arrived together and are forwarded one callback each
   * (the rendezvous relay) leave together.
   */
  flushAt?: 'microtask' | 'immediate';
  /** A dgram send failed (with no hook, dgram emits 'error' on the socket). */
  onSendError?: (err: Error, host: string) => void;
}

export class UdpBatcher {
  private readonly sock: dgram.Socket;
  private readonly log: Pick<Logger, 'warn'>;
  private gso: GsoBinding | undefined;
  /** The addon for lone packets (stays when the kernel refuses GSO: a plain sendto still works). */
  private readonly one: GsoBinding | undefined;
  /** dgram's state: its handle is null once the socket is closed, when `fd` may already be someone else's. */
  private readonly state: { handle?: unknown } | undefined;
  private fdHandle: unknown;
  private fd: number | undefined;
  /** dgram sends not yet at the socket (dgram sends a tick later): a direct send now would overtake them. */
  private dgramPending = 0;
  private readonly dgramSent = (): void => {
    this.dgramPending--;
  };
  // the open batch
  private bufs: Buffer[] = [];
  private host = '';
  private port = 0;
  private segment = 0;
  private bytes = 0;
  private scheduled = false;
  /** Destinations whose route MTU refused a segment size (host|port -> that size): dgram for it and above, for a while. */
  private readonly refused = new Map<string, { segment: number; until: number }>();
  private einval = 0;
  readonly stats: UdpBatcherStats = { gsoSends: 0, gsoPackets: 0, plainPackets: 0, onePackets: 0, sendErrors: 0, fallbacks: 0, dropped: 0 };
  private readonly flushCb = (): void => {
    this.scheduled = false;
    try {
      this.flush();
    } catch {
      // the socket closed within the callback that queued the batch: nobody is left to tell
      this.stats.dropped++;
    }
  };

  private readonly shown: GsoCounters | undefined;
  private readonly immediate: boolean;
  private readonly onSendError: ((err: Error, host: string) => void) | undefined;

  constructor(sock: dgram.Socket, opts: UdpBatcherOptions) {
    this.sock = sock;
    this.log = opts.log;
    this.gso = opts.gso;
    this.one = (opts.sendOne ?? process.env.PILOT_UDP_SEND1 !== '0') ? opts.gso : undefined;
    this.state = socketState(sock);
    this.shown = opts.counters;
    this.immediate = opts.flushAt === 'immediate';
    this.onSendError = opts.onSendError;
  }

  /** Is GSO in use (addon loaded, not refused by the kernel)? */
  get enabled(): boolean {
    return this.gso !== undefined;
  }

  /** Queue `pkt` for `host:port` (an IP literal in the socket's family); it leaves before the current callback's microtasks end. */
  send(pkt: Buffer, host: string, port: number): void {
    if (this.gso === undefined) {
      this.single(pkt, host, port); // dgram without the addon or with PILOT_UDP_SEND1=0
      return;
    }
    const n = this.bufs.length;
    if (n > 0) {
      const len = pkt.length;
      if (host === this.host && port === this.port && len <= this.segment && n < GSO_MAX_SEGMENTS && this.bytes + len <= GSO_MAX_BYTES) {
        if (len === this.segment) {
          this.bufs.push(pkt);
          this.bytes += len;
          return;
        }
        if (n >= 2) {
          // a shorter packet ends the batch (only the last segment may be short)
          this.bufs.push(pkt);
          this.bytes += len;
          this.flush();
          return;
        }
      }
      this.flush();
    }
    this.bufs.push(pkt);
    this.host = host;
    this.port = port;
    this.segment = pkt.length;
    this.bytes = pkt.length;
    if (!this.scheduled) {
      this.scheduled = true;
      if (this.immediate) setImmediate(this.flushCb);
      else queueMicrotask(this.flushCb);
    }
  }

  /** Send the open batch now (before the socket closes, or at the end of the callback). */
  flush(): void {
    const bufs = this.bufs;
    const n = bufs.length;
    if (n === 0) return;
    this.bufs = [];
    if (n === 1) {
      this.single(bufs[0]!, this.host, this.port);
      return;
    }
    const gso = this.gso;
    const fd = this.directFd();
    if (fd === undefined) {
      for (const b of bufs) this.plain(b, this.host, this.port);
      return;
    }
    if (gso === undefined || (this.refused.size > 0 && this.isRefused())) {
      for (const b of bufs) this.single(b, this.host, this.port);
      return;
    }
    let r: number;
    try {
      r = gso.sendGso(fd, bufs, this.segment, this.host, this.port);
    } catch {
      r = -Errno.EAGAIN; // not an IP literal the addon parses (a scoped fe80::1%eth0): dgram's lookup knows it
    }
    if (r >= 0) {
      this.stats.gsoSends++;
      this.stats.gsoPackets += n;
      if (this.shown) {
        this.shown.gsoSends++;
        this.shown.gsoPackets += n;
      }
      return;
    }
    this.stats.fallbacks++;
    if (r === -Errno.EIO || (r === -Errno.EINVAL && this.stats.gsoSends === 0 && ++this.einval >= EINVAL_BEFORE_OFF)) {
      this.gso = undefined;
      this.log.warn(
        { errno: -r, segment: this.segment, packets: n },
        'the kernel refused a UDP GSO send (UDP_SEGMENT): sending one packet per system call from now on (a device without checksum offload, or a kernel older than 4.18; PILOT_GSO=0 skips the attempt)',
      );
    } else if (r === -Errno.EMSGSIZE || r === -Errno.EINVAL) {
      if (this.refused.size >= MAX_REFUSED) this.refused.clear();
      this.refused.set(`${this.host}|${this.port}`, { segment: this.segment, until: Date.now() + REFUSED_MS });
    }
    // a full buffer: dgram queues them; a refused segment size: one datagram each, as dgram would send them
    if (r === -Errno.EAGAIN || r === -Errno.ENOBUFS) for (const b of bufs) this.plain(b, this.host, this.port);
    else for (const b of bufs) this.single(b, this.host, this.port);
  }

  /**
   * The socket's descriptor when a send may bypass dgram now: the socket is open (a closed one's
   * number may already belong to another file) and nothing handed to dgram is still on its way or
   * queued (EAGAIN earlier): a direct send would overtake it.
   */
  private directFd(): number | undefined {
    if (this.dgramPending > 0) return undefined;
    const handle = this.state?.handle;
    if (handle == null) return undefined;
    if (handle !== this.fdHandle) {
      const fd = (handle as { fd?: unknown }).fd;
      if (typeof fd !== 'number' || fd < 0) return undefined;
      this.fdHandle = handle;
      this.fd = fd;
    }
    return this.sock.getSendQueueCount() > 0 ? undefined : this.fd;
  }

  /** One packet: the addon's sendOne when it may, dgram otherwise or when the buffer is full. */
  private single(pkt: Buffer, host: string, port: number): void {
    const one = this.one;
    const fd = one === undefined ? undefined : this.directFd();
    if (fd === undefined) {
      this.plain(pkt, host, port);
      return;
    }
    let r: number;
    try {
      r = one!.sendOne(fd, pkt, host, port);
    } catch {
      r = -Errno.EAGAIN; // not an IP literal the addon parses (a scoped fe80::1%eth0): dgram's lookup knows it
    }
    if (r >= 0) {
      this.stats.onePackets++;
      return;
    }
    if (r === -Errno.EAGAIN || r === -Errno.ENOBUFS) {
      this.plain(pkt, host, port); // dgram queues it until the socket is writable
      return;
    }
    this.stats.sendErrors++;
    const onErr = this.onSendError;
    if (onErr !== undefined) process.nextTick(onErr, sendError(r, host, port), host);
  }

  /** Did the open batch's destination refuse this segment size lately? */
  private isRefused(): boolean {
    const key = `${this.host}|${this.port}`;
    const r = this.refused.get(key);
    if (r === undefined) return false;
    if (Date.now() < r.until) return this.segment >= r.segment;
    this.refused.delete(key);
    return false;
  }

  private plain(pkt: Buffer, host: string, port: number): void {
    this.stats.plainPackets++;
    const onErr = this.onSendError;
    if (onErr === undefined) this.sock.send(pkt, port, host);
    else this.sock.send(pkt, port, host, (err) => err && onErr(err, host));
    if (this.one !== undefined) {
      // dgram's send reaches the socket in a tick it has just queued (its lookup); ours runs after it
      this.dgramPending++;
      process.nextTick(this.dgramSent);
    }
  }
}

/** The Error dgram's send callback gets for a failed send (`send EACCES 10.0.0.1:9`: code, errno, syscall, address, port). */
function sendError(negErrno: number, host: string, port: number): Error {
  const code = getSystemErrorName(negErrno);
  return Object.assign(new Error(`send ${code} ${host}:${port}`), { code, errno: negErrno, syscall: 'send', address: host, port });
}
