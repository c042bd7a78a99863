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
 * A UDP source as a Link, made for every datagram: one small object and the id string,
 * nothing else per packet. `observed` is formatted only when asked for (registry answers),
 * not for each relayed packet; sends take no completion callback (dgram would schedule a
 * tick per packet for it; a failed send is a lost datagram either way).
 */
export class UdpLink implements Link {
  readonly kind = 'udp' as const;
  readonly id: string;
  private readonly sock: UdpSender;
  private readonly address: string;
  private readonly port: number;
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
