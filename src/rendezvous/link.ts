// Where a packet came from and how to answer it: a UDP source ip:port, or one TCP connection.
import { formatEndpoint } from '../registry/endpoint.ts';

export interface Link {
  readonly kind: 'udp' | 'tcp';
  /** Identity of the path: "udp:<ip>:<port>" or "tcp:<connection number>". */
  readonly id: string;
  /** The source ip:port as the server saw it (the beacon answer). */
  readonly observed: string;
  /** Best effort; false when the packet was dropped (closed or congested connection). */
  send(pkt: Buffer): boolean;
}

/** What a UdpLink sends with (the server's bound socket; a fake in unit tests). */
export interface UdpSender {
  send(pkt: Buffer, port: number, address: string): void;
}

/**
 * A UDP source as a Link (one per source, reused: UdpLinks): one small object and the id
 * string. `observed` is formatted only when asked for (registry answers), not for each relayed
 * packet; sends take no completion callback (dgram would schedule a tick per packet for it; a
 * failed send is a lost datagram either way).
 */
export class UdpLink implements Link {
  readonly kind = 'udp' as const;
  readonly id: string;
  private readonly sock: UdpSender;
  /** The source as the socket gave it. */
  readonly address: string;
  readonly port: number;
  private seen: string | undefined;

  constructor(sock: UdpSender, address: string, port: number, idPrefix = 'udp') {
    this.sock = sock;
    this.address = address;
    this.port = port;
    this.id = `${idPrefix}:${address}:${port}`;
  }

  get observed(): string {
    this.seen ??= formatEndpoint(this.address, this.port);
    return this.seen;
  }

  send(pkt: Buffer): boolean {
    this.sock.send(pkt, this.port, this.address);
    return true;
  }
}

/**
 * The UdpLink of a datagram's source, the same object for as long as the source keeps sending: a
 * relay forwards most datagrams from a few busy sources, and a UdpLink made per datagram cost an
 * object, its id string, and the hashing of that fresh string in the per-packet lookup by link id
 * (OnlineIndex.getByLink). A UdpLink holds nothing but its source and socket, so a reused one acts
 * exactly as a new one would. Keyed by port (a number: no string built to look it up), checked
 * against the address; bounded, dropped whole when full (a source's link is then made again).
 */
export class UdpLinks {
  private readonly byPort = new Map<number, UdpLink>();
  private readonly sock: UdpSender;
  private readonly max: number;

  constructor(sock: UdpSender, max = 4096) {
    this.sock = sock;
    this.max = max;
  }

  get(address: string, port: number): UdpLink {
    const known = this.byPort.get(port);
    if (known !== undefined && known.address === address) return known;
    if (this.byPort.size >= this.max) this.byPort.clear();
    const link = new UdpLink(this.sock, address, port);
    this.byPort.set(port, link);
    return link;
  }

  get size(): number {
    return this.byPort.size;
  }
}
