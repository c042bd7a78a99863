// Batched receive for a bound dgram socket (issue 20): the optional addon's recvmmsg reader
// (native/udp_rx.c) takes over the socket's reading and calls JavaScript once per batch of up to
// `msgs` datagrams, instead of dgram's one recvmsg, one ArrayBuffer, one rinfo object and one
// MakeCallback (with its microtask and nextTick checkpoint) per datagram. What the owner sees
// is what dgram gave it: one Buffer per datagram, the source host as dgram formats it
// ("1.2.3.4", "::ffff:1.2.3.4" on a dual-stack socket, "2001:db8::1") and port, in arrival order.
//
// Each batch arrives packed in Buffers of its own (the addon copies out of its scratch), and a
// datagram's Buffer is a view into one: the daemon decrypts in place and its streams keep slices
// of the plaintext, so nothing the kernel writes later may land under a Buffer handed out. A
// slice kept for long keeps its chunk alive: at most 64 KiB (or the one datagram, if bigger), as
// Node's own TCP reads do, whatever the batch size (a datagram queue of 128 kept datagrams holds
// at most 8 MiB, not 128 whole batches).
//
// Off (dgram's 'message' events as before): addon not built, not Linux, PILOT_GSO=0 or
// PILOT_RECVMMSG=0, or a socket the addon cannot take over. An error from the reader hands the
// socket back to dgram for good (one log line); close() stops the reader and must come before
// the socket's close (the reader's own fd keeps the port bound until then).
import type dgram from 'node:dgram';
import type { Logger } from './logger.ts';
import { loadAddon, socketHandle } from './udp-gso.ts';

export interface RxStartResult {
  handle: object;
  /** The kernel took UDP_GRO: coalesced datagrams are split by the reader. */
  gro: boolean;
}

export interface RxBinding {
  /** A reader on a dup of `fd`: the handle, or -errno. Throws only on wrong arguments. */
  rxStart(
    fd: number,
    msgs: number,
    slot: number,
    gro: number,
    meta: Int32Array,
    text: Uint8Array,
    stats: Float64Array,
    cb: (batch: Buffer[] | null, n: number) => void,
  ): RxStartResult | number;
  /** No callback after this; its fd closed at once. */
  rxStop(handle: object): void;
}

/** What the reader counts (the addon writes them in place). */
export interface UdpReceiverStats {
  /** recvmmsg calls that returned datagrams, the datagrams, and the packets handed on (more with GRO). */
  calls: number;
  datagrams: number;
  packets: number;
  /** Datagrams dropped: bigger than a slot (MSG_TRUNC), or a GRO segment size that did not fit. */
  truncated: number;
  errors: number;
  /** Datagrams dropped because the batch's packet table was full (GRO only). */
  overflow: number;
  /** Datagrams that were GRO-coalesced (split here). */
  coalesced: number;
}

/** Per packet in the meta table: length, port, flags, IPv4 address (see native/udp_rx.c). */
const META = 4;
const TEXT = 48;
const SAME = 1;
const V6 = 2;
const MAPPED = 4;
const NEXT_CHUNK = 8;
/** Source hosts remembered by address (a relay hears many): bounded, dropped whole when full. */
const MAX_HOSTS = 1024;

export interface UdpReceiverOptions {
  log: Pick<Logger, 'warn'>;
  /** The addon (default: the built one); undefined turns the reader off. */
  binding?: RxBinding | undefined;
  /** Datagrams per recvmmsg (default 32). */
  msgs?: number;
  /** Largest datagram kept (default 65536: Pilot sends 64 KB datagrams on loopback); bigger ones are dropped. */
  slot?: number;
  /** Ask for UDP_GRO (default on; PILOT_UDP_GRO=0 turns it off): 11-13% less receiver CPU per datagram on loopback (BENCHMARKS.md). */
  gro?: boolean;
  /** Counters someone else shows (the daemon's stats): batches delivered and their packets. */
  counters?: { rxBatches: number; rxBatchPackets: number };
}

/** The addon's reader, or undefined: not built, PILOT_GSO=0 or PILOT_RECVMMSG=0. */
export function loadRx(): RxBinding | undefined {
  if (process.env.PILOT_RECVMMSG === '0') return undefined;
  const mod = loadAddon();
  return mod !== undefined && typeof mod.rxStart === 'function' && typeof mod.rxStop === 'function' ? (mod as unknown as RxBinding) : undefined;
}

export type PacketHandler = (msg: Buffer, host: string, port: number) => void;

export class UdpBatchReceiver {
  private readonly sock: dgram.Socket;
  private readonly binding: RxBinding;
  private readonly onPacket: PacketHandler;
  private readonly log: Pick<Logger, 'warn'>;
  private readonly meta: Int32Array;
  private readonly text: Buffer;
  private readonly counts = new Float64Array(8);
  private readonly hosts = new Map<number, string>();
  private handle: object | undefined;
  private readonly shown: { rxBatches: number; rxBatchPackets: number } | undefined;
  private host = '';
  private port = 0;
  /** UDP_GRO is on. */
  readonly gro: boolean;

  /**
   * Take over `sock`'s reading (bound, dgram reading): the reader, or undefined (dgram keeps
   * reading; the owner's 'message' listener gets every datagram as before).
   */
  static start(sock: dgram.Socket, onPacket: PacketHandler, opts: UdpReceiverOptions): UdpBatchReceiver | undefined {
    const binding = 'binding' in opts ? opts.binding : loadRx();
    if (binding === undefined) return undefined;
    const handle = socketHandle(sock);
    const fd = handle?.fd;
    if (typeof fd !== 'number' || fd < 0 || typeof handle?.recvStop !== 'function' || typeof handle.recvStart !== 'function') return undefined;
    const r = new UdpBatchReceiver(sock, binding, onPacket, opts, fd);
    return r.handle === undefined ? undefined : r;
  }

  private constructor(sock: dgram.Socket, binding: RxBinding, onPacket: PacketHandler, opts: UdpReceiverOptions, fd: number) {
    this.sock = sock;
    this.binding = binding;
    this.onPacket = onPacket;
    this.log = opts.log;
    this.shown = opts.counters;
    const msgs = opts.msgs ?? 32;
    const gro = opts.gro ?? process.env.PILOT_UDP_GRO !== '0';
    // a GRO datagram splits into up to 64 packets: room for a full batch of them
    const maxPackets = gro ? msgs * 64 : msgs;
    this.meta = new Int32Array(maxPackets * META);
    this.text = Buffer.alloc(maxPackets * TEXT);
    const r = binding.rxStart(fd, msgs, opts.slot ?? 65_536, gro ? 1 : 0, this.meta, this.text, this.counts, this.onBatch);
    if (typeof r === 'number') {
      this.gro = false;
      return;
    }
    this.handle = r.handle;
    this.gro = r.gro;
    // dgram's own reading stops only once ours runs: no window where nobody reads
    (socketHandle(sock)!.recvStop as () => number).call(socketHandle(sock));
    sock.once('close', () => this.stopReader());
  }

  /** Reading through the addon (not closed, not handed back to dgram). */
  get active(): boolean {
    return this.handle !== undefined;
  }

  get stats(): UdpReceiverStats {
    const c = this.counts;
    return { calls: c[0]!, datagrams: c[1]!, packets: c[2]!, truncated: c[3]!, errors: c[4]!, overflow: c[5]!, coalesced: c[6]! };
  }

  /** Stop the reader (before the socket closes); nothing is delivered after this. */
  close(): void {
    this.stopReader();
  }

  private stopReader(): void {
    const h = this.handle;
    if (h === undefined) return;
    this.handle = undefined;
    this.binding.rxStop(h);
  }

  private readonly onBatch = (batch: Buffer[] | null, n: number): void => {
    if (batch === null) {
      this.fail(n);
      return;
    }
    const shown = this.shown;
    if (shown !== undefined) {
      shown.rxBatches++;
      shown.rxBatchPackets += n;
    }
    const meta = this.meta;
    let host = this.host;
    let port = this.port;
    let chunk = 0;
    let buf = batch[0]!;
    let off = 0;
    let thrown: unknown;
    let failed = false;
    for (let i = 0, j = 0; i < n; i++, j += META) {
      if (this.handle === undefined) break; // a handler closed the socket: dgram delivers nothing after close either
      const len = meta[j]!;
      const flags = meta[j + 2]!;
      if ((flags & SAME) === 0) {
        host = this.hostOf(i, flags, meta[j + 3]!);
        port = meta[j + 1]!;
        this.host = host;
        this.port = port;
      }
      if ((flags & NEXT_CHUNK) !== 0) {
        buf = batch[++chunk]!;
        off = 0;
      }
      const msg = buf.subarray(off, off + len);
      off += len;
      try {
        this.onPacket(msg, host, port);
      } catch (err) {
        // the rest of the batch still goes on, as with one 'message' event each; the first error is rethrown after it
        if (!failed) {
          failed = true;
          thrown = err;
        }
      }
    }
    if (failed) throw thrown;
  };

  /** The source of packet `i` as dgram formats it, by address from a bounded cache; the addon's text on a miss. */
  private hostOf(i: number, flags: number, v4: number): string {
    const textOf = (): string => this.text.toString('latin1', i * TEXT, i * TEXT + ((flags >> 8) & 0xff));
    if ((flags & V6) !== 0) return textOf();
    const key = (flags & MAPPED) !== 0 ? (v4 >>> 0) + 0x100000000 : v4 >>> 0;
    let h = this.hosts.get(key);
    if (h === undefined) {
      h = textOf();
      if (this.hosts.size >= MAX_HOSTS) this.hosts.clear();
      this.hosts.set(key, h);
    }
    return h;
  }

  /** A read error (-errno from recvmmsg or the poll): dgram reads again, as it would have all along. */
  private fail(errno: number): void {
    if (this.handle === undefined) return;
    this.stopReader();
    this.log.warn({ errno: -errno }, 'batched UDP receive failed: reading one datagram per system call from now on (PILOT_RECVMMSG=0 skips it)');
    try {
      const h = socketHandle(this.sock);
      (h?.recvStart as (() => number) | undefined)?.call(h);
    } catch {
      // the socket closed meanwhile: nothing to read
    }
  }
}
