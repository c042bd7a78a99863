// How a daemon reaches its rendezvous (registry + beacon + relay). Normally
// UDP on the daemon's one socket; when UDP is blocked, a TcpUplink (framed TCP,
// or WebSocket for networks that only let HTTP out) to the same port. Both
// carry exactly the same packets, so the daemon only needs this interface:
//
//   outgoing: uplink.send(pkt) for registry requests (0x01) and RelaySend (0x20);
//   incoming: for UDP, the socket's 'message' from the rendezvous endpoint;
//             for a TcpUplink, its 'packet' event (every packet on it is from the
//             rendezvous: 0x02 response, 0x03 push, 0x21 RelayDeliver).
//
// After a TcpUplink comes back ('up' after 'down') the daemon must send a
// heartbeat (or register) over it at once: the rendezvous relays to a node only
// over the connection it last heard a verified register/heartbeat on, and the
// old connection's registration went offline with it.
import type dgram from 'node:dgram';

/** Same union as nat/path.ts's UplinkKind (kept here so this layer does not depend on the daemon's). */
export type UplinkKind = 'udp' | 'tcp' | 'websocket' | 'wss';

export interface Uplink {
  readonly kind: UplinkKind;
  /** Best effort, like a UDP send: false when the packet was dropped (down, congested or oversized). */
  send(pkt: Buffer): boolean;
}

/** The UDP path as an Uplink: the daemon's one socket, aimed at the rendezvous. */
export function udpUplink(sock: dgram.Socket, host: string, port: number): Uplink {
  return {
    kind: 'udp',
    send(pkt) {
      sock.send(pkt, port, host);
      return true;
    },
  };
}
