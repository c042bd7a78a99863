// Where a packet came from and how to answer it: a UDP source ip:port, or one TCP connection.
export interface Link {
  readonly kind: 'udp' | 'tcp';
  /** Identity of the path: "udp:<ip>:<port>" or "tcp:<connection number>". */
  readonly id: string;
  /** The source ip:port as the server saw it (the beacon answer). */
  readonly observed: string;
  /** Best effort; false when the packet was dropped (closed or congested connection). */
  send(pkt: Buffer): boolean;
}
