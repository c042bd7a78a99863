// Coalesces the packets one event-loop callback sends to one destination into
// Linux UDP GSO sends (src/util/udp-gso.ts): a burst of N equal-size datagrams
// costs one sendmsg instead of N. On the veth + NAT paths of the lab that one
// system call also carries the routers' forwarding, so the per-packet cost the
// daemon paid in dgram's send was most of its CPU (BENCHMARKS.md, issue 20).
//
// What is batched: consecutive packets to the same host:port, all of the size of
// the first, plus at most one shorter packet that ends the batch (the kernel's rule:
// only the last segment may be short). The batch goes out when the callback that
// queued it returns (a microtask), so nothing waits for a later turn; a batch of
// one packet goes out through dgram as before, so a lone ack, ping or handshake
// takes the same path and time as without GSO. A bigger packet (an MTU probe)
// never joins a batch of smaller ones and is never batched with a shorter packet
// behind it unless two of its size came first: a probe stays its own datagram.
//
// Failures never lose a packet: a full socket buffer (EAGAIN, ENOBUFS) or any
// other error hands the batch's packets to dgram one by one (it queues them, or
// reports the error as it always did). EIO: the device refuses UDP_SEGMENT (no checksum
// offload, IPsec): logged once, GSO off for good. EMSGSIZE (EINVAL before Linux 6.x):
// a segment is bigger than the route's MTU (learnt from an ICMP "fragmentation needed",
// where a plain send is fragmented instead): that destination's batches of that segment
// size or more go through dgram; only when EINVAL comes before any GSO send ever
// worked (a kernel without UDP_SEGMENT, < 4.18) is GSO turned off for good.
import type dgram from 'node:dgram';
import type { Logger } from './logger.ts';
import { Errno, GSO_MAX_BYTES, GSO_MAX_SEGMENTS, type GsoBinding, socketFd } from './udp-gso.ts';

export interface UdpBatcherStats {
  /** sendmsg calls that carried a GSO batch, and the packets in them. */
  gsoSends: number;
  gsoPackets: number;
  /** Packets that went out through dgram (alone, or a batch that fell back). */
  plainPackets: number;
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
  private fd: number | undefined;
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
  readonly stats: UdpBatcherStats = { gsoSends: 0, gsoPackets: 0, plainPackets: 0, fallbacks: 0, dropped: 0 };
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
      this.plain(pkt, host, port);
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
      this.plain(bufs[0]!, this.host, this.port);
      return;
    }
    const gso = this.gso;
    // packets dgram still queues (EAGAIN earlier) go first: a GSO send now would overtake them
    this.fd ??= socketFd(this.sock);
    if (gso === undefined || this.fd === undefined || this.sock.getSendQueueCount() > 0 || (this.refused.size > 0 && this.isRefused())) {
      for (const b of bufs) this.plain(b, this.host, this.port);
      return;
    }
    const r = gso.sendGso(this.fd, bufs, this.segment, this.host, this.port);
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
    for (const b of bufs) this.plain(b, this.host, this.port);
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
  }
}
